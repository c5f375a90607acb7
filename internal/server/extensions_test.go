package server_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/runtimes"
	"github.com/owl-project/owl/internal/testkit"
)

var (
	extOnce sync.Once
	extBin  []byte
	extErr  error
)

// extensionLayer publishes a layer whose /opt/extensions/recorder is the
// test extension (testdata/extension), and returns its ARN and the
// function zip whose bootstrap is the same program.
func (ts *testServer) extensionLayer(t testing.TB) (arn string, fnZip []byte) {
	t.Helper()
	extOnce.Do(func() {
		var path string
		if path, extErr = testkit.Build("./testdata/extension"); extErr == nil {
			extBin, extErr = os.ReadFile(path)
		}
	})
	if extErr != nil {
		t.Fatalf("building the test extension: %v", extErr)
	}
	layer := makeZip(t, zipEntry{name: "extensions/recorder", body: string(extBin), mode: 0o755})
	out, err := ts.sdk().PublishLayerVersion(context.Background(), &lambda.PublishLayerVersionInput{
		LayerName: aws.String("recorder"), Content: &types.LayerVersionContentInput{ZipFile: layer}})
	if err != nil {
		t.Fatalf("PublishLayerVersion: %v", err)
	}
	return aws.ToString(out.LayerVersionArn), makeZip(t, zipEntry{name: "bootstrap", body: string(extBin), mode: 0o755})
}

// createExtended creates a function running the test extension, in mode.
func (ts *testServer) createExtended(t testing.TB, name, mode string) {
	t.Helper()
	arn, zip := ts.extensionLayer(t)
	timeout := int32(10)
	if mode == "function-timeout" {
		timeout = 1
	}
	_, err := ts.sdk().CreateFunction(context.Background(), &lambda.CreateFunctionInput{
		FunctionName: aws.String(name), Runtime: types.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
		Role: aws.String("arn:aws:iam::000000000000:role/owl"), Code: &types.FunctionCode{ZipFile: zip},
		Layers: []string{arn}, Timeout: aws.Int32(timeout),
		Environment: &types.Environment{Variables: map[string]string{"EXT_MODE": mode}},
	})
	if err != nil {
		t.Fatalf("CreateFunction %s: %v", name, err)
	}
}

// TestExtensions runs a Go external extension from a layer in a real
// sandbox: it registers, gets each INVOKE with its request id before the
// invocation ends, receives telemetry (platform.start, platform.report,
// the function's lines) on its own listener, and gets SHUTDOWN when the
// environment is collected.
func TestExtensions(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	ts := startServer(t, "")
	ts.createExtended(t, "extended", "")

	first := ts.invoke("extended", `{}`)
	if first.funcErr != "" {
		t.Fatalf("first invoke: %s %s\n%s", first.funcErr, first.payload, first.log)
	}
	// The extension registered (as the function's name and version) and
	// subscribed before init ended, and got INVOKE for this request id:
	// the function may run before the extension records it, but the
	// invocation ends only when the extension asked for its next event,
	// so the next invocation finds it recorded.
	id1 := requestID(t, first.log)
	second := ts.invoke("extended", `{}`)
	for _, want := range []string{`REGISTERED {"functionName":"extended","functionVersion":"$LATEST","handler":"bootstrap"}`,
		`SUBSCRIBED 200 "OK"`, "INVOKE " + id1} {
		if second.funcErr != "" || !strings.Contains(unquote(second.payload), want) {
			t.Errorf("record lacks %q: %s\n%s", want, second.funcErr, unquote(second.payload))
		}
	}

	// Telemetry of the first invocation arrives after it; later
	// invocations (which thaw the environment) see it.
	var record string
	testkit.Eventually(t, 30*time.Second, func() error {
		r := ts.invoke("extended", `{}`)
		if r.funcErr != "" {
			return fmt.Errorf("invoke: %s %s", r.funcErr, r.payload)
		}
		record = unquote(r.payload)
		for _, want := range []string{"TELEMETRY platform.initStart", "TELEMETRY platform.initRuntimeDone", "TELEMETRY platform.initReport",
			"TELEMETRY platform.start " + id1, "TELEMETRY platform.runtimeDone " + id1, "TELEMETRY platform.report " + id1,
			"TELEMETRY function function says hello", "TELEMETRY extension ext: got INVOKE " + id1} {
			if !strings.Contains(record, want) {
				return fmt.Errorf("record lacks %q:\n%s", want, record)
			}
		}
		return nil
	})
	if strings.Contains(record, "TELEMETRY-BAD") || strings.Count(record, "REGISTERED") != 1 ||
		strings.Contains(record, "TELEMETRY function ext:") || strings.Contains(record, "TELEMETRY extension function") {
		t.Errorf("one environment, well-formed batches, each line in its category expected:\n%s", record)
	}
	// The extension's lines are in the function's log too, unmarked.
	testkit.Eventually(t, 10*time.Second, func() error {
		if log := ts.logText("extended"); !strings.Contains(log, "ext: got INVOKE "+id1) || strings.Contains(log, "\x1e") || strings.Contains(log, `\u001e`) {
			return fmt.Errorf("the extension's line is not in the log as it wrote it:\n%q", log)
		}
		return nil
	})

	// A new configuration retires the environment: SHUTDOWN (spindown),
	// whose output reaches the function's log.
	if _, err := ts.sdk().UpdateFunctionConfiguration(context.Background(), &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String("extended"), Description: aws.String("v2")}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		if log := ts.logText("extended"); !strings.Contains(log, "ext: SHUTDOWN spindown in ") {
			return fmt.Errorf("no SHUTDOWN in the log:\n%s", log)
		}
		return nil
	})

	// A server stopping with a live extension leaves nothing behind.
	if r := ts.invoke("extended", `{}`); r.funcErr != "" || strings.Count(unquote(r.payload), "REGISTERED") != 1 {
		t.Fatalf("after the update: %s %s", r.funcErr, r.payload)
	}
	ts.stop()
	checkNothingLeft(t, ts.dataDir)
}

