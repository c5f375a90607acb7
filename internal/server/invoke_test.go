package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// createKitchensink creates the test function through the SDK.
func (ts *testServer) createKitchensink(name string, mutate ...func(*lambda.CreateFunctionInput)) *lambda.CreateFunctionOutput {
	ts.t.Helper()
	in := &lambda.CreateFunctionInput{
		FunctionName: aws.String(name),
		Runtime:      types.RuntimeProvidedal2023,
		Handler:      aws.String("bootstrap"),
		Role:         aws.String("arn:aws:iam::000000000000:role/owl"),
		Code:         &types.FunctionCode{ZipFile: kitchenZip},
	}
	for _, m := range mutate {
		m(in)
	}
	out, err := ts.sdk().CreateFunction(context.Background(), in)
	if err != nil {
		ts.t.Fatalf("CreateFunction %s: %v", name, err)
	}
	return out
}

type invokeResult struct {
	payload  string
	funcErr  string
	log      string
	version  string
	errorObj map[string]any
}

func (ts *testServer) invoke(name, payload string, mutate ...func(*lambda.InvokeInput)) invokeResult {
	ts.t.Helper()
	in := &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(payload), LogType: types.LogTypeTail}
	for _, m := range mutate {
		m(in)
	}
	out, err := ts.sdk().Invoke(context.Background(), in)
	if err != nil {
		ts.t.Fatalf("Invoke %s %s: %v", name, payload, err)
	}
	r := invokeResult{payload: string(out.Payload), version: aws.ToString(out.ExecutedVersion)}
	if out.FunctionError != nil {
		r.funcErr = *out.FunctionError
		_ = json.Unmarshal(out.Payload, &r.errorObj)
	}
	if out.LogResult != nil {
		b, err := base64.StdEncoding.DecodeString(*out.LogResult)
		if err != nil {
			ts.t.Fatalf("LogResult is not base64: %v", err)
		}
		r.log = string(b)
	}
	return r
}

func TestInvokeThroughSDK(t *testing.T) {
	ts := startServer(t, "")
	created := ts.createKitchensink("hello")
	if got := aws.ToString(created.FunctionArn); got != "arn:aws:lambda:us-east-1:000000000000:function:hello" {
		t.Errorf("FunctionArn = %q", got)
	}
	if created.State != types.StateActive || aws.ToInt32(created.MemorySize) != 128 || aws.ToInt32(created.Timeout) != 3 {
		t.Errorf("create answered State=%s Memory=%d Timeout=%d", created.State, aws.ToInt32(created.MemorySize), aws.ToInt32(created.Timeout))
	}

	cold := ts.invoke("hello", `{"name":"owl","print":"a line from the function"}`)
	if cold.funcErr != "" || cold.payload != `{"message":"hello owl"}` {
		t.Fatalf("cold invoke = %+v", cold)
	}
	if cold.version != "$LATEST" {
		t.Errorf("ExecutedVersion = %q", cold.version)
	}
	for _, want := range []string{"START RequestId: ", "Version: $LATEST", "a line from the function", "END RequestId: ", "REPORT RequestId: ", "\tBilled Duration: ", "\tMax Memory Used: ", "\tInit Duration: "} {
		if !strings.Contains(cold.log, want) {
			t.Errorf("cold log lacks %q:\n%s", want, cold.log)
		}
	}
	warm := ts.invoke("hello", `{"action":"context"}`)
	if strings.Contains(warm.log, "Init Duration") {
		t.Errorf("warm invoke reported an init duration:\n%s", warm.log)
	}
	var ctxOut map[string]any
	if err := json.Unmarshal([]byte(warm.payload), &ctxOut); err != nil {
		t.Fatalf("context payload %q: %v", warm.payload, err)
	}
	if ctxOut["coldStarts"] != float64(1) {
		t.Errorf("the warm invoke did not reuse the environment: %v", ctxOut)
	}
	if ctxOut["arn"] != "arn:aws:lambda:us-east-1:000000000000:function:hello" {
		t.Errorf("invoked function ARN = %v", ctxOut["arn"])
	}
	if st := ts.Worker().Stats(); st.Environments != 1 {
		t.Errorf("environments = %d, want 1", st.Environments)
	}
}
