package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/testkit"
)

// TestMetricsListener: --metrics-addr serves /metrics without
// credentials, and nothing else.
func TestMetricsListener(t *testing.T) {
	t.Parallel()
	addr := testkit.FreeAddr(t)
	startServer(t, "", func(c *config.Config) { c.MetricsAddr = addr })
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
// successes, a function error, a timeout, a throttle, an init error —
// /metrics says exactly what happened, passes promtool's check, and is
// refused without credentials.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ctx := context.Background()
	ts.createKitchensink("m", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(1) })
	ts.createZip("m-broken", interpreter(t, "python3"), "app.handler",
		makeZip(t, zipEntry{name: "app.py", body: "raise RuntimeError('broken at import')\n"}))

	ts.invoke("m", `{}`) // cold
	ts.invoke("m", `{}`) // warm
	if r := ts.invoke("m", `{"action":"error"}`); r.funcErr == "" {
		t.Fatalf("the error action succeeded: %+v", r)
	}
	if r := ts.invoke("m", `{"action":"sleep","ms":3000}`); r.funcErr == "" {
		t.Fatalf("the sleep past the timeout succeeded: %+v", r)
	}
	ts.invoke("m", `{}`) // cold again: the timeout took the environment
	if r := ts.invoke("m-broken", `{}`); r.funcErr == "" {
		t.Fatalf("a function that fails at import succeeded: %+v", r)
	}
	if _, err := ts.sdk().PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("m"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.sdk().Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("m")}); err == nil {
		t.Fatal("an invoke of a function with reserved concurrency 0 succeeded")
	}

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
	)

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
