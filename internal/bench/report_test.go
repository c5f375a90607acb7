package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/testkit"
)

func TestFmtDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0"},
		{500 * time.Nanosecond, "500ns"},
		{1500 * time.Nanosecond, "1.50µs"},
		{87300 * time.Nanosecond, "87.3µs"},
		{118 * time.Microsecond, "118µs"},
		{999900 * time.Nanosecond, "1000µs"},
		{1240 * time.Microsecond, "1.24ms"},
		{17100 * time.Microsecond, "17.1ms"},
		{2500 * time.Millisecond, "2.50s"},
	}
	for _, tt := range tests {
		if got := fmtDuration(tt.d); got != tt.want {
			t.Errorf("fmtDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
	rates := map[float64]string{0: "0", 812.4: "812", 8123: "8.12k", 26400: "26.4k", 123456: "123k"}
	for v, want := range rates {
		if got := fmtRate(v); got != want {
			t.Errorf("fmtRate(%g) = %q, want %q", v, got, want)
		}
	}
}

func sampleResult() Result {
	us := time.Microsecond
	return Result{
		Mode: ModeWarm, Target: TargetOwl, Endpoint: "http://127.0.0.1:8790", Function: "hello",
		Connections: 1, Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Elapsed: 1230 * time.Millisecond,
		Requests: 10003, OK: 10000, Errors: 3, Throughput: 8130.08,
		Latency: Summary{Count: 10000, Min: 90 * us, Mean: 121 * us, P50: 118 * us, P90: 140 * us,
			P99: 210 * us, P999: 400 * us, Max: 1200 * us},
		Warmup: 200, WarmupErrors: 1,
		ErrorKinds: []ErrorKind{
			{Kind: "HTTP 429 TooManyRequestsException", Count: 3, Example: `{"message":"Rate Exceeded."}`},
			{Kind: "warm-up: transport error", Count: 1, Example: "connection reset by peer"},
		},
		CPU: &CPU{ClientUS: 30, OthersUS: 200, Busy: 0.75},
	}
}

func TestWriteText(t *testing.T) {
	r := sampleResult()
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `owl warm: hello at http://127.0.0.1:8790, 1 connection
  requests  10000 ok, 3 errors in 1.23s (8.13k/s)
  latency   p50 118µs  p90 140µs  p99 210µs  p99.9 400µs  max 1.20ms  mean 121µs  min 90.0µs
  cpu       75% of the machine busy; per invocation: load generator 30.0µs, everything else 200µs
  warm-up   200 invocations, 1 errors
  errors:
         3  HTTP 429 TooManyRequestsException: {"message":"Rate Exceeded."}
         1  warm-up: transport error: connection reset by peer
`
	if b.String() != want {
		t.Errorf("WriteText =\n%s\nwant\n%s", b.String(), want)
	}
	if !r.Failed() {
		t.Error("Failed() = false with errors")
	}
	r.Errors, r.WarmupErrors = 0, 0
	if r.Failed() {
		t.Error("Failed() = true without errors")
	}
}

func TestWriteTextCold(t *testing.T) {
	ms := time.Millisecond
	r := Result{Mode: ModeCold, Target: TargetOwl, Function: "hello", Endpoint: "http://x", Connections: 1,
		OK: 2, Requests: 2, Elapsed: time.Second, Throughput: 200,
		Latency:      Summary{Count: 2, P50: 4 * ms, P90: 5 * ms, P99: 5 * ms, P999: 5 * ms, Max: 5 * ms, Mean: 4500 * time.Microsecond, Min: 4 * ms},
		InitDuration: &Summary{Count: 2, P50: 3 * ms, P90: 4 * ms, P99: 4 * ms, Max: 4 * ms},
		Update:       &Summary{Count: 2, P50: ms, P90: ms, Max: ms},
		Notes:        []string{"a note"},
	}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	testkit.Contains(t, "WriteText", b.String(),
		"owl cold: hello at http://x, 1 connection\n",
		"  init      p50 3.00ms  p90 4.00ms  p99 4.00ms  max 4.00ms",
		"  update    p50 1.00ms",
		"  note: a note\n",
	)
	if strings.Contains(b.String(), "errors:") {
		t.Errorf("WriteText lists errors when there are none:\n%s", b.String())
	}
}

func TestResultJSON(t *testing.T) {
	r := sampleResult()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"mode": "warm", "target": "owl", "connections": 1.0, "requests": 10003.0, "ok": 10000.0,
		"errors": 3.0, "elapsed_s": 1.23, "throughput_per_s": 8130.08, "warmup_errors": 1.0,
	} {
		if m[key] != want {
			t.Errorf("JSON %s = %v, want %v", key, m[key], want)
		}
	}
	if lat := m["latency"].(map[string]any); lat["p50_us"] != 118.0 || lat["p99_us"] != 210.0 {
		t.Errorf("JSON latency = %v", lat)
	}
	if kinds := m["error_kinds"].([]any); len(kinds) != 2 {
		t.Errorf("JSON error_kinds = %v", kinds)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if !bytes.Equal(b, b2) {
		t.Errorf("round trip changed the result:\n%s\n%s", b, b2)
	}
}

// runResults is one run's results: Owl's and the baselines'.
func runResults(warmP50, bareP50 time.Duration, owlRate, bareRate float64, coldP50 time.Duration) []Result {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	us := time.Microsecond
	lat := func(p50 time.Duration) Summary {
		return Summary{Count: 100, P50: p50, P90: 2 * p50, P99: 3 * p50, Max: 4 * p50}
	}
	return []Result{
		{Mode: ModeWarm, Target: TargetBaseline, Connections: 1, Started: t0, Latency: lat(bareP50)},
		{Mode: ModeWarm, Target: TargetOwl, Connections: 1, Started: t0.Add(time.Minute), Latency: lat(warmP50)},
		{Mode: ModeThroughput, Target: TargetBaseline, Connections: 32, Started: t0, Throughput: bareRate},
		{Mode: ModeThroughput, Target: TargetOwl, Connections: 32, Started: t0.Add(time.Minute), Throughput: owlRate, Errors: 2},
		// A baseline from much later must not be picked over the one closest in time.
		{Mode: ModeThroughput, Target: TargetBaseline, Connections: 32, Started: t0.Add(time.Hour), Throughput: 1},
		{Mode: ModeExec, Target: TargetBaseline, Command: "unshare /bin/true", Started: t0, Latency: lat(1000 * us)},
		{Mode: ModeCold, Target: TargetOwl, Connections: 1, Started: t0.Add(2 * time.Minute), Latency: lat(coldP50),
			InitDuration: &Summary{Count: 100, P50: coldP50 / 2}},
	}
}

func find(t *testing.T, rep Report, metric string) Comparison {
	t.Helper()
	for _, c := range rep.Comparisons {
		if c.Metric == metric {
			return c
		}
	}
	t.Fatalf("no comparison %q in %+v", metric, rep.Comparisons)
	return Comparison{}
}

func TestCompare(t *testing.T) {
	us := time.Microsecond
	tests := []struct {
		name                            string
		warm, bare                      time.Duration
		owlRate, bareRate               float64
		cold                            time.Duration
		warmMet, throughputMet, coldMet bool
		warmRatio, rateRatio            float64
	}{
		{"all met", 120 * us, 70 * us, 30000, 60000, 4 * time.Millisecond, true, true, true, 1.71, 0.5},
		{"warm slower than 2x bare", 145 * us, 70 * us, 30000, 60000, 4 * time.Millisecond, false, true, true, 2.07, 0.5},
		{"warm over 150us", 160 * us, 100 * us, 30000, 60000, 4 * time.Millisecond, false, true, true, 1.6, 0.5},
		{"throughput under 1/3 of bare", 120 * us, 70 * us, 30000, 100000, 4 * time.Millisecond, true, false, true, 1.71, 0.3},
		{"throughput under 25k", 120 * us, 70 * us, 20000, 40000, 4 * time.Millisecond, true, false, true, 1.71, 0.5},
		{"cold over 5ms", 120 * us, 70 * us, 30000, 60000, 6 * time.Millisecond, true, true, false, 1.71, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Compare(runResults(tt.warm, tt.bare, tt.owlRate, tt.bareRate, tt.cold))
			w := find(t, rep, "warm p50, 1 connection")
			if w.Met == nil || *w.Met != tt.warmMet || w.Ratio == nil || *w.Ratio != tt.warmRatio {
				t.Errorf("warm p50 = %+v, want met %v ratio %v", w, tt.warmMet, tt.warmRatio)
			}
			if w.Owl != micros(tt.warm) || *w.Baseline != micros(tt.bare) || w.BaselineOf != "bare net/http hello" {
				t.Errorf("warm p50 figures = %+v", w)
			}
			if p99 := find(t, rep, "warm p99, 1 connection"); p99.Met != nil || p99.Owl != micros(3*tt.warm) {
				t.Errorf("warm p99 = %+v, want no target and 3× p50", p99)
			}
			tp := find(t, rep, "throughput, 32 connections")
			if tp.Met == nil || *tp.Met != tt.throughputMet || *tp.Ratio != tt.rateRatio || *tp.Baseline != tt.bareRate || tp.Errors != 2 {
				t.Errorf("throughput = %+v, want met %v ratio %v against %v", tp, tt.throughputMet, tt.rateRatio, tt.bareRate)
			}
			c := find(t, rep, "cold start p50")
			if c.Met == nil || *c.Met != tt.coldMet || c.BaselineOf != "exec unshare /bin/true" || *c.Baseline != 1000 {
				t.Errorf("cold = %+v, want met %v against the exec baseline", c, tt.coldMet)
			}
			if init := find(t, rep, "cold Init Duration p50 (server)"); !init.Started.Equal(time.Date(2026, 1, 2, 3, 2, 0, 0, time.UTC)) {
				t.Errorf("cold row started %v, want the cold result's start", init.Started)
			}
		})
	}
}

func TestCompareWithoutBaselines(t *testing.T) {
	rs := runResults(120*time.Microsecond, 0, 30000, 0, 4*time.Millisecond)
	var owlOnly []Result
	for _, r := range rs {
		if r.Target == TargetOwl {
			owlOnly = append(owlOnly, r)
		}
	}
	rep := Compare(owlOnly)
	w := find(t, rep, "warm p50, 1 connection")
	if w.Baseline != nil || w.Ratio != nil || w.Met == nil || !*w.Met {
		t.Errorf("warm p50 without baseline = %+v: want the absolute target only", w)
	}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "baselines (same run)") || !strings.Contains(b.String(), "busy: ") {
		t.Errorf("table names baselines that were not measured:\n%s", b.String())
	}
}

