package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/lambdawire"
)

// historyTotals sums a history report's points.
type historyTotals struct{ invocations, errors, throttles, cold int64 }

func (ts *testServer) history(query string) (lambdawire.HistoryReport, historyTotals) {
	ts.t.Helper()
	resp, body := ts.do(http.MethodGet, "/owl/v1/metrics/history?"+query, nil, nil)
	var rep lambdawire.HistoryReport
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &rep) != nil {
		ts.t.Fatalf("GET /owl/v1/metrics/history?%s: %d %s", query, resp.StatusCode, body)
	}
	var tot historyTotals
	for _, p := range rep.Points {
		tot.invocations += p.Invocations
		tot.errors += p.Errors
		tot.throttles += p.Throttles
		tot.cold += p.ColdStarts
	}
	return rep, tot
}

// TestMetricHistory: invocations, errors, throttles and cold starts are
// written to the history every interval and read back summed per step,
// per function and for all; a deleted function's history goes with it;
// bad ranges, steps finer than the samples or too fine for the range
// are 400 InvalidParameterValueException, an unknown function 404.
func TestMetricHistory(t *testing.T) {
	ts := startServer(t, "", func(c *config.Config) { c.MetricHistoryInterval = time.Second })
	ctx := context.Background()
	ts.createKitchensink("hist")
	ts.createKitchensink("hist-other")
	since := time.Now().Add(-time.Minute)

	cold := 0
	for _, payload := range []string{`{}`, `{}`, `{"action":"error"}`, `{}`} {
		r := ts.invoke("hist", payload)
		if strings.Contains(r.log, "Init Duration") {
			cold++
		}
		if (r.funcErr != "") != strings.Contains(payload, "error") {
			t.Fatalf("invoke %s: %+v", payload, r)
		}
	}
	ts.invoke("hist-other", `{}`)
	if _, err := ts.sdk().PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("hist"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.sdk().Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("hist")}); err == nil {
		t.Fatal("an invoke of a function with reserved concurrency 0 succeeded")
	}

	// Samples are written every second: the invocations appear within a
	// few, and stay exactly these (nothing is counted twice).
	query := "function=hist&since=" + since.UTC().Format(time.RFC3339) + "&step=10s"
	want := historyTotals{invocations: 5, errors: 1, throttles: 1, cold: int64(cold)}
	eventually(t, 30*time.Second, func() error {
		if _, got := ts.history(query); got != want {
			return fmt.Errorf("hist's history sums to %+v, want %+v", got, want)
		}
		return nil
	})
	rep, _ := ts.history(query)
	if rep.Function != "hist" || rep.StepSeconds != 10 || rep.IntervalSeconds != 1 {
		t.Errorf("report %s, step %d, interval %d: want hist, 10, 1", rep.Function, rep.StepSeconds, rep.IntervalSeconds)
	}
	start, err := time.Parse(time.RFC3339, rep.Start)
	if err != nil || !start.Equal(since.Truncate(10*time.Second)) || len(rep.Points) < 6 || len(rep.Points) > 10 {
		t.Errorf("start %s (%v), %d points: want %s and about 7 (a minute and the seconds since, by 10 s)",
			rep.Start, err, len(rep.Points), since.Truncate(10*time.Second).UTC().Format(time.RFC3339))
	}
	var p99 bool
	for _, p := range rep.Points {
		p99 = p99 || p.DurationP99Ms != nil && *p.DurationP99Ms > 0
	}
	if !p99 {
		t.Errorf("no point has a duration p99: %+v", rep.Points)
	}
	// Every function together; a relative since; the default step.
	all, tot := ts.history("since=1h")
	if tot.invocations != 6 || all.Function != "" || len(all.Points) < 360 || len(all.Points) > 361 {
		t.Errorf("all functions over 1h: %d invocations in %d points, want 6 in 360", tot.invocations, len(all.Points))
	}

	// Over a day, by 5 minutes (rollups, and samples for the last
	// minutes): the same counts.
	if _, got := ts.history("function=hist&since=24h"); got != want {
		t.Errorf("hist over 24h: %+v, want %+v", got, want)
	}

	// A deleted function's history goes with it; the sums of all
	// functions keep what it did.
	if _, err := ts.sdk().DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("hist-other")}); err != nil {
		t.Fatal(err)
	}
	if _, tot := ts.history("since=1h"); tot.invocations != 6 {
		t.Errorf("after deleting hist-other: %d invocations of all functions, want the 6 that ran", tot.invocations)
	}
	ts.createKitchensink("hist-other")
	if _, tot := ts.history("function=hist-other&since=1h"); tot.invocations != 0 {
		t.Errorf("a new hist-other has the deleted one's %d invocations", tot.invocations)
	}

	badHistoryQueries(t, ts)
	// Without credentials: 403, as every other operation.
	resp, _ := ts.do(http.MethodGet, "/owl/v1/metrics/history?since=1h", nil, map[string]string{"Authorization": ""})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("an anonymous history query: %d, want 403", resp.StatusCode)
	}
}

// badHistoryQueries checks the history API's answers to bad input.
func badHistoryQueries(t *testing.T, ts *testServer) {
	now := time.Now().UTC()
	for _, c := range []struct {
		query       string
		status      int
		code, match string
	}{
		{"function=hist&step=1ms", 400, "InvalidParameterValueException", "~finer than the history of this range: it is kept by 1s"},
		{"function=hist&since=48h&step=10s", 400, "InvalidParameterValueException", "~finer than the history of this range: it is kept by 5m0s"},
		{"function=hist&since=168h&step=5m", 400, "InvalidParameterValueException", "~too small for a range of 168h0m0s"},
		{"since=yesterday", 400, "InvalidParameterValueException", "~neither an RFC 3339 time"},
		{"since=-1h", 400, "InvalidParameterValueException", "~must be positive"},
		{"step=often", 400, "InvalidParameterValueException", "~is neither a duration"},
		{"since=" + now.Format(time.RFC3339) + "&until=" + now.Add(-time.Hour).Format(time.RFC3339), 400,
			"InvalidParameterValueException", "~The range is empty"},
		{"since=" + now.Add(time.Hour).Format(time.RFC3339) + "&until=" + now.Add(2*time.Hour).Format(time.RFC3339), 400,
			"InvalidParameterValueException", "~is in the future"},
		{"function=no-such-function", 404, "ResourceNotFoundException", "~no-such-function"},
		{"function=no%20such", 400, "ValidationException", "~"},
	} {
		resp, body := ts.do(http.MethodGet, "/owl/v1/metrics/history?"+c.query, nil, nil)
		wantError(t, resp, body, c.status, c.code, c.match)
	}
}
