// Command hello is an aws-lambda-go function for the runtimeapi tests: it
// greets the event's name and echoes what the Runtime API told it.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Name string `json:"name"`
}

type reply struct {
	Message           string            `json:"message"`
	RequestID         string            `json:"requestId"`
	FunctionARN       string            `json:"functionArn"`
	DeadlineMs        int64             `json:"deadlineMs"`
	TraceID           string            `json:"traceId"`
	ClientCustom      map[string]string `json:"clientCustom"`
	CognitoIdentityID string            `json:"cognitoIdentityId"`
}

func handle(ctx context.Context, e event) (reply, error) {
	lc, _ := lambdacontext.FromContext(ctx)
	deadline, _ := ctx.Deadline()
	return reply{
		Message:           "hello " + e.Name,
		RequestID:         lc.AwsRequestID,
		FunctionARN:       lc.InvokedFunctionArn,
		DeadlineMs:        deadline.UnixMilli(),
		TraceID:           os.Getenv("_X_AMZN_TRACE_ID"),
		ClientCustom:      lc.ClientContext.Custom,
		CognitoIdentityID: lc.Identity.CognitoIdentityID,
	}, nil
}

func main() { lambda.Start(handle) }