func TestWriteTable(t *testing.T) {
	rep := Compare(runResults(120*time.Microsecond, 70*time.Microsecond, 20000, 60000, 6*time.Millisecond))
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "metric ") || !strings.Contains(lines[0], "owl/baseline") {
		t.Errorf("header = %q", lines[0])
	}
	testkit.Contains(t, "table", out,
		"120µs    70.0µs    1.71×         ≤ 150µs and ≤ 2× bare     met          0       03:01:00\n",
		"cold start p50 vs runc run       6.00ms   —         —             ≤ 1/4 runc run            no baseline  0",
		"busy: share of all CPUs",
		"throughput, 32 connections",
		"20.0k/s",
		"60.0k/s",
		"0.33×",
		"≥ 25.0k/s and ≥ 1/3 bare  MISSED",
		"cold start p50",
		"6.00ms",
		"≤ 5.00ms",
		"baselines (same run): bare net/http hello; exec unshare /bin/true\n",
	)
	// Columns line up: every row's owl column starts where the header's does.
	col := strings.Index(lines[0], "owl ")
	for _, l := range lines[1 : len(lines)-3] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("row %q is not aligned with the header at column %d", l, col)
		}
	}
}

func TestReadResults(t *testing.T) {
	dir := t.TempDir()
	rs := runResults(120*time.Microsecond, 70*time.Microsecond, 30000, 60000, 4*time.Millisecond)
	write := func(name string, v any) string {
		p := filepath.Join(dir, name)
		if err := WriteJSON(p, v, nil); err != nil {
			t.Fatal(err)
		}
		return p
	}
	one := write("one.json", rs[0])
	list := write("list.json", rs[1:3])
	rep := write("report.json", Compare(rs[3:]))
	got, err := ReadResults(one, list, rep, list) // list twice: read once
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rs) {
		t.Fatalf("read %d results, want %d", len(got), len(rs))
	}
	for i := range rs {
		if got[i].Mode != rs[i].Mode || got[i].Target != rs[i].Target || got[i].Latency != rs[i].Latency ||
			!got[i].Started.Equal(rs[i].Started) {
			t.Errorf("result %d = %+v, want %+v", i, got[i], rs[i])
		}
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"hello":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResults(bad); err == nil || !strings.Contains(err.Error(), "not an owl bench result") {
		t.Errorf("ReadResults(not a result) = %v", err)
	}
	var out bytes.Buffer
	if err := WriteJSON("-", rs[0], &out); err != nil || !strings.HasPrefix(out.String(), "{\n  \"mode\": \"warm\"") {
		t.Errorf("WriteJSON(-) = %q, %v", out.String(), err)
	}
}

