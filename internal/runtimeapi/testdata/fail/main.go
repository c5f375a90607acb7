// Command fail is an aws-lambda-go function for the runtimeapi tests that
// returns an error, or succeeds when the event says {"ok":true}.
package main

import (
	"errors"

	"github.com/aws/aws-lambda-go/lambda"
)

type event struct {
	OK bool `json:"ok"`
}

func handle(e event) (string, error) {
	if e.OK {
		return "fine", nil
	}
	return "", errors.New("something went wrong")
}

func main() { lambda.Start(handle) }
