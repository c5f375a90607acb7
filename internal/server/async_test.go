package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/testkit"
)

// runs counts the invocations of name that ran with requestID (their
// END lines in the function's log: a run's last).
func (ts *testServer) runs(name, requestID string) int {
	return strings.Count(ts.logText(name), endLine(requestID))
}

// endLine is the END line of requestID, which a run's log ends with (its
// START line is stored when it starts).
func endLine(requestID string) string { return "END RequestId: " + requestID + "\n" }

// waitRuns waits until name ran requestID n times.
func (ts *testServer) waitRuns(name, requestID string, n int) {
	ts.t.Helper()
	testkit.WaitFor(ts.t, 2*time.Minute, fmt.Sprintf("%s to run %s %d times", name, requestID, n), func() bool {
		return ts.runs(name, requestID) >= n
	})
}

// invokeEvent invokes name asynchronously with aws-sdk-go-v2 and returns
// the request id of the 202.
func (ts *testServer) invokeEvent(name, payload string) string {
	ts.t.Helper()
	out, err := ts.sdk().Invoke(context.Background(), &lambda.InvokeInput{
		FunctionName: aws.String(name), InvocationType: types.InvocationTypeEvent, Payload: []byte(payload),
	})
	if err != nil {
		ts.t.Fatalf("Invoke %s (Event): %v", name, err)
	}
	id, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	if out.StatusCode != http.StatusAccepted || id == "" {
		ts.t.Fatalf("Invoke %s (Event): status %d, request id %q; want 202 and an id", name, out.StatusCode, id)
	}
	return id
}

func asyncConfig(c *config.Config) {
	c.AsyncRetryDelay = 100 * time.Millisecond
	c.AsyncThrottleBackoff = time.Second
}