func TestCompareOrder(t *testing.T) {
	rs := runResults(120*time.Microsecond, 70*time.Microsecond, 30000, 60000, 4*time.Millisecond)
	slices.Reverse(rs)
	rep := Compare(rs)
	var metrics []string
	for _, c := range rep.Comparisons {
		metrics = append(metrics, c.Metric)
	}
	want := []string{"warm p50, 1 connection", "warm p90, 1 connection", "warm p99, 1 connection",
		"throughput, 32 connections", "cold start p50", "cold start p50 vs runc run", "cold start p90", "cold start p99", "cold Init Duration p50 (server)"}
	if !slices.Equal(metrics, want) {
		t.Errorf("rows %q, want %q", metrics, want)
	}
}

func TestCompareMedians(t *testing.T) {
	us := time.Microsecond
	var rs []Result
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	for i, v := range []struct {
		owl, bare     time.Duration
		owlTP, bareTP float64
	}{{100 * us, 50 * us, 30000, 60000}, {300 * us, 60 * us, 26000, 90000}, {140 * us, 70 * us, 27000, 70000}} {
		at := t0.Add(time.Duration(i) * time.Hour)
		rs = append(rs,
			Result{Mode: ModeWarm, Target: TargetBaseline, Connections: 1, Started: at, Latency: Summary{P50: v.bare}},
			Result{Mode: ModeWarm, Target: TargetOwl, Connections: 1, Started: at.Add(time.Second), Latency: Summary{P50: v.owl}, Errors: i},
			Result{Mode: ModeThroughput, Target: TargetBaseline, Connections: 32, Started: at, Throughput: v.bareTP},
			Result{Mode: ModeThroughput, Target: TargetOwl, Connections: 32, Started: at.Add(time.Second), Throughput: v.owlTP},
		)
	}
	rep := Compare(rs)
	var p50s []Comparison
	for _, c := range rep.Comparisons {
		if strings.HasPrefix(c.Metric, "warm p50") {
			p50s = append(p50s, c)
		}
	}
	if len(p50s) != 4 || p50s[3].Metric != "warm p50, 1 connection, median of 3" {
		t.Fatalf("warm p50 rows = %+v, want 3 rounds then their median", p50s)
	}
	// Each round against its own baseline: only the third meets both targets.
	for i, want := range []bool{true, false, true} {
		if *p50s[i].Met != want {
			t.Errorf("round %d: met %v, want %v (%+v)", i+1, *p50s[i].Met, want, p50s[i])
		}
	}
	med := p50s[3]
	if med.Owl != 140 || *med.Baseline != 60 || *med.Ratio != 2.33 || *med.Met || med.Errors != 3 || !med.Started.IsZero() {
		t.Errorf("median row = %+v: want 140µs against 60µs, 2.33×, missed, 3 errors", med)
	}
	tp := find(t, rep, "throughput, 32 connections, median of 3")
	if tp.Owl != 27000 || *tp.Baseline != 70000 || *tp.Ratio != 0.39 || !*tp.Met {
		t.Errorf("throughput median = %+v", tp)
	}
}

