// Command exit is an aws-lambda-go function for the runtimeapi tests that
// exits with status 3 in the middle of an invocation.
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

func handle() (string, error) {
	os.Exit(3)
	return "", nil
}

func main() { lambda.Start(handle) }
