package server_test

// Owl's own Python and Node.js runtimes, end to end: real interpreters in
// real sandboxes, driven through aws-sdk-go-v2.

import (
	"context"
	"encoding/json"
	"github.com/owl-project/owl/internal/runtimes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/testkit"
)

func (ts *testServer) createZip(name, runtime, handler string, zip []byte) {
	ts.t.Helper()
	_, err := ts.sdk().CreateFunction(context.Background(), &lambda.CreateFunctionInput{
		FunctionName: aws.String(name),
		Runtime:      types.Runtime(runtime),
		Handler:      aws.String(handler),
		Role:         aws.String("arn:aws:iam::000000000000:role/owl"),
		Code:         &types.FunctionCode{ZipFile: zip},
		Environment:  &types.Environment{Variables: map[string]string{"GREETING": "Hello"}},
	})
	if err != nil {
		ts.t.Fatalf("CreateFunction %s (%s): %v", name, runtime, err)
	}
}

const pythonApp = `import json, logging, os
logger = logging.getLogger()
calls = 0

def handler(event, context):
    global calls
    calls += 1
    print("printing for", context.aws_request_id)
    logger.info("logging %s", event.get("name"))
    if event.get("fail"):
        raise ValueError("bad " + event.get("name", ""))
    return {
        "message": os.environ["GREETING"] + ", " + event.get("name", "world") + "!",
        "calls": calls,
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
        "uid": os.getuid(),
    }
`

const nodeApp = `let calls = 0;
export const handler = async (event, context) => {
  calls++;
  console.log("logging", event.name);
  if (event.fail) throw new TypeError("bad " + event.name);
  return {
    message: process.env.GREETING + ", " + (event.name ?? "world") + "!",
    calls,
    function: context.functionName,
    memory: context.memoryLimitInMB,
    remaining: context.getRemainingTimeInMillis(),
    uid: process.getuid(),
  };
};
`

// calls is the handler's invocation counter in a payload.
func calls(t *testing.T, payload string) int {
	t.Helper()
	var out struct{ Calls int }
	if err := json.Unmarshal([]byte(payload), &out); err != nil {
		t.Fatalf("payload %s: %v", payload, err)
	}
	return out.Calls
}