// targetResults is a run with every kind of result the targets need: cold
// with runc, a 1000 × 1 s burst with its bare baseline, and the sandbox
// churn benchmark.
func targetResults(cold, runc, wall time.Duration, burstErrors int, churnNsOp float64) []Result {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	bench := fmt.Sprintf("goos: linux\npkg: github.com/owl-project/owl/internal/sandbox\n"+
		"BenchmarkCreateDestroy/fresh-2   \t     300\t  %.0f ns/op\t  2000000 create-ns/op\t  52000 B/op\t  300 allocs/op\n"+
		"BenchmarkCreateDestroy/spare-2   \t     500\t  2500000 ns/op\nPASS\n", churnNsOp)
	rs := ParseGoBench(bench, t0.Add(4*time.Minute))
	return append(rs,
		Result{Mode: ModeRunc, Target: TargetBaseline, Command: "runc run /bootstrap", Started: t0, Throughput: 40,
			Latency: Summary{Count: 100, P50: runc, P90: runc, P99: runc}},
		Result{Mode: ModeCold, Target: TargetOwl, Connections: 1, Started: t0.Add(time.Minute),
			Latency: Summary{Count: 50, P50: cold, P90: cold, P99: cold}},
		Result{Mode: ModeBurst, Target: TargetBaseline, Connections: 1000, Requests: 1000, OK: 1000, Started: t0.Add(2 * time.Minute),
			Elapsed: 1100 * ms, Latency: Summary{Count: 1000, P50: 1010 * ms, P99: 1090 * ms}, Burst: &BurstStats{SleepMS: 1000}},
		Result{Mode: ModeBurst, Target: TargetOwl, Connections: 1000, Requests: 1000, OK: 1000 - burstErrors, Errors: burstErrors,
			Started: t0.Add(3 * time.Minute), Elapsed: wall, Latency: Summary{Count: 1000 - burstErrors, P50: wall / 2, P99: wall},
			Burst: &BurstStats{SleepMS: 1000, Cold: 900, Warm: 100 - burstErrors, Fresh: true, MemoryMB: 128}},
	)
}

