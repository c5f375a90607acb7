package server_test

// A restart on the same data dir loses nothing: functions, code and logs
// come back, and invocations work.

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

func TestRestartKeepsEverything(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	ts := startServer(t, dataDir)
	ts.createKitchensink("durable", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"KEPT": "yes"}}
		in.MemorySize = aws.Int32(256)
	})
	first := ts.invoke("durable", `{"name":"before"}`)
	if first.funcErr != "" || first.payload != `{"message":"hello before"}` {
		t.Fatalf("invoke before the restart: %+v", first)
	}
	firstID := startRequestID(first.log)
	// No waiting for the log to be stored: a graceful stop keeps the logs
	// of every invocation that completed before it.
	before, err := ts.sdk().GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String("durable")})
	if err != nil {
		t.Fatal(err)
	}
	ts.stop()
	checkNothingLeft(t, dataDir)

	ts = startServer(t, dataDir)
	after, err := ts.sdk().GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String("durable")})
	if err != nil {
		t.Fatalf("GetFunction after the restart: %v", err)
	}
	if jsonOf(after.Configuration) != jsonOf(before.Configuration) {
		t.Errorf("the function changed across the restart:\nbefore %s\nafter  %s", jsonOf(before.Configuration), jsonOf(after.Configuration))
	}
	if aws.ToString(after.Configuration.CodeSha256) != codeSha256(kitchenZip) || aws.ToString(after.Configuration.RevisionId) != aws.ToString(before.Configuration.RevisionId) {
		t.Errorf("CodeSha256/RevisionId after the restart: %s %s", aws.ToString(after.Configuration.CodeSha256), aws.ToString(after.Configuration.RevisionId))
	}

	r := ts.invoke("durable", `{"action":"env"}`)
	if env := envOf(t, r); env["KEPT"] != "yes" || env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] != "256" {
		t.Errorf("after the restart the function runs with KEPT=%q memory=%q", env["KEPT"], env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
	}
	if !parseReport(t, r.log).cold {
		t.Errorf("the first invoke after a restart was not a cold start")
	}
	logs := ts.logText("durable")
	if !strings.Contains(logs, "START RequestId: "+firstID+" Version: $LATEST") {
		t.Errorf("the log lost the invocation from before the restart (%s):\n%s", firstID, logs)
	}
	checkAccount(t, ts, 1, int64(len(kitchenZip)))
}
