package server_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/testkit"
)

var (
	callerOnce sync.Once
	callerZip  []byte
	callerErr  error
)

// createCaller creates function name from testdata/caller (aws-sdk-go-v2
// inside the sandbox).
func (ts *testServer) createCaller(name string) {
	ts.t.Helper()
	callerOnce.Do(func() {
		var bin string
		if bin, callerErr = testkit.Build("./testdata/caller"); callerErr == nil {
			callerZip, callerErr = zipFiles(map[string]string{"bootstrap": bin})
		}
	})
	if callerErr != nil {
		ts.t.Fatalf("building the caller function: %v", callerErr)
	}
	ts.createZip(name, "provided.al2023", "bootstrap", callerZip)
}

// TestFunctionsCallFunctions: a Go function calls another from inside its
// sandbox with an unmodified aws-sdk-go-v2 configured only by its
// environment (AWS_ENDPOINT_URL_LAMBDA and credentials of its own), both
// synchronously and as an event; its credentials cannot manage
// functions; a function that calls itself is stopped at depth 16 with
// RecursiveInvocationException.
func TestFunctionsCallFunctions(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", asyncConfig)
	ts.createCaller("caller")
	ts.createKitchensink("callee")
	call := func(event string) (r struct {
		Status         int32
		Payload, Error string
		StoppedAt      int `json:"stopped_at"`
	}) {
		t.Helper()
		res := ts.invoke("caller", event, func(in *lambda.InvokeInput) { in.LogType = types.LogTypeNone })
		if res.funcErr != "" || json.Unmarshal([]byte(res.payload), &r) != nil {
			t.Fatalf("caller %s: %+v", event, res)
		}
		return r
	}

	if r := call(`{"call":"callee","payload":{"name":"inside"}}`); r.Status != 200 || r.Payload != `{"message":"hello inside"}` {
		t.Fatalf("a synchronous call from inside: %+v", r)
	}
	r := call(`{"call":"callee","type":"Event","payload":{"print":"called as an event"}}`)
	if r.Status != 202 {
		t.Fatalf("an Event call from inside: %+v", r)
	}
	testkit.WaitFor(t, time.Minute, "the event call to run", func() bool {
		return strings.Contains(ts.logText("callee"), "called as an event")
	})
	if r := call(`{"call":"nope"}`); r.Error != "ResourceNotFoundException" {
		t.Fatalf("a call to an unknown function: %+v", r)
	}
	if r := call(`{"list":true}`); r.Error != "AccessDeniedException" {
		t.Fatalf("ListFunctions with a function's own credentials: %+v", r)
	}

	// A function calling itself: the 16th call is refused.
	if r := call(`{"self":"caller"}`); r.Error != "RecursiveInvocationException" || r.StoppedAt != 15 {
		t.Fatalf("a self-calling chain: %+v, want RecursiveInvocationException at depth 15", r)
	}
	// A function that publishes what it reads onto the subject it reads
	// from: the loop through the subject is stopped at depth 16 too.
	if _, stderr, code := owlCLI(t, ts.URL, "trigger", "add", "--subject", "loop.x", "--function", "caller", "--batch-size", "1"); code != 0 {
		t.Fatalf("owl trigger add --subject: exit %d\n%s", code, stderr)
	}
	before := countStarts(ts.logText("caller"))
	if _, stderr, code := owlCLI(t, ts.URL, "events", "publish", "loop.x", "--data", `{"round": 1}`); code != 0 {
		t.Fatalf("owl events publish: exit %d\n%s", code, stderr)
	}
	testkit.WaitFor(t, 2*time.Minute, "the subject loop to be stopped", func() bool { return ts.SourceStats().Loops == 1 })
	if n := countStarts(ts.logText("caller")) - before; n != 16 {
		t.Fatalf("the subject loop ran %d invocations before it was stopped, want 16", n)
	}

	// The API outside the sandbox does not take an environment's keys.
	resp, body := ts.do("GET", "/2015-03-31/functions", nil, map[string]string{"Authorization": "Bearer not-a-token"})
	wantError(t, resp, body, 403, "UnrecognizedClientException", "~")
}