func TestCompareTargets(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name                          string
		cold, runc, wall              time.Duration
		burstErrors                   int
		churnNsOp                     float64
		coldMet, runcMet, burstMet    bool
		churnMet                      bool
		runcRatio, burstRatio, churnS float64
	}{
		{"all met", 4 * ms, 20 * ms, 2500 * ms, 0, 2e6, true, true, true, true, 0.2, 2.27, 500},
		{"cold over 1/4 runc", 4 * ms, 12 * ms, 2500 * ms, 0, 2e6, true, false, true, true, 0.33, 2.27, 500},
		{"burst too slow", 4 * ms, 20 * ms, 3300 * ms, 0, 2e6, true, true, false, true, 0.2, 3, 500},
		{"burst with errors", 4 * ms, 20 * ms, 2000 * ms, 3, 2e6, true, true, false, true, 0.2, 1.82, 500},
		{"churn under 300/s", 6 * ms, 20 * ms, 2500 * ms, 0, 5e6, false, false, true, false, 0.3, 2.27, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Compare(targetResults(tt.cold, tt.runc, tt.wall, tt.burstErrors, tt.churnNsOp))
			c := find(t, rep, "cold start p50")
			if c.Met == nil || *c.Met != tt.coldMet || c.Target != "≤ 5.00ms" {
				t.Errorf("cold p50 = %+v, want met %v", c, tt.coldMet)
			}
			r := find(t, rep, "cold start p50 vs runc run")
			if r.Met == nil || *r.Met != tt.runcMet || *r.Ratio != tt.runcRatio || r.BaselineOf != "runc run /bootstrap" || r.Target != "≤ 1/4 runc run" {
				t.Errorf("cold vs runc = %+v, want met %v ratio %v", r, tt.runcMet, tt.runcRatio)
			}
			b := find(t, rep, "burst 1000 × 1.00s sleep: wall time")
			if b.Met == nil || *b.Met != tt.burstMet || *b.Ratio != tt.burstRatio || b.Errors != tt.burstErrors ||
				b.BaselineOf != "bare net/http hello, sleeping like it" || b.Target != "≤ 3.00s, no errors" {
				t.Errorf("burst = %+v, want met %v ratio %v", b, tt.burstMet, tt.burstRatio)
			}
			if p99 := find(t, rep, "burst 1000 × 1.00s sleep: latency p99"); p99.Met != nil || p99.Owl != micros(tt.wall) || *p99.Baseline != 1090000 {
				t.Errorf("burst p99 = %+v", p99)
			}
			ch := find(t, rep, "sandbox create+destroy (fresh init, one at a time)")
			if ch.Met == nil || *ch.Met != tt.churnMet || ch.Owl != tt.churnS || ch.Unit != UnitPerSec || *ch.Baseline != 40 || ch.Target != "≥ 300/s" {
				t.Errorf("churn = %+v, want %v/s met %v beside runc's 40/s", ch, tt.churnS, tt.churnMet)
			}
			if sp := find(t, rep, "sandbox create+destroy (spare init ready, refill untimed)"); sp.Met != nil || sp.Owl != 400 {
				t.Errorf("spare churn = %+v: want 400/s, no target", sp)
			}
		})
	}
}