// TestExtensionFailures: an extension that fails its init, crashes during
// an invocation, reports an exit error or never registers fails the
// invocation with Lambda's error type, and the environment is not reused.
func TestExtensionFailures(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	ts := startServer(t, "")
	for _, tc := range []struct {
		mode, errType, message string
	}{
		{"init-error", "Extension.InitError", "Extension recorder reported Extension.TestInitFailed: test extension fails"},
		{"crash-invoke", "Extension.Crash", "Extension recorder exited"},
		{"exit-error", "Extension.ExitError", "Extension recorder reported Extension.TestExitFailed"},
		{"never-register", "Sandbox.Timedout", "extensions not ready: recorder"},
		{"exit-before-register", "Extension.Crash", "Extension recorder exited before registering"},
		{"function-timeout", "Sandbox.Timedout", "Task timed out after 1.00 seconds"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ts := ts.as(t)
			name := "ext-" + tc.mode
			ts.createExtended(t, name, tc.mode)
			for i := range 2 { // the failed environment is not reused: each fails alike
				r := ts.invoke(name, `{}`)
				if r.funcErr != "Unhandled" || r.errorObj["errorType"] != tc.errType || !strings.Contains(fmt.Sprint(r.errorObj["errorMessage"]), tc.message) {
					t.Fatalf("invoke %d: %q %s, want %s (%s)\n%s", i, r.funcErr, r.payload, tc.errType, tc.message, r.log)
				}
				if tc.mode == "crash-invoke" && i == 0 && !strings.Contains(r.log, "Extension.Crash") {
					t.Errorf("REPORT does not name the failure:\n%s", r.log)
				}
			}
			if tc.mode == "function-timeout" { // its extension is told why
				testkit.Eventually(t, 30*time.Second, func() error {
					if log := ts.logText(name); strings.Count(log, "ext: SHUTDOWN timeout") != 2 {
						return fmt.Errorf("not two SHUTDOWN timeout lines in the log:\n%s", log)
					}
					return nil
				})
			}
		})
	}
	ts.stop()
	checkNothingLeft(t, ts.dataDir)
}

// internalExtension is a Python internal extension, as a sitecustomize:
// it registers for INVOKE before the runtime's first /next, then records
// each event in /tmp/internal-record from a thread.
const internalExtension = `import json, os, threading, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2020-01-01/extension/"
req = urllib.request.Request(api + "register", data=b'{"events":["INVOKE"]}', method="POST",
                             headers={"Lambda-Extension-Name": "py-internal"})
with urllib.request.urlopen(req) as r:
    ident = r.headers["Lambda-Extension-Identifier"]

def follow():
    while True:
        req = urllib.request.Request(api + "event/next", headers={"Lambda-Extension-Identifier": ident})
        with urllib.request.urlopen(req) as r:
            ev = json.load(r)
        with open("/tmp/internal-record", "a") as f:
            f.write(ev["eventType"] + " " + ev.get("requestId", "") + "\n")

threading.Thread(target=follow, daemon=True).start()
`

