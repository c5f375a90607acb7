// Command caller is a test function that calls other functions from
// inside its sandbox with an unmodified aws-sdk-go-v2, configured only by
// what Owl puts in its environment (AWS_ENDPOINT_URL_LAMBDA, the
// environment's own credentials, the region).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
)

type event struct {
	Call    string          `json:"call"`    // a function to invoke
	Type    string          `json:"type"`    // its invocation type
	Payload json.RawMessage `json:"payload"` // what to send it
	Chain   int             `json:"chain"`   // invoke itself again, one deeper
	Self    string          `json:"self"`
	List    bool            `json:"list"` // try to list functions (refused)
	// Records (a subject trigger's batch): each body is published again
	// on its subject, through Owl's publish with the session token.
	Records []struct{ Subject, Body string } `json:"Records"`
}

type result struct {
	Status    int32  `json:"status,omitempty"`
	Payload   string `json:"payload,omitempty"`
	Error     string `json:"error,omitempty"`
	StoppedAt int    `json:"stopped_at,omitempty"`
}

func client() *awslambda.Client {
	return awslambda.New(awslambda.Options{
		Region:       os.Getenv("AWS_REGION"),
		BaseEndpoint: aws.String(os.Getenv("AWS_ENDPOINT_URL_LAMBDA")),
		Credentials: credentials.NewStaticCredentialsProvider(os.Getenv("AWS_ACCESS_KEY_ID"),
			os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")),
		RetryMaxAttempts: 1,
	})
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return err.Error()
}

func handle(ctx context.Context, e event) (result, error) {
	c := client()
	switch {
	case len(e.Records) > 0:
		for _, r := range e.Records {
			if err := publish(ctx, r.Subject, r.Body); err != nil {
				return result{}, err
			}
		}
		return result{Payload: "republished"}, nil
	case e.List:
		_, err := c.ListFunctions(ctx, &awslambda.ListFunctionsInput{})
		if err != nil {
			return result{Error: errorCode(err)}, nil
		}
		return result{Payload: "listed"}, nil
	case e.Self != "":
		next, _ := json.Marshal(event{Self: e.Self, Chain: e.Chain + 1})
		out, err := c.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String(e.Self), Payload: next})
		if err != nil {
			return result{StoppedAt: e.Chain, Error: errorCode(err)}, nil
		}
		var inner result
		_ = json.Unmarshal(out.Payload, &inner)
		return inner, nil
	default:
		out, err := c.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String(e.Call),
			InvocationType: types.InvocationType(e.Type), Payload: e.Payload})
		if err != nil {
			return result{Error: errorCode(err)}, nil
		}
		return result{Status: out.StatusCode, Payload: string(out.Payload)}, nil
	}
}

// publish is Owl's POST /owl/v1/events/publish, authenticated with the
// environment's session token as a bearer token (no SDK has it).
func publish(ctx context.Context, subject, body string) error {
	in, _ := json.Marshal(map[string]any{"Subject": subject, "Data": json.RawMessage(body)})
	req, err := http.NewRequestWithContext(ctx, "POST", os.Getenv("AWS_ENDPOINT_URL_LAMBDA")+"/owl/v1/events/publish", bytes.NewReader(in))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+os.Getenv("AWS_SESSION_TOKEN"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("publish: %d %s", resp.StatusCode, b)
	}
	return nil
}

func main() { lambda.Start(handle) }