// TestAsyncInvoke: Event invocations through aws-sdk-go-v2, boto3 (Invoke
// and the legacy InvokeAsync) and the AWS CLI are answered 202 and run
// later with their request id; function errors are retried twice; a
// function with reserved concurrency 0 keeps its events until it has
// room; bad input is refused before anything is stored.
//
// It is long because it runs its cases as subtests of one server, which
// starts once for all of them.
func TestAsyncInvoke(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", asyncConfig)
	ts.createKitchensink("async")

	t.Run("aws-sdk-go-v2", func(t *testing.T) {
		ts := ts.as(t)
		id := ts.invokeEvent("async", `{"print":"from the sdk"}`)
		ts.waitRuns("async", id, 1)
		if log := ts.logText("async"); !strings.Contains(log, "from the sdk") {
			t.Errorf("the event's output is not in the log:\n%s", log)
		}
	})

	t.Run("boto3", func(t *testing.T) {
		ts := ts.as(t)
		py := pythonWithBoto3(t)
		script := `
import boto3, json, sys
c = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
r = c.invoke(FunctionName="async", InvocationType="Event", Payload=b'{"print":"from boto3"}')
legacy = c.invoke_async(FunctionName="async", InvokeArgs=b'{"print":"from invoke_async"}')
print(json.dumps({"status": r["StatusCode"], "id": r["ResponseMetadata"]["RequestId"],
                  "legacy": legacy["Status"], "legacy_id": legacy["ResponseMetadata"]["RequestId"]}))
`
		cmd := exec.Command(py, "-c", script, ts.URL, testKeyID, testSecret)
		cmd.Env = awsClientEnv()
		stdout, stderr, code := runCmd(t, cmd)
		var out struct {
			Status, Legacy int
			ID             string `json:"id"`
			LegacyID       string `json:"legacy_id"`
		}
		if code != 0 || json.Unmarshal([]byte(stdout), &out) != nil {
			t.Fatalf("boto3: exit %d\n%s\n%s", code, stdout, stderr)
		}
		if out.Status != 202 || out.Legacy != 202 || out.ID == "" || out.LegacyID == "" {
			t.Fatalf("boto3 answered %+v, want 202 twice with request ids", out)
		}
		ts.waitRuns("async", out.ID, 1)
		ts.waitRuns("async", out.LegacyID, 1)
	})

	t.Run("AWS CLI", func(t *testing.T) {
		ts := ts.as(t)
		cli := findAWSCLI(t)
		cli.endpoint = ts.URL
		dir := t.TempDir()
		var out struct{ StatusCode int }
		if stdout := cli.runJSON(t, dir, &out, "invoke", "--function-name", "async", "--invocation-type", "Event",
			"--payload", `{"print":"from the aws cli"}`, filepath.Join(dir, "out.json")); out.StatusCode != 202 {
			t.Fatalf("aws lambda invoke --invocation-type Event printed %s, want StatusCode 202", stdout)
		}
		testkit.WaitFor(t, 2*time.Minute, "the CLI's event to run", func() bool {
			return strings.Contains(ts.logText("async"), "from the aws cli")
		})
	})

	t.Run("function errors are retried twice", func(t *testing.T) {
		ts := ts.as(t)
		ts.createKitchensink("async-fail")
		id := ts.invokeEvent("async-fail", `{"action":"error"}`)
		ts.waitRuns("async-fail", id, 3)
		testkit.WaitFor(t, 30*time.Second, "the event to be given up", func() bool { return ts.EventStats().Dropped >= 1 })
		time.Sleep(time.Second) // no fourth attempt comes
		if n := ts.runs("async-fail", id); n != 3 {
			t.Errorf("a failing event ran %d times, want 1 + 2 retries", n)
		}
	})

	t.Run("destinations get Lambda's records", func(t *testing.T) {
		ts := ts.as(t)
		// The sink prints every record it is given, one JSON line each.
		sink := makeZip(t, zipEntry{name: "sink.py", body: "import json\n\ndef handler(event, context):\n    print('RECORD ' + json.dumps(event))\n"})
		ts.createZip("async-sink", "python3.11", "sink.handler", sink)
		ts.createKitchensink("async-dest")
		sinkARN := "arn:aws:lambda:us-east-1:000000000000:function:async-sink"
		if _, err := ts.sdk().PutFunctionEventInvokeConfig(context.Background(), &lambda.PutFunctionEventInvokeConfigInput{
			FunctionName: aws.String("async-dest"), MaximumRetryAttempts: aws.Int32(1),
			DestinationConfig: &types.DestinationConfig{
				OnSuccess: &types.OnSuccess{Destination: aws.String(sinkARN)},
				OnFailure: &types.OnFailure{Destination: aws.String(sinkARN)},
			},
		}); err != nil {
			t.Fatal(err)
		}
		good := ts.invokeEvent("async-dest", `{"name":"dest"}`)
		bad := ts.invokeEvent("async-dest", `{"action":"error"}`)
		records := map[string]map[string]any{}
		testkit.WaitFor(t, 2*time.Minute, "both records at the sink", func() bool {
			for _, line := range strings.Split(ts.logText("async-sink"), "\n") {
				_, js, ok := strings.Cut(line, "RECORD ")
				var rec map[string]any
				if ok && json.Unmarshal([]byte(js), &rec) == nil {
					rc, _ := rec["requestContext"].(map[string]any)
					if id, _ := rc["requestId"].(string); id != "" {
						records[id] = rec
					}
				}
			}
			return records[good] != nil && records[bad] != nil
		})
		ctxOf := func(id string) (map[string]any, map[string]any) {
			rc, _ := records[id]["requestContext"].(map[string]any)
			resp, _ := records[id]["responseContext"].(map[string]any)
			return rc, resp
		}
		if rc, resp := ctxOf(good); rc["condition"] != "Success" || rc["approximateInvokeCount"] != float64(1) ||
			rc["functionArn"] != "arn:aws:lambda:us-east-1:000000000000:function:async-dest" ||
			resp["statusCode"] != float64(200) || records[good]["version"] != "1.0" {
			t.Errorf("success record: %v", records[good])
		}
		if p, _ := records[good]["responsePayload"].(map[string]any); p["message"] != "hello dest" {
			t.Errorf("success record's response payload: %v", records[good]["responsePayload"])
		}
		if rc, resp := ctxOf(bad); rc["condition"] != "RetriesExhausted" || rc["approximateInvokeCount"] != float64(2) ||
			resp["functionError"] != "Unhandled" {
			t.Errorf("failure record: %v", records[bad])
		}
		if req, _ := records[bad]["requestPayload"].(map[string]any); req["action"] != "error" {
			t.Errorf("failure record's request payload: %v", records[bad]["requestPayload"])
		}
	})

	t.Run("dead-letter target gets the payload", func(t *testing.T) {
		ts := ts.as(t) // after the destinations case: async-sink exists
		ctx := context.Background()
		sinkARN := "arn:aws:lambda:us-east-1:000000000000:function:async-sink"
		ts.createKitchensink("async-dlq", func(in *lambda.CreateFunctionInput) {
			in.DeadLetterConfig = &types.DeadLetterConfig{TargetArn: aws.String(sinkARN)}
		})
		got, err := ts.sdk().GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("async-dlq")})
		if err != nil || got.DeadLetterConfig == nil || aws.ToString(got.DeadLetterConfig.TargetArn) != sinkARN {
			t.Fatalf("GetFunctionConfiguration's DeadLetterConfig: %+v, %v", got.DeadLetterConfig, err)
		}
		for _, bad := range []string{"arn:aws:sqs:us-east-1:000000000000:dlq", sinkARN + "-nope", "arn:aws:lambda:us-east-1:000000000000:function:async-dlq"} {
			_, err := ts.sdk().UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
				FunctionName: aws.String("async-dlq"), DeadLetterConfig: &types.DeadLetterConfig{TargetArn: aws.String(bad)},
			})
			var ipv *types.InvalidParameterValueException
			if !errors.As(err, &ipv) {
				t.Errorf("dead-letter target %s: %v, want InvalidParameterValueException", bad, err)
			}
		}
		if _, err := ts.sdk().PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{
			FunctionName: aws.String("async-dlq"), MaximumRetryAttempts: aws.Int32(0),
		}); err != nil {
			t.Fatal(err)
		}
		ts.invokeEvent("async-dlq", `{"action":"error","name":"dead letter 7"}`)
		testkit.WaitFor(t, 2*time.Minute, "the payload at the dead-letter target", func() bool {
			return strings.Contains(ts.logText("async-sink"), `RECORD {"action": "error", "name": "dead letter 7"}`)
		})
	})

	t.Run("reserved concurrency 0 holds events", func(t *testing.T) {
		ts := ts.as(t)
		ts.createKitchensink("async-held")
		ctx := context.Background()
		if _, err := ts.sdk().PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String("async-held"), ReservedConcurrentExecutions: aws.Int32(0),
		}); err != nil {
			t.Fatal(err)
		}
		id := ts.invokeEvent("async-held", `{}`)
		testkit.WaitFor(t, 30*time.Second, "the event to be throttled", func() bool { return ts.EventStats().Throttled >= 1 })
		if n := ts.runs("async-held", id); n != 0 {
			t.Fatalf("an event of a function with reserved concurrency 0 ran %d times", n)
		}
		if _, err := ts.sdk().DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String("async-held")}); err != nil {
			t.Fatal(err)
		}
		ts.waitRuns("async-held", id, 1)
	})

	t.Run("bad input is refused before it is stored", func(t *testing.T) {
		ts := ts.as(t)
		event := map[string]string{"X-Amz-Invocation-Type": "Event"}
		big := `"` + strings.Repeat("x", 1<<20) + `"`
		for _, c := range []struct {
			name, path, body string
			status           int
			code             string
		}{
			{"over 1 MB", "/2015-03-31/functions/async/invocations", big, 413, "RequestTooLargeException"},
			{"unknown function", "/2015-03-31/functions/nope/invocations", "{}", 404, "ResourceNotFoundException"},
			{"unknown version", "/2015-03-31/functions/async/invocations?Qualifier=7", "{}", 404, "ResourceNotFoundException"},
			{"not JSON", "/2015-03-31/functions/async/invocations", "{", 400, "InvalidRequestContentException"},
			{"legacy, unknown function", "/2014-11-13/functions/nope/invoke-async/", "{}", 404, "ResourceNotFoundException"},
			{"legacy, over 1 MB", "/2014-11-13/functions/async/invoke-async/", big, 413, ""},
		} {
			before := ts.EventStats()
			resp, body := ts.do("POST", c.path, []byte(c.body), event)
			if resp.StatusCode != c.status || (c.code != "" && resp.Header.Get("X-Amzn-Errortype") != c.code) {
				t.Errorf("%s: %d %s %.200s, want %d %s", c.name, resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), body, c.status, c.code)
			}
			if after := ts.EventStats(); after.Accepted != before.Accepted {
				t.Errorf("%s: an event was stored", c.name)
			}
		}
		resp, body := ts.do("POST", "/2015-03-31/functions/async/invocations", []byte("{}"), map[string]string{"X-Amz-Invocation-Type": "Later"})
		if resp.StatusCode != 400 || !strings.Contains(string(body), "Event, RequestResponse, DryRun") {
			t.Errorf("an unknown invocation type: %d %s", resp.StatusCode, body)
		}
	})
}

