package server_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

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
	ts.createKitchensink("callee")
	call := func(event string) (r struct {
		Status         int
		Payload, Error string
	}) {
		t.Helper()
		res := ts.invoke("pycaller", event)
		if res.funcErr != "" || json.Unmarshal([]byte(res.payload), &r) != nil {
			t.Fatalf("pycaller %s: %+v", event, res)
		}
		return r
	}
	if r := call(`{"call":"callee","payload":{"name":"boto3"}}`); r.Status != 200 || r.Payload != `{"message":"hello boto3"}` {
		t.Fatalf("a synchronous call with boto3: %+v", r)
	}
	if r := call(`{"call":"callee","type":"Event","payload":{"print":"called by boto3 as an event"}}`); r.Status != 202 {
		t.Fatalf("an Event call with boto3: %+v", r)
	}
	testkit.WaitFor(t, time.Minute, "the event call to run", func() bool {
		return strings.Contains(ts.logText("callee"), "called by boto3 as an event")
	})
	if r := call(`{"list":true}`); r.Error != "AccessDeniedException" {
		t.Fatalf("ListFunctions with a function's own credentials: %+v", r)
	}
}
