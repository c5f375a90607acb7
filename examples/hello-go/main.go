// Command hello-go is an example function: an unmodified aws-lambda-go
// handler. Build it as a static binary named bootstrap and deploy it with
// the provided.al2023 runtime (see the README's tour).
//
// The event {"name":"owl"} greets owl ("Hello, owl!", or "$GREETING, owl!"
// when the function's environment sets GREETING, as the README's canary
// does); {"sleep_ms":1000} also makes the invocation sleep that long first
// (cut short by the function's timeout), which is the 1-second function of
// `owl bench burst`.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Name    string `json:"name"`
	SleepMS int    `json:"sleep_ms"`
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
	if e.SleepMS > 0 {
		t := time.NewTimer(time.Duration(e.SleepMS) * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return reply{}, ctx.Err()
		}
	}
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "Hello"
	}
	fmt.Printf("greeting %s\n", e.Name)
	return reply{Message: greeting + ", " + e.Name + "!", RequestID: lc.AwsRequestID}, nil
}

func main() { lambda.Start(handle) }
