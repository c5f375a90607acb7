package server_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/testkit"
)

// boto3Caller calls other functions with boto3 as Owl's environment sets
// it up. The endpoint is passed explicitly: Debian 12's botocore (1.29)
// predates AWS_ENDPOINT_URL_LAMBDA (botocore 1.31), which newer SDKs read
// by themselves.
const boto3Caller = `import json, os
import boto3, botocore.exceptions

def handler(event, context):
    client = boto3.client("lambda", endpoint_url=os.environ["AWS_ENDPOINT_URL_LAMBDA"])
    try:
        if event.get("list"):
            client.list_functions()
            return {"error": ""}
        out = client.invoke(FunctionName=event["call"], InvocationType=event.get("type", "RequestResponse"),
                            Payload=json.dumps(event["payload"]).encode())
        return {"status": out["StatusCode"], "payload": out["Payload"].read().decode()}
    except botocore.exceptions.ClientError as e:
        return {"error": e.response["Error"]["Code"]}
`

// TestFunctionsCallFunctionsBoto3: a Python function calls another from
// inside its sandbox with the host's boto3 (Debian's python3-boto3),
// configured only by the environment Owl sets — synchronously and as an
// event — and its credentials cannot list functions.
func TestFunctionsCallFunctionsBoto3(t *testing.T) {
	t.Parallel()
	if err := exec.Command("/usr/bin/python3.11", "-c", "import boto3").Run(); err != nil {
		testkit.Skipf(t, "the host's Python cannot import boto3 (%v): apt-get install python3-boto3", err)
	}
	ts := startServer(t, "", asyncConfig)
	ts.createZip("pycaller", interpreter(t, "python3"), "app.handler", makeZip(t, zipEntry{name: "app.py", body: boto3Caller}))
	checkCallerCalls(t, ts, "pycaller", "boto3")
}

// jsCaller calls other functions with the AWS SDK for JavaScript v3, which
// reads AWS_ENDPOINT_URL_LAMBDA, the region and the credentials from the
// environment Owl sets: nothing in it names Owl.
const jsCaller = `const { LambdaClient, InvokeCommand, ListFunctionsCommand } = require("@aws-sdk/client-lambda");
const client = new LambdaClient({});

exports.handler = async (event) => {
  try {
    if (event.list) {
      await client.send(new ListFunctionsCommand({}));
      return { error: "" };
    }
    const out = await client.send(new InvokeCommand({
      FunctionName: event.call, InvocationType: event.type || "RequestResponse",
      Payload: Buffer.from(JSON.stringify(event.payload)),
    }));
    return { status: out.StatusCode, payload: Buffer.from(out.Payload || []).toString() };
  } catch (e) {
    return { error: e.name };
  }
};
`

// TestFunctionsCallFunctionsJSSDK: a Node.js function that brings the JS
// SDK v3 in its zip calls another from inside its sandbox — synchronously
// and as an event — and its credentials cannot list functions.
func TestFunctionsCallFunctionsJSSDK(t *testing.T) {
	t.Parallel()
	sdk := filepath.Join("testdata", "jssdk", "node_modules")
	if _, err := os.Stat(filepath.Join(sdk, "@aws-sdk", "client-lambda", "package.json")); err != nil {
		testkit.Skipf(t, "the JS SDK is not installed (%v): npm ci --prefix internal/server/testdata/jssdk", err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	if err := zw.AddFS(os.DirFS(filepath.Dir(sdk))); err != nil { // node_modules/… and the package files
		t.Fatal(err)
	}
	w, err := zw.Create("index.js")
	if err == nil {
		_, err = io.WriteString(w, jsCaller)
	}
	if err != nil || zw.Close() != nil {
		t.Fatal(err)
	}
	ts := startServer(t, "", asyncConfig)
	ts.createZip("jscaller", interpreter(t, "nodejs"), "index.handler", buf.Bytes())
	checkCallerCalls(t, ts, "jscaller", "the JS SDK")
}

// checkCallerCalls has the function caller (boto3Caller, jsCaller) call a
// kitchensink function synchronously and as an event, each to its
// answer, and fail to list functions with its environment's credentials.
func checkCallerCalls(t *testing.T, ts *testServer, caller, sdk string) {
	t.Helper()
	ts.createKitchensink("callee")
	// An SDK's import and the callee's cold start take seconds on a loaded
	// machine: more than Lambda's default 3 s timeout.
	ts.updateConfig(&lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(caller), Timeout: aws.Int32(60)})
	call := func(event string) (r struct {
		Status         int
		Payload, Error string
	}) {
		t.Helper()
		res := ts.invoke(caller, event)
		if res.funcErr != "" || json.Unmarshal([]byte(res.payload), &r) != nil {
			t.Fatalf("%s %s: %+v", caller, event, res)
		}
		return r
	}
	if r := call(`{"call":"callee","payload":{"name":"` + sdk + `"}}`); r.Status != 200 || r.Payload != `{"message":"hello `+sdk+`"}` {
		t.Fatalf("a synchronous call with %s: %+v", sdk, r)
	}
	if r := call(`{"call":"callee","type":"Event","payload":{"print":"called by ` + sdk + ` as an event"}}`); r.Status != 202 {
		t.Fatalf("an Event call with %s: %+v", sdk, r)
	}
	testkit.WaitFor(t, time.Minute, "the event call to run", func() bool {
		return strings.Contains(ts.logText("callee"), "called by "+sdk+" as an event")
	})
	if r := call(`{"list":true}`); r.Error != "AccessDeniedException" {
		t.Fatalf("ListFunctions with a function's own credentials (%s): %+v", sdk, r)
	}
}
