package cli

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/metrics"
)

// exposition returns what m serves at /metrics.
func exposition(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// topBefore records, on the real metrics package, what happened before
// the window owl top looks at (none of it is in its rows): f's five slow
// successes, and gone and quiet, invoked once.
func topBefore(m *metrics.Metrics) {
	for range 5 {
		m.Invocation("f", "$LATEST", metrics.Success, 500*time.Millisecond, 0, false)
	}
	m.Invocation("gone", "$LATEST", metrics.Success, time.Millisecond, 0, false)
	m.Invocation("quiet", "$LATEST", metrics.Success, time.Millisecond, 0, false)
}

// topWindow records what happens in the window: f's 3 successes (the
// first cold), function error, timeout and throttle, whose handler
// durations are 2, 2, 3 and 10 ms and 3 s; new's init error; and gone's
// deletion.
func topWindow(m *metrics.Metrics) {
	ms := time.Millisecond
	m.Invocation("f", "$LATEST", metrics.Success, 2*ms, 100*ms, true)
	m.Invocation("f", "1", metrics.Success, 2*ms, 0, false)
	m.Invocation("f", "$LATEST", metrics.Success, 3*ms, 0, false)
	m.Invocation("f", "$LATEST", metrics.FunctionError, 10*ms, 0, false)
	m.Invocation("f", "$LATEST", metrics.Timeout, 3*time.Second, 0, false)
	m.Invocation("f", "$LATEST", metrics.Throttle, 0, 0, false)
	m.Invocation("new", "$LATEST", metrics.InitError, 0, 0, false)
	m.Forget("gone")
}

// wantF is f's row over topWindow's window of two seconds: p50 is rank
// 2.5 of 5 in the bucket (1 ms, 4 ms] holding 3, p99 rank 4.95 in
// (1.024 s, 4.096 s] holding 1; CONC is 3.017 handler seconds over 2 s.
var wantF = topRow{Function: "f", Invocations: 6, Errors: 2, Throttles: 1, ColdStarts: 1, Rate: 3,
	P50: 0.001 + 0.003*2.5/3, P99: 1.024 + 3.072*0.95, Concurrency: 3.017 / 2, Busy: 2, Idle: 1, Frozen: 3}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 || (math.IsNaN(a) && math.IsNaN(b)) }

func sameRow(a, b topRow) bool {
	return a.Function == b.Function && a.Invocations == b.Invocations && a.Errors == b.Errors && a.Throttles == b.Throttles &&
		a.ColdStarts == b.ColdStarts && near(a.Rate, b.Rate) && near(a.P50, b.P50) && near(a.P99, b.P99) && near(a.Concurrency, b.Concurrency) &&
		a.Busy == b.Busy && a.Idle == b.Idle && a.Frozen == b.Frozen
}