func TestCompareBurstOffTarget(t *testing.T) {
	// A smaller burst, or one over fewer connections, is measured but is not
	// the target's.
	r := Result{Mode: ModeBurst, Target: TargetOwl, Connections: 10, Requests: 100, OK: 100, Elapsed: time.Second,
		Burst: &BurstStats{SleepMS: 1000}}
	rep := Compare([]Result{r})
	if c := find(t, rep, "burst 100 × 1.00s sleep, 10 connections: wall time"); c.Met != nil || c.Target != "" || c.Baseline != nil {
		t.Errorf("off-target burst = %+v", c)
	}
	r.Connections, r.Requests, r.Burst = 1000, 1000, nil // no sleep: not the 1-second function
	if c := find(t, Compare([]Result{r}), "burst 1000: wall time"); c.Met != nil {
		t.Errorf("burst without sleep = %+v", c)
	}
}

func TestWriteTableTargets(t *testing.T) {
	rep := Compare(targetResults(6*time.Millisecond, 20*time.Millisecond, 3300*time.Millisecond, 2, 2e6))
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	testkit.Contains(t, "table", out,
		"cold start p50 vs runc run",
		"≤ 1/4 runc run",
		"burst 1000 × 1.00s sleep: wall time",
		"3.30s",
		"≤ 3.00s, no errors",
		"sandbox create+destroy (fresh init, one at a time)",
		"500/s",
		"≥ 300/s",
		"baselines (same run): runc run /bootstrap; bare net/http hello, sleeping like it\n",
	)
	t.Log("\n" + out)
}