// TestAsyncSurvivesKill9 streams events at a real owl serve, kills it with
// SIGKILL while they arrive and run, restarts it on the same data dir and
// checks that every event it answered 202 ran, with its request id.
func TestAsyncSurvivesKill9(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	env := []string{"OWL_ASYNC_RETRY_DELAY=100ms", "OWL_ASYNC_THROTTLE_BACKOFF=1s"}
	first := startOwl(t, dataDir, env...)
	first.createKitchensink("survivor")

	// Senders go on until the kill (or a cap); the kill comes once a few
	// hundred events are in and some have run.
	const senders, perSender, killAfter = 8, 2000, 1000
	var (
		mu       sync.Mutex
		accepted []string
		wg       sync.WaitGroup
	)
	killed := make(chan struct{})
	for s := range senders {
		wg.Go(func() {
			for i := range perSender {
				req, _ := http.NewRequest("POST", first.URL+"/2015-03-31/functions/survivor/invocations",
					strings.NewReader(fmt.Sprintf(`{"print":"event %d-%d"}`, s, i)))
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("X-Amz-Invocation-Type", "Event")
				resp, err := testHTTPClient.Do(req)
				if err != nil {
					return // the server is gone
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					mu.Lock()
					accepted = append(accepted, resp.Header.Get("x-amzn-RequestId"))
					mu.Unlock()
				}
				select {
				case <-killed:
					return
				default:
				}
			}
		})
	}
	// Kill while events arrive and some have run.
	testkit.WaitFor(t, 2*time.Minute, "events accepted and some run", func() bool {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		return n >= killAfter && strings.Count(first.logText("survivor"), "START RequestId: ") > 0
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	close(killed)
	first.waitExit(t, 30*time.Second)
	wg.Wait()
	if len(accepted) == 0 {
		t.Fatal("no event was accepted before the kill")
	}

	second := startOwl(t, dataDir, env...)
	testkit.WaitFor(t, 3*time.Minute, fmt.Sprintf("all %d accepted events to run", len(accepted)), func() bool {
		log := second.logText("survivor")
		for _, id := range accepted {
			if !strings.Contains(log, endLine(id)) {
				return false
			}
		}
		return true
	})
	if len(accepted) == senders*perSender {
		t.Fatalf("every event was accepted before the kill: it came too late to test anything")
	}
	// The 202 waited for the event log too: every accepted event has its
	// record after the kill.
	logged := map[string]bool{}
	for _, e := range second.eventLog("survivor") {
		logged[e.ID] = true
	}
	for _, id := range accepted {
		if !logged[id] {
			t.Fatalf("accepted event %s has no record in the event log after the kill (%d records)", id, len(logged))
		}
	}
	t.Logf("%d events accepted before the kill, every one delivered and logged after the restart", len(accepted))
}

// eventLog returns every record of function fn in the event log, through
// /owl/v1/events page by page.
func (ts *testServer) eventLog(fn string) []lambdawire.CloudEvent {
	ts.t.Helper()
	var all []lambdawire.CloudEvent
	marker := ""
	for {
		resp, body := ts.do("GET", "/owl/v1/events?limit=1000&function="+fn+"&marker="+marker, nil, nil)
		var page lambdawire.EventList
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &page) != nil {
			ts.t.Fatalf("GET /owl/v1/events: %d %.300s", resp.StatusCode, body)
		}
		for _, raw := range page.Events {
			var e lambdawire.CloudEvent
			if err := json.Unmarshal(raw, &e); err != nil {
				ts.t.Fatalf("an event log record: %v: %s", err, raw)
			}
			all = append(all, e)
		}
		if page.NextMarker == "" {
			return all
		}
		marker = page.NextMarker
	}
}

// TestAsyncSIGTERM: SIGTERM while an asynchronous invocation runs makes
// owl serve exit 0, and the event still runs to its end: finished before
// the exit, or handed back and delivered again after the restart with
// its request id. The OnSuccess record, found in the event log, proves it.
func TestAsyncSIGTERM(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	first := startOwl(t, dataDir, "OWL_ASYNC_RETRY_DELAY=100ms", "OWL_ASYNC_THROTTLE_BACKOFF=1s")
	first.createKitchensink("sink")
	first.createKitchensink("slowpoke", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(60) })
	if _, err := first.sdk().PutFunctionEventInvokeConfig(context.Background(), &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName: aws.String("slowpoke"),
		DestinationConfig: &types.DestinationConfig{OnSuccess: &types.OnSuccess{
			Destination: aws.String("arn:aws:lambda:us-east-1:000000000000:function:sink")}},
	}); err != nil {
		t.Fatal(err)
	}
	id := first.invokeEvent("slowpoke", `{"action":"sleep","ms":3000,"path":"/tmp/in-flight"}`)
	inFlight(t, dataDir, "slowpoke", "/tmp/in-flight")
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.waitExit(t, time.Minute); code != 0 {
		t.Fatalf("owl serve exited %d after SIGTERM\n%s", code, first.stderr.String())
	}

	second := startOwl(t, dataDir, "OWL_ASYNC_RETRY_DELAY=100ms", "OWL_ASYNC_THROTTLE_BACKOFF=1s")
	testkit.WaitFor(t, 2*time.Minute, "the OnSuccess record of the event in flight at SIGTERM", func() bool {
		for _, e := range second.eventLog("sink") {
			var rec struct {
				RequestContext struct{ RequestID, Condition string }
			}
			if json.Unmarshal(e.Data, &rec) == nil && rec.RequestContext.RequestID == id && rec.RequestContext.Condition == "Success" {
				return e.Type == "owl.invoke.destination"
			}
		}
		return false
	})
	t.Logf("the event in flight at SIGTERM ran %d times in all", second.runs("slowpoke", id))
}