// requestID is the request id of a log tail's START line.
func requestID(t *testing.T, log string) string {
	t.Helper()
	_, rest, ok := strings.Cut(log, "START RequestId: ")
	id, _, _ := strings.Cut(rest, " ")
	if !ok || id == "" {
		t.Fatalf("no START line in %q", log)
	}
	return id
}

// unquote is a JSON string payload's text.
func unquote(payload string) string {
	s := strings.TrimSuffix(strings.TrimPrefix(payload, `"`), `"`)
	return strings.ReplaceAll(strings.ReplaceAll(s, `\n`, "\n"), `\"`, `"`)
}

// TestExecWrapper: AWS_LAMBDA_EXEC_WRAPPER starts a Python function
// through the wrapper, with the runtime's command as its arguments; a
// wrapper that does not exist fails as Runtime.InvalidEntrypoint.
func TestExecWrapper(t *testing.T) {
	requireRoot(t)
	i := slices.IndexFunc(runtimes.IDs(), func(id string) bool { return strings.HasPrefix(id, "python3") })
	if i < 0 {
		testkit.Skip(t, "no python3 interpreter on this machine")
	}
	t.Parallel()
	ts := startServer(t, "")
	zip := makeZip(t,
		zipEntry{name: "wrapper.sh", mode: 0o755, body: "#!/bin/sh\nexport WRAPPED=\"$# $1\"\necho wrapper ran\nexec \"$@\"\n"},
		zipEntry{name: "app.py", body: "import os\ndef handler(event, context):\n    return os.environ.get('WRAPPED', 'not wrapped')\n"})
	create := func(name, wrapper string) {
		_, err := ts.sdk().CreateFunction(context.Background(), &lambda.CreateFunctionInput{
			FunctionName: aws.String(name), Runtime: types.Runtime(runtimes.IDs()[i]), Handler: aws.String("app.handler"),
			Role: aws.String("arn:aws:iam::000000000000:role/owl"), Code: &types.FunctionCode{ZipFile: zip},
			Environment: &types.Environment{Variables: map[string]string{"AWS_LAMBDA_EXEC_WRAPPER": wrapper}},
		})
		if err != nil {
			t.Fatalf("CreateFunction %s: %v", name, err)
		}
	}
	create("wrapped", "/var/task/wrapper.sh")
	r := ts.invoke("wrapped", `{}`)
	rt, _ := runtimes.Lookup(runtimes.IDs()[i])
	if want := fmt.Sprintf("%q", fmt.Sprintf("%d %s", len(rt.Argv), rt.Argv[0])); r.funcErr != "" || r.payload != want {
		t.Fatalf("payload %s %s, want %s (the runtime's command as the wrapper's arguments)\n%s", r.funcErr, r.payload, want, r.log)
	}
	if !strings.Contains(r.log, "wrapper ran") {
		t.Errorf("the wrapper's output is not in the log:\n%s", r.log)
	}

	// An internal extension: the wrapper points Python at a sitecustomize
	// that registers, in the runtime's process before its first /next,
	// and follows INVOKE events from a thread.
	internal := makeZip(t,
		zipEntry{name: "wrapper.sh", mode: 0o755, body: "#!/bin/sh\nexport PYTHONPATH=/var/task/internal\nexec \"$@\"\n"},
		zipEntry{name: "internal/sitecustomize.py", body: internalExtension},
		zipEntry{name: "app.py", body: "def handler(event, context):\n    try:\n        return open('/tmp/internal-record').read()\n    except FileNotFoundError:\n        return ''\n"})
	zip = internal
	create("internal-ext", "/var/task/wrapper.sh")
	first := ts.invoke("internal-ext", `{}`)
	id1 := requestID(t, first.log)
	// The invocation ended only once the extension asked for its next
	// event, after it recorded this one.
	if r := ts.invoke("internal-ext", `{}`); r.funcErr != "" || !strings.Contains(r.payload, "INVOKE "+id1) {
		t.Fatalf("the internal extension's record lacks INVOKE %s: %s %s\n%s", id1, r.funcErr, r.payload, r.log)
	}

	zip = makeZip(t, zipEntry{name: "app.py", body: "def handler(event, context):\n    return 1\n"})
	create("badly-wrapped", "/var/task/missing.sh")
	r = ts.invoke("badly-wrapped", `{}`)
	if r.funcErr != "Unhandled" || r.errorObj["errorType"] != "Runtime.InvalidEntrypoint" {
		t.Fatalf("missing wrapper: %s %s, want Runtime.InvalidEntrypoint", r.funcErr, r.payload)
	}
}
