// Command hello-go is an example function: an unmodified aws-lambda-go
// handler. Build it as a static binary named bootstrap and deploy it with
// the provided.al2023 runtime (see the README's tour).
package main

import (
	"context"
	"fmt"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Name string `json:"name"`
}

type reply struct {
	Message   string `json:"message"`
	RequestID string `json:"requestId"`
}

func handle(ctx context.Context, e event) (reply, error) {
	if e.Name == "" {
		e.Name = "world"
	}
	lc, _ := lambdacontext.FromContext(ctx)
	fmt.Printf("greeting %s\n", e.Name)
	return reply{Message: "Hello, " + e.Name + "!", RequestID: lc.AwsRequestID}, nil
}

func main() { lambda.Start(handle) }
