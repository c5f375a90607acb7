package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/testkit"
)

// TestMetricsListener: --metrics-addr serves /metrics without
// credentials, and nothing else.
func TestMetricsListener(t *testing.T) {
	t.Parallel()
	// Port 0: the kernel picks, so no other test can take it first.
	addr := startServer(t, "", func(c *config.Config) { c.MetricsAddr = "127.0.0.1:0" }).MetricsAddr()
	for path, want := range map[string]int{"/metrics": 200, "/2015-03-31/functions": 404} {
		r, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != want || (want == 200 && !strings.Contains(string(b), "owl_concurrent_executions 0")) {
			t.Errorf("GET %s on the metrics listener: %d %.200s, want %d", path, r.StatusCode, b, want)
		}
	}
}

// TestMetrics: after a known sequence of invocations — cold and warm
// successes, a function error, a timeout, a throttle, an init error, an
// Event invocation failing through its two retries —
// /metrics says exactly what happened, passes promtool's check, and is
// refused without credentials; and the usage API's totals are exactly the
// sums of the REPORT lines, also after a restart.
func TestMetrics(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	ts := startServer(t, dataDir, asyncConfig)
	ctx := context.Background()
	ts.createKitchensink("m", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(1) })
	ts.createKitchensink("m-async")
	ts.createZip("m-broken", interpreter(t, "python3"), "app.handler",
		makeZip(t, zipEntry{name: "app.py", body: "raise RuntimeError('broken at import')\n"}))

	// Each invocation's REPORT line says what it billed.
	billed := map[string]int{}
	bill := func(name string, r invokeResult) invokeResult {
		billed[name] += parseReport(t, r.log).billedMs
		return r
	}
	bill("m", ts.invoke("m", `{}`)) // cold
	bill("m", ts.invoke("m", `{}`)) // warm
	if r := bill("m", ts.invoke("m", `{"action":"error"}`)); r.funcErr == "" {
		t.Fatalf("the error action succeeded: %+v", r)
	}
	if r := bill("m", ts.invoke("m", `{"action":"sleep","ms":3000}`)); r.funcErr == "" {
		t.Fatalf("the sleep past the timeout succeeded: %+v", r)
	}
	bill("m", ts.invoke("m", `{}`)) // cold again: the timeout took the environment
	if r := bill("m-broken", ts.invoke("m-broken", `{}`)); r.funcErr == "" {
		t.Fatalf("a function that fails at import succeeded: %+v", r)
	}
	if _, err := ts.sdk().PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("m"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.sdk().Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("m")}); err == nil {
		t.Fatal("an invoke of a function with reserved concurrency 0 succeeded")
	}

	// An Event invocation that fails runs three times (two retries), then
	// is given up; its log holds the three runs' REPORT lines.
	id := ts.invokeEvent("m-async", `{"action":"error"}`)
	ts.waitRuns("m-async", id, 3)
	testkit.WaitFor(t, time.Minute, "the event to be given up", func() bool { return ts.EventStats().Dropped == 1 })
	for _, m := range regexp.MustCompile(`Billed Duration: (\d+) ms`).FindAllStringSubmatch(ts.logText("m-async"), -1) {
		n, _ := strconv.Atoi(m[1])
		billed["m-async"] += n
	}

	// Usage: the throttled invocation never ran and is not counted.
	want := []lambdawire.UsageRow{
		{Function: "m", Invocations: 5, Errors: 2, BilledMs: int64(billed["m"]), MBMs: int64(billed["m"]) * 128},
		{Function: "m-async", Invocations: 3, Errors: 3, BilledMs: int64(billed["m-async"]), MBMs: int64(billed["m-async"]) * 128},
		{Function: "m-broken", Invocations: 1, Errors: 1, BilledMs: int64(billed["m-broken"]), MBMs: int64(billed["m-broken"]) * 128},
	}
	for i := range want {
		want[i].GBSeconds = float64(want[i].MBMs) / 1024 / 1000
	}
	checkUsage(t, ts, "", want)
	checkUsage(t, ts, "?function=m-broken&since="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), want[2:])
	checkUsage(t, ts, "?since="+time.Now().Add(2*time.Hour).UTC().Format(time.RFC3339), []lambdawire.UsageRow{})
	for bad, errType := range map[string]string{"?by=week": "InvalidParameterValue", "?since=yesterday": "InvalidParameterValue",
		"?function=no%20such": "ValidationException", "?since=2026-12-06T10:00:00Z&until=2026-12-06T09:00:00Z": "InvalidParameterValue"} {
		if resp, body := ts.do("GET", "/owl/v1/usage"+bad, nil, nil); resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("X-Amzn-ErrorType"), errType) {
			t.Errorf("GET /owl/v1/usage%s: %d %s %s, want 400 %s", bad, resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body, errType)
		}
	}
	defer func() {
		// Kept durably: the same totals after a restart.
		ts.stop()
		ts = startServer(t, dataDir)
		checkUsage(t, ts, "", want)
	}()

	resp, body := ts.do("GET", "/metrics", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	text := string(body)
	testkit.Contains(t, "/metrics", text,
		`owl_invocations_total{function="m",outcome="success",version="$LATEST"} 3`,
		`owl_invocations_total{function="m",outcome="function_error",version="$LATEST"} 1`,
		`owl_invocations_total{function="m",outcome="timeout",version="$LATEST"} 1`,
		`owl_invocations_total{function="m",outcome="throttle",version="$LATEST"} 1`,
		`owl_invocations_total{function="m-broken",outcome="init_error",version="$LATEST"} 1`,
		`owl_cold_starts_total{function="m"} 2`,
		`owl_invocation_duration_seconds_count{function="m"} 5`,
		`owl_init_duration_seconds_count{function="m"} 2`,
		`owl_concurrent_executions 0`,
		`owl_environments{state="busy"} 0`,
		`owl_invocations_total{function="m-async",outcome="function_error",version="$LATEST"} 3`,
		`owl_async_events_total{event="accepted"} 1`,
		`owl_async_events_total{event="retried"} 2`,
		`owl_async_events_total{event="dropped"} 1`,
		`owl_async_events_total{event="delivered"} 0`,
		`owl_async_queue_depth 0`,
		`owl_async_queue_oldest_age_seconds 0`,
	)

	// m's one environment (the timeout took the first) waits, idle or
	// already frozen; m-broken's never became one.
	envs := map[string]int{}
	for _, l := range regexp.MustCompile(`(?m)^owl_function_environments\{function="m",state="(\w+)"\} (\d+)$`).FindAllStringSubmatch(text, -1) {
		envs[l[1]], _ = strconv.Atoi(l[2])
	}
	if envs["idle"]+envs["frozen"] != 1 || envs["busy"]+envs["starting"]+envs["provisioned"] != 0 {
		t.Errorf("m's environments by state = %v, want one idle or frozen", envs)
	}
	if strings.Contains(text, `owl_function_environments{function="m-broken"`) {
		t.Errorf("m-broken, which never started, has environments:\n%s", text)
	}

	// promtool, Prometheus' own checker, accepts the exposition.
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testkit.Skipf(t, "no promtool (apt-get install prometheus) to check the exposition with")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}

	// Without credentials: 403, as every other operation.
	r, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 403 || strings.Contains(string(b), "owl_invocations_total") {
		t.Fatalf("an anonymous scrape: %d %s", r.StatusCode, b)
	}
}

// checkUsage compares GET /owl/v1/usage+query with want.
func checkUsage(t *testing.T, ts *testServer, query string, want []lambdawire.UsageRow) {
	t.Helper()
	resp, body := ts.do("GET", "/owl/v1/usage"+query, nil, nil)
	var got lambdawire.UsageReport
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("GET /owl/v1/usage%s: %d %s", query, resp.StatusCode, body)
	}
	if !reflect.DeepEqual(got.Usage, want) {
		t.Errorf("GET /owl/v1/usage%s:\n got  %+v\n want %+v", query, got.Usage, want)
	}
}
