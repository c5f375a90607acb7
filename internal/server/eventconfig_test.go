package server_test

// The event invoke config operations through real AWS clients: boto3 and
// the AWS CLI.

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// eventConfig is a FunctionEventInvokeConfig as the clients print it.
type eventConfig struct {
	FunctionArn              string
	MaximumRetryAttempts     *int
	MaximumEventAgeInSeconds *int
	DestinationConfig        struct {
		OnSuccess, OnFailure struct{ Destination string }
	}
}

// clientError is an error as the boto3 script reports it.
type clientError struct {
	Code, Message string
	Status        int
}

const (
	eicLatest  = "arn:aws:lambda:us-east-1:000000000000:function:%s:$LATEST"
	eicSink    = "arn:aws:lambda:us-east-1:000000000000:function:eic-sink"
	eicTooMany = "1 validation error detected: Value '5' at 'maximumRetryAttempts' failed to satisfy constraint: " +
		"Member must have value less than or equal to 2"
)

func TestEventInvokeConfig(t *testing.T) {
	ts := startServer(t, "")
	ts.createKitchensink("eic-boto3")
	ts.createKitchensink("eic-cli")
	ts.createKitchensink("eic-sink")
	t.Run("boto3", func(t *testing.T) { eventConfigBoto3(t, ts) })
	t.Run("aws cli", func(t *testing.T) { eventConfigCLI(t, ts) })
}

func eventConfigBoto3(t *testing.T, ts *testServer) {
	py := pythonWithBoto3(t)
	stdout := runBoto3(t, py, "boto3_eventconfig.py", ts.URL, testKeyID, testSecret, "eic-boto3", eicSink)
	var out struct {
		Put, Update, Get struct {
			eventConfig
			LastModified float64 // its age in seconds
		}
		List         []eventConfig
		Bad, Missing clientError
	}
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("boto3 script output: %v\n%s", err, stdout)
	}
	arn := strings.Replace(eicLatest, "%s", "eic-boto3", 1)
	if c := out.Put; c.FunctionArn != arn || *c.MaximumRetryAttempts != 1 || *c.MaximumEventAgeInSeconds != 300 ||
		c.DestinationConfig.OnFailure.Destination != eicSink || c.DestinationConfig.OnSuccess.Destination != "" ||
		c.LastModified < -5 || c.LastModified > 60 {
		t.Errorf("put_function_event_invoke_config answered %+v", c)
	}
	if c := out.Update; *c.MaximumRetryAttempts != 0 || *c.MaximumEventAgeInSeconds != 300 ||
		c.DestinationConfig.OnFailure.Destination != eicSink || c.DestinationConfig.OnSuccess.Destination != "arn:owl:nats:::orders.done" {
		t.Errorf("update_function_event_invoke_config answered %+v", c)
	}
	if !sameConfig(out.Get.eventConfig, out.Update.eventConfig) {
		t.Errorf("get_function_event_invoke_config answered %+v, want %+v", out.Get, out.Update)
	}
	if len(out.List) != 1 || !sameConfig(out.List[0], out.Update.eventConfig) {
		t.Errorf("list_function_event_invoke_configs answered %+v", out.List)
	}
	if out.Bad != (clientError{"ValidationException", eicTooMany, 400}) {
		t.Errorf("MaximumRetryAttempts=5 answered %+v", out.Bad)
	}
	if out.Missing.Code != "ResourceNotFoundException" || out.Missing.Status != 404 {
		t.Errorf("get after delete answered %+v", out.Missing)
	}
}

func sameConfig(a, b eventConfig) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func eventConfigCLI(t *testing.T, ts *testServer) {
	cli := findAWSCLI(t)
	cli.endpoint = ts.URL
	dir := t.TempDir()
	run := func(v any, args ...string) {
		t.Helper()
		cli.runJSON(t, dir, v, args...)
	}
	fails := func(want string, args ...string) {
		t.Helper()
		stdout, stderr, code := cli.run(t, dir, args...)
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("aws lambda %v: exit %d, want an error saying %q\n%s\n%s", args, code, want, stdout, stderr)
		}
	}
	arn := strings.Replace(eicLatest, "%s", "eic-cli", 1)
	var put eventConfig
	run(&put, "put-function-event-invoke-config", "--function-name", "eic-cli", "--maximum-retry-attempts", "0",
		"--destination-config", `{"OnFailure":{"Destination":"arn:owl:nats:::orders.failed"}}`)
	if put.FunctionArn != arn || *put.MaximumRetryAttempts != 0 || put.MaximumEventAgeInSeconds != nil ||
		put.DestinationConfig.OnFailure.Destination != "arn:owl:nats:::orders.failed" {
		t.Errorf("put-function-event-invoke-config printed %+v", put)
	}
	var upd eventConfig
	run(&upd, "update-function-event-invoke-config", "--function-name", "eic-cli:$LATEST", "--maximum-event-age-in-seconds", "3600")
	if *upd.MaximumRetryAttempts != 0 || *upd.MaximumEventAgeInSeconds != 3600 || upd.DestinationConfig.OnFailure.Destination != "arn:owl:nats:::orders.failed" {
		t.Errorf("update-function-event-invoke-config printed %+v", upd)
	}
	var got eventConfig
	run(&got, "get-function-event-invoke-config", "--function-name", "arn:aws:lambda:us-east-1:000000000000:function:eic-cli", "--qualifier", "$LATEST")
	if !sameConfig(got, upd) {
		t.Errorf("get-function-event-invoke-config printed %+v, want %+v", got, upd)
	}
	var list struct{ FunctionEventInvokeConfigs []eventConfig }
	run(&list, "list-function-event-invoke-configs", "--function-name", "eic-cli")
	if len(list.FunctionEventInvokeConfigs) != 1 || !sameConfig(list.FunctionEventInvokeConfigs[0], upd) {
		t.Errorf("list-function-event-invoke-configs printed %+v", list)
	}
	fails("ValidationException", "put-function-event-invoke-config", "--function-name", "eic-cli", "--maximum-retry-attempts", "5")
	fails("Member must have value less than or equal to 2", "update-function-event-invoke-config", "--function-name", "eic-cli", "--maximum-retry-attempts", "5")
	fails("Owl does not support destination type sqs", "update-function-event-invoke-config", "--function-name", "eic-cli",
		"--destination-config", `{"OnSuccess":{"Destination":"arn:aws:sqs:us-east-1:000000000000:q"}}`)
	fails("event loop", "put-function-event-invoke-config", "--function-name", "eic-cli",
		"--destination-config", `{"OnSuccess":{"Destination":"arn:aws:lambda:us-east-1:000000000000:function:eic-cli"}}`)
	run(nil, "delete-function-event-invoke-config", "--function-name", "eic-cli")
	fails("ResourceNotFoundException", "get-function-event-invoke-config", "--function-name", "eic-cli")
}