// TestAsyncDoesNotBlockSync: while a function's events keep its
// deliveries busy and more wait behind them, a synchronous invoke of the
// same function gets an environment of its own and answers at once, not
// after the backlog.
func TestAsyncDoesNotBlockSync(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", asyncConfig, func(c *config.Config) { c.AsyncDeliveries = 2 })
	ts.createKitchensink("busy", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(120) })
	// Six events of 60 s each: two run at a time, a backlog of minutes.
	for range 6 {
		ts.invokeEvent("busy", `{"action":"sleep","ms":60000,"path":"/tmp/busy"}`)
	}
	inst := instanceOf(t, ts.dataDir)
	running := func() (pids []int) {
		for pid := range functionProcesses(inst, "busy") {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/tmp/busy", pid)); err == nil {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	testkit.WaitFor(t, 2*time.Minute, "two events running", func() bool { return len(running()) >= 2 })

	if r := ts.invoke("busy", `{"name":"sync"}`); r.funcErr != "" || !strings.Contains(r.payload, "hello sync") {
		t.Fatalf("a synchronous invoke during the backlog: %+v", r)
	}
	if s := ts.EventStats(); s.Delivered > 0 {
		t.Fatalf("the synchronous invoke answered only after %d events of the backlog were delivered", s.Delivered)
	}

	// End the sleeps (in the running sandboxes, and in the next events
	// any sandbox of busy takes) so the test does not wait out the backlog.
	for pid := range functionProcesses(inst, "busy") {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/root/tmp/busy.release", pid), nil, 0o644)
	}
	testkit.WaitFor(t, 2*time.Minute, "the backlog to drain", func() bool { return ts.EventStats().Delivered >= 6 })
}

// TestAsyncLoopStopped: two functions whose successes go to each other
// are a loop; Owl runs 16 invocations of the chain, then stops it, counts
// it and logs it. The recursion config (aws-sdk-go-v2's
// Get/PutFunctionRecursionConfig) reads Terminate by default and refuses
// anything but Terminate and Allow.
func TestAsyncLoopStopped(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", asyncConfig)
	ctx := context.Background()
	ts.createKitchensink("ping")
	ts.createKitchensink("pong")
	for name, other := range map[string]string{"ping": "pong", "pong": "ping"} {
		if _, err := ts.sdk().PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{
			FunctionName: aws.String(name),
			DestinationConfig: &types.DestinationConfig{OnSuccess: &types.OnSuccess{
				Destination: aws.String("arn:aws:lambda:us-east-1:000000000000:function:" + other)}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ts.sdk().GetFunctionRecursionConfig(ctx, &lambda.GetFunctionRecursionConfigInput{FunctionName: aws.String("ping")})
	if err != nil || got.RecursiveLoop != types.RecursiveLoopTerminate {
		t.Fatalf("GetFunctionRecursionConfig: %+v, %v", got, err)
	}
	first := ts.invokeEvent("ping", `{}`)
	testkit.WaitFor(t, 2*time.Minute, "the loop to be stopped", func() bool { return ts.EventStats().Loops == 1 })
	if n := countStarts(ts.logText("ping")) + countStarts(ts.logText("pong")); n != 16 {
		t.Fatalf("the loop ran %d invocations before it was stopped, want 16", n)
	}
	// The event log shows the chain: each hop's depth, and where it began.
	deepest := 0
	for _, fn := range []string{"ping", "pong"} {
		for _, e := range ts.eventLog(fn) {
			if e.Depth > 0 && e.Origin != first {
				t.Fatalf("hop %d of the chain names %q as its origin, want %s", e.Depth, e.Origin, first)
			}
			deepest = max(deepest, e.Depth)
		}
	}
	if deepest != 16 {
		t.Fatalf("the deepest event of the chain is %d hops away, want 16 (the one stopped)", deepest)
	}

	if _, err := ts.sdk().PutFunctionRecursionConfig(ctx, &lambda.PutFunctionRecursionConfigInput{
		FunctionName: aws.String("ping"), RecursiveLoop: types.RecursiveLoopAllow}); err != nil {
		t.Fatal(err)
	}
	if got, err := ts.sdk().GetFunctionRecursionConfig(ctx, &lambda.GetFunctionRecursionConfigInput{FunctionName: aws.String("ping")}); err != nil || got.RecursiveLoop != types.RecursiveLoopAllow {
		t.Fatalf("after Allow: %+v, %v", got, err)
	}
	resp, body := ts.do("PUT", "/2024-08-31/functions/ping/recursion-config", []byte(`{"RecursiveLoop":"Sometimes"}`), nil)
	wantError(t, resp, body, 400, "ValidationException", "~Terminate, Allow")
	resp, body = ts.do("PUT", "/2024-08-31/functions/nope/recursion-config", []byte(`{"RecursiveLoop":"Allow"}`), nil)
	wantError(t, resp, body, 404, "ResourceNotFoundException", "~nope")
}
