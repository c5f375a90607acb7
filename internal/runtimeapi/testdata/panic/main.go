// Command panic is an aws-lambda-go function for the runtimeapi tests that
// panics in its handler.
package main

import "github.com/aws/aws-lambda-go/lambda"

func handle() (string, error) {
	panic("boom")
}

func main() { lambda.Start(handle) }