// TestTopRows: the rows of two scrapes of the real exposition are what
// happened between them — counts, rates, histogram_quantile's
// interpolation in the bucket deltas, concurrency — new functions count
// from zero, deleted ones are left out, and the gauges are read.
func TestTopRows(t *testing.T) {
	m := metrics.New(metrics.Sources{
		Environments: func() map[string]int { return map[string]int{"busy": 2, "idle": 1, "frozen": 4, "prewarmed": 1} },
		Concurrent:   func() int { return 2 },
		MemoryBudget: func() int64 { return 2 << 30 }, MemoryUsed: func() int64 { return 512 << 20 },
		Queue: func() (float64, float64) { return 7, 0 },
		FunctionEnvironments: func() map[string]map[string]int {
			return map[string]map[string]int{"f": {"starting": 1, "busy": 1, "idle": 1, "frozen": 3, "provisioned": 2}}
		},
	})
	topBefore(m)
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	prev, err := parseTopSnapshot(strings.NewReader(exposition(t, m)), t0)
	if err != nil {
		t.Fatal(err)
	}
	topWindow(m)
	cur, err := parseTopSnapshot(strings.NewReader(exposition(t, m)), t0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	rows := topRows(prev, cur)
	want := []topRow{wantF, {Function: "new", Invocations: 1, Errors: 1, Rate: 0.5, P50: math.NaN(), P99: math.NaN()},
		{Function: "quiet", P50: math.NaN(), P99: math.NaN()}}
	if len(rows) != len(want) {
		t.Fatalf("rows = %+v, want %+v", rows, want)
	}
	for i := range want {
		if !sameRow(rows[i], want[i]) {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}

	var b strings.Builder
	if err := printTopTable(&b, cur, rows, 0); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasPrefix(out, "running 2 · environments busy 2, idle 1, frozen 4, prewarmed 1 · memory reserved 512.0 MiB of 2.0 GiB · async queue 7\n") {
		t.Errorf("server line:\n%s", out)
	}
	if f := topTableRow(t, out, "f"); strings.Join(f[:8], " ") != "f 3.0 6 2 1 1 3.5ms 3.94s" || f[len(f)-1] != "2/1/3" {
		t.Errorf("f's line = %q", f)
	}

	// A restart between the scrapes resets the counters: they count from zero.
	m2 := metrics.New(metrics.Sources{})
	m2.Invocation("f", "$LATEST", metrics.Success, 2*time.Millisecond, 0, false)
	restarted, err := parseTopSnapshot(strings.NewReader(exposition(t, m2)), t0.Add(4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	rows = topRows(cur, restarted)
	if len(rows) != 1 || !sameRow(rows[0], topRow{Function: "f", Invocations: 1, Rate: 0.5, P50: 0.001 + 0.003*0.5, P99: 0.001 + 0.003*0.99, Concurrency: 0.001}) {
		t.Errorf("after a restart: %+v", rows)
	}
}

// TestTopQuantile: histogram_quantile's edge cases on text as Prometheus
// clients write it — past the last finite bucket, no observations.
func TestTopQuantile(t *testing.T) {
	const text = `# TYPE owl_invocation_duration_seconds histogram
owl_invocation_duration_seconds_bucket{function="slow",le="0.1"} 0
owl_invocation_duration_seconds_bucket{function="slow",le="1"} 0
owl_invocation_duration_seconds_bucket{function="slow",le="+Inf"} 4
owl_invocation_duration_seconds_sum{function="slow"} 40
owl_invocation_duration_seconds_count{function="slow"} 4
owl_invocation_duration_seconds_bucket{function="idle",le="0.1"} 0
owl_invocation_duration_seconds_bucket{function="idle",le="+Inf"} 0
owl_invocation_duration_seconds_sum{function="idle"} 0
owl_invocation_duration_seconds_count{function="idle"} 0
`
	empty := &topSnapshot{functions: map[string]*topCounters{}}
	cur, err := parseTopSnapshot(strings.NewReader(text), time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	rows := topRows(empty, cur)
	if len(rows) != 2 || !math.IsNaN(rows[0].P99) || rows[1].P50 != 1 || rows[1].P99 != 1 {
		t.Errorf("rows = %+v, want idle without quantiles, slow's at the highest finite bound (1)", rows)
	}
	if _, err := parseTopSnapshot(strings.NewReader("owl_x{ 1\n"), time.Now()); err == nil {
		t.Error("bad exposition text parsed")
	}
}

// topTableRow returns the fields of the table line of function fn.
func topTableRow(t *testing.T, table, fn string) []string {
	t.Helper()
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == fn {
			return f
		}
	}
	t.Fatalf("no line for %s in:\n%s", fn, table)
	return nil
}

// topServer serves the real metrics package's exposition with the test
// token, recording topWindow's invocations right after the first scrape:
// the window of owl top --once holds exactly them.
func topServer(t *testing.T) (url string, scrapes func() int) {
	m := metrics.New(metrics.Sources{Concurrent: func() int { return 1 }})
	topBefore(m)
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" || r.Header.Get("Authorization") != "Bearer "+testToken {
			lambdaError(w, 403, "UnrecognizedClientException", "The security token included in the request is invalid.")
			return
		}
		mu.Lock()
		defer mu.Unlock()
		m.Handler().ServeHTTP(w, r)
		if n++; n == 1 {
			topWindow(m)
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv("OWL_TOKEN", testToken)
	return srv.URL, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestTopOnce: owl top --once prints the window's exact counts per
// function, sorted as asked; -n 2 prints two tables.
func TestTopOnce(t *testing.T) {
	url, _ := topServer(t)
	out, errOut, code := runOwl(t, url, "", "top", "--once", "--interval", "10ms", "--sort", "name")
	if code != 0 {
		t.Fatalf("owl top --once: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "sorted by name") || strings.Contains(out, "\x1b") {
		t.Errorf("not a plain table sorted by name:\n%q", out)
	}
	f := topTableRow(t, out, "f")
	if got := strings.Join(append(f[2:6:6], f[6:8]...), " "); got != "6 2 1 1 3.5ms 3.94s" {
		t.Errorf("f's INV ERR THR COLD P50 P99 = %q, want 6 2 1 1 3.5ms 3.94s\n%s", got, out)
	}
	if i, j, k := strings.Index(out, "\nf "), strings.Index(out, "\nnew "), strings.Index(out, "\nquiet "); i > j || j > k {
		t.Errorf("not sorted by name:\n%s", out)
	}
	if strings.Contains(out, "gone") {
		t.Errorf("a deleted function has a row:\n%s", out)
	}

	url, scrapes := topServer(t)
	out, errOut, code = runOwl(t, url, "", "top", "-n", "2", "--interval", "1ms", "--sort", "errors")
	if code != 0 || strings.Count(out, "FUNCTION") != 2 || scrapes() != 3 {
		t.Fatalf("owl top -n 2: exit %d, %d scrapes: %s\n%s", code, scrapes(), errOut, out)
	}
	first := out[:strings.Index(out, "\n\n")]
	if i, j := strings.Index(first, "\nf "), strings.Index(first, "\nnew "); i > j {
		t.Errorf("not sorted by errors (f 2, new 1):\n%s", first)
	}
}

// TestTopBadInput: a bad flag is refused before any request; a token the
// server refuses is named as the cause.
func TestTopBadInput(t *testing.T) {
	url, scrapes := topServer(t)
	for _, args := range [][]string{{"--sort", "bogus"}, {"--interval", "0s"}, {"-n", "-1"}, {"--once", "-n", "3"}} {
		_, errOut, code := runOwl(t, url, "", append([]string{"top"}, args...)...)
		if code != 1 || !strings.HasPrefix(errOut, "owl: top: ") || !strings.Contains(errOut, strings.TrimLeft(args[len(args)-1], "-")) {
			t.Errorf("owl top %v: exit %d, %q", args, code, errOut)
		}
	}
	if _, errOut, _ := runOwl(t, url, "", "top", "--sort", "bogus"); !strings.Contains(errOut, "invocations, errors") {
		t.Errorf("--sort bogus does not list the columns: %q", errOut)
	}
	if scrapes() != 0 {
		t.Errorf("bad flags still scraped %d times", scrapes())
	}

	t.Setenv("OWL_TOKEN", "not-the-token")
	_, errOut, code := runOwl(t, url, "", "top", "--once", "--interval", "1ms")
	if code != 1 || !strings.Contains(errOut, "refused GET /metrics") || !strings.Contains(errOut, "UnrecognizedClientException") ||
		!strings.Contains(errOut, "this token may not read metrics") {
		t.Errorf("a refused token: exit %d, %q", code, errOut)
	}
}

// TestTopKeys: the keys change the sort column, cycle, reverse and quit.
func TestTopKeys(t *testing.T) {
	v := &topView{}
	for _, step := range []struct {
		key      byte
		col      string
		reversed bool
		goOn     bool
	}{{'e', "errors", false, true}, {'s', "throttles", false, true}, {'r', "throttles", true, true},
		{'n', "name", false, true}, {'s', "invocations", false, true}, {'x', "invocations", false, true},
		{'q', "invocations", false, false}, {3, "invocations", false, false}} {
		goOn := v.key(step.key)
		if topSorts[v.col].name != step.col || v.reverse != step.reversed || goOn != step.goOn {
			t.Errorf("after %q: sort %s reversed %v, go on %v; want %s %v %v", step.key, topSorts[v.col].name, v.reverse, goOn,
				step.col, step.reversed, step.goOn)
		}
	}
	rows := []topRow{{Function: "a", P99: math.NaN()}, {Function: "b", P99: 0.5}, {Function: "c", P99: 0.5}}
	sortTopRows(rows, 3, false) // p99
	if rows[0].Function != "b" || rows[1].Function != "c" || rows[2].Function != "a" {
		t.Errorf("by p99: %+v", rows)
	}
}