func TestParseGoBench(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	out := "goos: linux\ngoarch: amd64\npkg: example.com/p\ncpu: AMD EPYC\n" +
		"BenchmarkA-2   \t 1000\t  2500000 ns/op\t 12 B/op\t 1 allocs/op\n" +
		"BenchmarkA-2   \t 1000\t  5000000 ns/op\n" +
		"BenchmarkB/sub_case   \t 10\t 1.5 ns/op\n" +
		"--- FAIL: BenchmarkC\nBenchmarkD-8 \t 3\t xyz ns/op\nPASS\nok  \texample.com/p\t1.2s\n"
	rs := ParseGoBench(out, at)
	if len(rs) != 3 {
		t.Fatalf("parsed %d results, want 3: %+v", len(rs), rs)
	}
	a := rs[0]
	if a.Mode != ModeGoBench || a.Target != TargetOwl || a.Command != "BenchmarkA" || a.Requests != 1000 || a.OK != 1000 ||
		a.Throughput != 400 || a.Latency.Mean != 2500*time.Microsecond || a.Elapsed != 2500*time.Millisecond {
		t.Errorf("first = %+v", a)
	}
	if !slices.Equal(a.Notes, []string{"go test -bench, package example.com/p", "12 B/op", "1 allocs/op"}) {
		t.Errorf("notes = %q", a.Notes)
	}
	if rs[1].Started.Equal(a.Started) || rs[2].Command != "BenchmarkB/sub_case" {
		t.Errorf("repeated lines must stay distinct: %v %v; %q", a.Started, rs[1].Started, rs[2].Command)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "churn.txt")
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := filepath.Join(dir, "report.json")
	got, err := ReadResults(p)
	if err != nil || len(got) != 3 {
		t.Fatalf("ReadResults(go test output) = %d results, %v", len(got), err)
	}
	if err := WriteJSON(rep, Compare(got), nil); err != nil {
		t.Fatal(err)
	}
	// Its report and the text again: each result once.
	if again, err := ReadResults(p, rep); err != nil || len(again) != 3 {
		t.Errorf("ReadResults(text, report) = %d results, %v", len(again), err)
	}
	junk := filepath.Join(dir, "junk.txt")
	if err := os.WriteFile(junk, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResults(junk); err == nil || !strings.Contains(err.Error(), "go test -bench output") {
		t.Errorf("ReadResults(junk) = %v", err)
	}
}

// TestCompareCPU: the server's CPU per invocation is compared with the
// bare server's per request (the target, ≤ 3×, at 32 connections), the
// functions' is reported alone, and a result without CPU figures has
// neither row.
func TestCompareCPU(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	cpu := func(server, functions float64) *CPU { return &CPU{ServerUS: &server, FunctionsUS: &functions} }
	for _, tt := range []struct {
		owl, bare float64
		met       bool
	}{{90, 30, true}, {91, 30, false}} {
		rep := Compare([]Result{
			{Mode: ModeThroughput, Target: TargetBaseline, Connections: 32, Started: t0, Throughput: 30000, CPU: &CPU{ServerUS: &tt.bare}},
			{Mode: ModeThroughput, Target: TargetOwl, Connections: 32, Started: t0.Add(time.Minute), Throughput: 10000, CPU: cpu(tt.owl, 50)},
			{Mode: ModeWarm, Target: TargetOwl, Connections: 1, Started: t0, Latency: Summary{Count: 1, P50: time.Millisecond}},
		})
		c := find(t, rep, "server CPU per invocation, throughput at 32 connections")
		if c.Met == nil || *c.Met != tt.met || c.Owl != tt.owl || *c.Baseline != tt.bare || c.Target != "≤ 3× bare" {
			t.Errorf("server CPU %v vs bare %v: %+v, want met %v", tt.owl, tt.bare, c, tt.met)
		}
		if f := find(t, rep, "functions' CPU per invocation, throughput at 32 connections"); f.Owl != 50 || f.Baseline != nil || f.Met != nil {
			t.Errorf("functions' CPU: %+v", f)
		}
		for _, c := range rep.Comparisons {
			if strings.Contains(c.Metric, "CPU") && strings.Contains(c.Metric, "1 connection") {
				t.Errorf("a row of CPU for a result without CPU figures: %+v", c)
			}
		}
	}
}