func TestInterpretedRuntimes(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	for _, tc := range []struct {
		runtime, handler, file, body string
		errorType, logLine           string
	}{
		{"python3", "app.handler", "app.py", pythonApp, "ValueError", "[INFO]\t"},
		{"nodejs", "index.handler", "index.mjs", nodeApp, "TypeError", "\tINFO\tlogging owl"},
	} {
		t.Run(tc.runtime, func(t *testing.T) {
			// Whichever version of the interpreter this machine has.
			i := slices.IndexFunc(runtimes.IDs(), func(id string) bool { return strings.HasPrefix(id, tc.runtime) })
			if i < 0 {
				testkit.Skipf(t, "no %s interpreter on this machine (runtimes: %v)", tc.runtime, runtimes.IDs())
			}
			tc.runtime = runtimes.IDs()[i]
			ts := ts.as(t)
			name := strings.NewReplacer(".", "-").Replace(tc.runtime)
			ts.createZip(name, tc.runtime, tc.handler, makeZip(t, zipEntry{name: tc.file, body: tc.body}))

			r := ts.invoke(name, `{"name":"owl"}`)
			if r.funcErr != "" {
				t.Fatalf("invoke: %s %s\n%s", r.funcErr, r.payload, r.log)
			}
			var out struct {
				Message, Function string
				Calls, UID        int
				Memory            any
				Remaining         int
			}
			if err := json.Unmarshal([]byte(r.payload), &out); err != nil {
				t.Fatalf("payload %s: %v", r.payload, err)
			}
			if out.Message != "Hello, owl!" || out.Function != name || out.UID != 993 || out.Remaining <= 0 || out.Remaining > 3000 {
				t.Errorf("payload %s", r.payload)
			}
			if !strings.Contains(r.log, tc.logLine) || !strings.Contains(r.log, "Init Duration") {
				t.Errorf("log lacks %q or the cold start:\n%s", tc.logLine, r.log)
			}

			// Warm: the same interpreter, module state kept.
			r = ts.invoke(name, `{"name":"again"}`)
			if calls(t, r.payload) != 2 || strings.Contains(r.log, "Init Duration") {
				t.Errorf("second invoke was not warm: %s\n%s", r.payload, r.log)
			}

			// A handler error is a function error of the exception's type,
			// and the environment keeps serving.
			r = ts.invoke(name, `{"name":"x","fail":true}`)
			if r.funcErr != "Unhandled" || r.errorObj["errorType"] != tc.errorType || r.errorObj["errorMessage"] != "bad x" {
				t.Errorf("error invoke: %s %s", r.funcErr, r.payload)
			}
			if r := ts.invoke(name, `{}`); r.funcErr != "" || calls(t, r.payload) != 4 {
				t.Errorf("after the error: %s %s", r.funcErr, r.payload)
			}
		})
	}

	t.Run("init failure", func(t *testing.T) {
		i := slices.IndexFunc(runtimes.IDs(), func(id string) bool { return strings.HasPrefix(id, "python3") })
		if i < 0 {
			testkit.Skip(t, "no python3 interpreter on this machine")
		}
		ts := ts.as(t)
		ts.createZip("py-missing", runtimes.IDs()[i], "nope.handler", makeZip(t, zipEntry{name: "app.py", body: pythonApp}))
		r := ts.invoke("py-missing", `{}`)
		if r.funcErr != "Unhandled" || r.errorObj["errorType"] != "Runtime.ImportModuleError" {
			t.Errorf("missing module: %s %s", r.funcErr, r.payload)
		}
	})

	t.Run("custom runtime without a runnable bootstrap", func(t *testing.T) {
		ts := ts.as(t)
		for name, zip := range map[string][]byte{
			"no-bootstrap":   makeZip(t, zipEntry{name: "README", body: "no code here"}),
			"not-executable": makeZip(t, zipEntry{name: "bootstrap", body: "#!/bin/sh\necho hi\n", mode: 0o644}),
		} {
			ts.createZip(name, "provided.al2023", "bootstrap", zip)
			r := ts.invoke(name, `{}`)
			if r.funcErr != "Unhandled" || r.errorObj["errorType"] != "Runtime.InvalidEntrypoint" {
				t.Errorf("%s: %s %s", name, r.funcErr, r.payload)
			}
		}
	})

	t.Run("shell bootstrap example", func(t *testing.T) {
		if _, err := os.Stat("/usr/bin/curl"); err != nil {
			testkit.Skip(t, "the shell example needs /usr/bin/curl")
		}
		ts := ts.as(t)
		body, err := os.ReadFile("../../examples/hello-shell/bootstrap")
		if err != nil {
			t.Fatal(err)
		}
		ts.createZip("hello-sh", "provided.al2023", "bootstrap", makeZip(t, zipEntry{name: "bootstrap", body: string(body), mode: 0o755}))
		for _, name := range []string{"shell", "again"} {
			r := ts.invoke("hello-sh", `{"name":"`+name+`"}`)
			if r.funcErr != "" || r.payload != `{"message":"Hello, `+name+`!"}` || !strings.Contains(r.log, "handling ") {
				t.Errorf("invoke: %s %s\n%s", r.funcErr, r.payload, r.log)
			}
		}
	})

	t.Run("listed", func(t *testing.T) {
		resp, body := ts.as(t).do("GET", "/owl/v1/runtimes", nil, nil)
		var out struct{ Runtimes []struct{ Id, Kind string } }
		if err := json.Unmarshal(body, &out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("runtimes: %d %s", resp.StatusCode, body)
		}
		var ids []string
		for _, r := range out.Runtimes {
			ids = append(ids, r.Id)
		}
		for _, want := range runtimes.IDs() {
			if !slices.Contains(ids, want) {
				t.Errorf("runtimes %v lack %s", ids, want)
			}
		}
		if slices.Contains(ids, "python3.9") {
			t.Errorf("runtimes %v list python3.9, which is not installed", ids)
		}
	})
}
