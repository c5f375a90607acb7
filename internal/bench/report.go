package bench

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Owl's performance targets on this kind of machine (2 vCPUs), set from its
// peers' published figures (a bare Go net/http server, a container's `runc
// run`, Lambda) and checked against baselines measured in the same run.
// docs/benchmarks.md has each beside Owl's current figure.
const (
	TargetWarmP50       = 150 * time.Microsecond // warm p50 at 1 connection
	TargetWarmRatio     = 2.0                    // warm p50 at most 2× the bare server's
	TargetThroughput    = 25000.0                // invocations/s at 32 connections
	TargetThroughputMin = 1.0 / 3                // at least 1/3 of the bare server's
	TargetColdP50       = 5 * time.Millisecond   // cold start p50, provided Go hello
	TargetColdRunc      = 1.0 / 4                // cold start p50 at most 1/4 of runc run's
	TargetChurn         = 300.0                  // sandbox create+destroy per second
	TargetServerCPU     = 3.0                    // Owl's own CPU per invocation at most 3× the bare server's per request, at 32 connections
	TargetBurstWall     = 3 * time.Second        // the burst below finishes within, with no error
	TargetBurstN        = 1000                   // invocations of the burst target
	TargetBurstSleepMS  = 1000                   // each sleeping 1 s (128 MB function)
	targetConnections   = 32                     // the connection count of the throughput target
)

// churnBenchmark is the sandbox package's create+destroy benchmark; its
// "fresh" variant (every init started anew) is the sustained churn rate.
const churnBenchmark = "BenchmarkCreateDestroy"

// Units of a Comparison.
const (
	UnitMicros  = "us"
	UnitPerSec  = "per_s"
	ratioFormat = "%.2f×"
)

// Report is a run's results and the comparison of Owl's with the baselines
// measured in the same run.
type Report struct {
	Results     []Result     `json:"results"`
	Comparisons []Comparison `json:"comparisons"`
}

// Comparison is one figure of Owl next to the same figure of a baseline.
type Comparison struct {
	Metric string  `json:"metric"` // "warm p50, 1 connection"
	Unit   string  `json:"unit"`   // UnitMicros or UnitPerSec
	Owl    float64 `json:"owl"`
	// Baseline is the baseline's figure, and BaselineOf what it measured;
	// both are empty when the run had no matching baseline.
	Baseline   *float64 `json:"baseline,omitempty"`
	BaselineOf string   `json:"baseline_of,omitempty"`
	Ratio      *float64 `json:"ratio,omitempty"` // Owl / Baseline
	// Target is Owl's target for this figure, if it has one, and Met
	// whether Owl meets it (the ratio part only when there is a baseline).
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	// Errors counts the failed invocations of the Owl result (measured and
	// warm-up); a figure with errors is not a clean measurement.
	Errors int `json:"errors"`
	// Started is when the Owl result was measured (rounds of one run).
	Started time.Time `json:"started"`
	// Busy is how busy the whole machine was during the Owl measurement
	// (0–1), when known: on a quiet machine a cold run is mostly idle.
	Busy *float64 `json:"machine_busy,omitempty"`
}

// Compare pairs every Owl result with the baseline of the same mode and
// connection count measured closest in time (cold starts with the exec
// baseline closest in time) and checks Owl's targets (the Target* constants).
//
// It is long because it is the list of targets, one check a target.
func Compare(results []Result) Report {
	// Rows in a fixed order whatever the order of the files: warm, then
	// throughput, then cold; fewer connections first; then by time.
	var owl []*Result
	for i := range results {
		if results[i].Target == TargetOwl {
			owl = append(owl, &results[i])
		}
	}
	slices.SortStableFunc(owl, func(a, b *Result) int {
		return cmp.Or(cmp.Compare(modeOrder(a.Mode), modeOrder(b.Mode)),
			cmp.Compare(a.Connections, b.Connections), a.Started.Compare(b.Started))
	})
	var rows []row
	add := func(r *Result, c Comparison, t *target) {
		c.Errors, c.Started = r.Errors+r.WarmupErrors, r.Started
		if r.CPU != nil {
			c.Busy = ptr(r.CPU.Busy)
		}
		rows = append(rows, row{c, t})
	}
	p50 := func(s Summary) time.Duration { return s.P50 }
	p90 := func(s Summary) time.Duration { return s.P90 }
	p99 := func(s Summary) time.Duration { return s.P99 }
	for _, r := range owl {
		switch r.Mode {
		case ModeWarm:
			b := closestBaseline(results, r, ModeWarm, r.Connections)
			conns := fmt.Sprintf("%d connection%s", r.Connections, plural(r.Connections))
			var t *target
			if r.Connections == 1 {
				t = &warmTarget
			}
			add(r, latencyRow("warm p50, "+conns, r.Latency, b, p50), t)
			add(r, latencyRow("warm p90, "+conns, r.Latency, b, p90), nil)
			add(r, latencyRow("warm p99, "+conns, r.Latency, b, p99), nil)
			cpuRows(add, r, b, conns, nil)
		case ModeThroughput:
			b := closestBaseline(results, r, ModeThroughput, r.Connections)
			c := Comparison{
				Metric: fmt.Sprintf("throughput, %d connection%s", r.Connections, plural(r.Connections)),
				Unit:   UnitPerSec, Owl: round2(r.Throughput),
			}
			if b != nil {
				c.Baseline, c.BaselineOf = ptr(round2(b.Throughput)), describe(b)
			}
			var t, ct *target
			if r.Connections == targetConnections {
				t, ct = &throughputTarget, &serverCPUTarget
			}
			add(r, c, t)
			cpuRows(add, r, b, fmt.Sprintf("throughput at %d connection%s", r.Connections, plural(r.Connections)), ct)
		case ModeCold:
			b := closestBaseline(results, r, ModeExec, -1)
			add(r, latencyRow("cold start p50", r.Latency, b, p50), &coldTarget)
			// The ratio target is against runc run; the row is there even
			// without a runc baseline, so a run that lacks one shows it.
			add(r, latencyRow("cold start p50 vs runc run", r.Latency, closestBaseline(results, r, ModeRunc, -1), p50), &coldRuncTarget)
			add(r, latencyRow("cold start p90", r.Latency, b, p90), nil)
			add(r, latencyRow("cold start p99", r.Latency, b, p99), nil)
			if r.InitDuration != nil && r.InitDuration.Count > 0 {
				add(r, latencyRow("cold Init Duration p50 (server)", *r.InitDuration, nil, p50), nil)
			}
		case ModeBurst:
			b := closestBaseline(results, r, ModeBurst, r.Connections)
			name := fmt.Sprintf("burst %d", r.Requests)
			var t *target
			if r.Burst != nil && r.Burst.SleepMS > 0 {
				name += fmt.Sprintf(" × %s sleep", fmtDuration(time.Duration(r.Burst.SleepMS)*time.Millisecond))
				if r.Requests == TargetBurstN && r.Connections == r.Requests && r.Burst.SleepMS == TargetBurstSleepMS {
					t = &burstTarget
				}
			}
			if r.Connections != r.Requests {
				name += fmt.Sprintf(", %d connection%s", r.Connections, plural(r.Connections))
			}
			c := Comparison{Metric: name + ": wall time", Unit: UnitMicros, Owl: micros(r.Elapsed)}
			if b != nil {
				c.Baseline, c.BaselineOf = ptr(micros(b.Elapsed)), describe(b)
			}
			add(r, c, t)
			add(r, latencyRow(name+": latency p50", r.Latency, b, p50), nil)
			add(r, latencyRow(name+": latency p99", r.Latency, b, p99), nil)
		case ModeGoBench:
			c := Comparison{Metric: r.Command, Unit: UnitPerSec, Owl: round2(r.Throughput)}
			var t *target
			switch r.Command {
			case churnBenchmark + "/fresh":
				c.Metric, t = "sandbox create+destroy (fresh init, one at a time)", &churnTarget
			case churnBenchmark + "Parallel":
				c.Metric, t = "sandbox create+destroy (fresh inits, 4 per CPU at once)", &churnTarget
			case churnBenchmark + "/spare":
				c.Metric = "sandbox create+destroy (spare init ready, refill untimed)"
			}
			if strings.HasPrefix(r.Command, churnBenchmark) {
				// runc run is a container's create, start and delete.
				if b := closestBaseline(results, r, ModeRunc, -1); b != nil {
					c.Baseline, c.BaselineOf = ptr(round2(b.Throughput)), describe(b)
				}
			}
			add(r, c, t)
		}
	}
	return Report{Results: results, Comparisons: withMedians(rows)}
}

// target is one of Owl's targets: its text and its check of a row.
// A clean target is missed by a row with errors; a target whose check needs
// the ratio has no verdict without a baseline.
type target struct {
	text      string
	met       func(owl float64, ratio *float64) bool
	clean     bool
	needRatio bool
}

var (
	warmTarget = target{
		text: fmt.Sprintf("≤ %s and ≤ %g× bare", fmtDuration(TargetWarmP50), TargetWarmRatio),
		met: func(owl float64, ratio *float64) bool {
			return owl <= micros(TargetWarmP50) && (ratio == nil || *ratio <= TargetWarmRatio)
		},
	}
	throughputTarget = target{
		text: fmt.Sprintf("≥ %s/s and ≥ 1/3 bare", fmtRate(TargetThroughput)),
		met: func(owl float64, ratio *float64) bool {
			return owl >= TargetThroughput && (ratio == nil || *ratio >= TargetThroughputMin)
		},
	}
	coldTarget = target{
		text: "≤ " + fmtDuration(TargetColdP50),
		met:  func(owl float64, _ *float64) bool { return owl <= micros(TargetColdP50) },
	}
	coldRuncTarget = target{
		text:      "≤ 1/4 runc run",
		met:       func(_ float64, ratio *float64) bool { return *ratio <= TargetColdRunc },
		needRatio: true,
	}
	serverCPUTarget = target{
		text:      fmt.Sprintf("≤ %g× bare", TargetServerCPU),
		met:       func(_ float64, ratio *float64) bool { return *ratio <= TargetServerCPU },
		needRatio: true,
	}
	churnTarget = target{
		text: fmt.Sprintf("≥ %s/s", fmtRate(TargetChurn)),
		met:  func(owl float64, _ *float64) bool { return owl >= TargetChurn },
	}
	burstTarget = target{
		text:  fmt.Sprintf("≤ %s, no errors", fmtDuration(TargetBurstWall)),
		met:   func(owl float64, _ *float64) bool { return owl <= micros(TargetBurstWall) },
		clean: true,
	}
)

// row is a comparison being built, with its target.
type row struct {
	c Comparison
	t *target
}

// finish computes the ratio and the verdict of r.
func (r row) finish() Comparison {
	c := r.c
	var exact *float64
	if c.Baseline != nil && *c.Baseline > 0 {
		exact = ptr(c.Owl / *c.Baseline)
		c.Ratio = ptr(round2(*exact))
	}
	if r.t != nil {
		c.Target = r.t.text
		if exact != nil || !r.t.needRatio {
			c.Met = ptr(r.t.met(c.Owl, exact) && (!r.t.clean || c.Errors == 0))
		}
	}
	return c
}

// withMedians lists the rows of each metric together and, for a metric
// measured more than once (rounds), adds a row with the medians.
func withMedians(rows []row) []Comparison {
	var order []string
	groups := map[string][]row{}
	for _, r := range rows {
		if _, ok := groups[r.c.Metric]; !ok {
			order = append(order, r.c.Metric)
		}
		groups[r.c.Metric] = append(groups[r.c.Metric], r)
	}
	out := []Comparison{}
	for _, m := range order {
		g := groups[m]
		for _, r := range g {
			out = append(out, r.finish())
		}
		if len(g) < 2 {
			continue
		}
		med := row{c: Comparison{Metric: fmt.Sprintf("%s, median of %d", m, len(g)), Unit: g[0].c.Unit}, t: g[0].t}
		var owls, bases []float64
		for _, r := range g {
			owls = append(owls, r.c.Owl)
			if r.c.Baseline != nil {
				bases = append(bases, *r.c.Baseline)
				med.c.BaselineOf = r.c.BaselineOf
			}
			med.c.Errors += r.c.Errors
		}
		med.c.Owl = median(owls)
		if len(bases) == len(g) {
			med.c.Baseline = ptr(median(bases))
		} else {
			med.c.BaselineOf = ""
		}
		out = append(out, med.finish())
	}
	return out
}

// median is the lower middle of vs (nearest rank, like Percentile).
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// cpuRows adds the CPU rows of a load result: the server's own CPU per
// invocation beside the baseline server's per request (target t, if
// any), and the functions' (no baseline has any).
func cpuRows(add func(*Result, Comparison, *target), r, b *Result, of string, t *target) {
	if r.CPU == nil {
		return
	}
	if r.CPU.ServerUS != nil {
		c := Comparison{Metric: "server CPU per invocation, " + of, Unit: UnitMicros, Owl: *r.CPU.ServerUS}
		if b != nil && b.CPU != nil && b.CPU.ServerUS != nil {
			c.Baseline, c.BaselineOf = b.CPU.ServerUS, describe(b)
		}
		add(r, c, t)
	}
	if r.CPU.FunctionsUS != nil {
		add(r, Comparison{Metric: "functions' CPU per invocation, " + of, Unit: UnitMicros, Owl: *r.CPU.FunctionsUS}, nil)
	}
}

func latencyRow(metric string, s Summary, b *Result, get func(Summary) time.Duration) Comparison {
	c := Comparison{Metric: metric, Unit: UnitMicros, Owl: micros(get(s))}
	if b != nil {
		c.Baseline, c.BaselineOf = ptr(micros(get(b.Latency))), describe(b)
	}
	return c
}

func modeOrder(mode string) int {
	switch mode {
	case ModeWarm:
		return 0
	case ModeThroughput:
		return 1
	case ModeCold:
		return 2
	case ModeBurst:
		return 3
	case ModeGoBench:
		return 4
	}
	return 5
}

// closestBaseline is the baseline result of mode (and conns, unless -1)
// that started closest in time to r.
func closestBaseline(results []Result, r *Result, mode string, conns int) *Result {
	var best *Result
	var bestGap time.Duration
	for i := range results {
		b := &results[i]
		if b.Target != TargetBaseline || b.Mode != mode || (conns >= 0 && b.Connections != conns) {
			continue
		}
		gap := b.Started.Sub(r.Started).Abs()
		if best == nil || gap < bestGap {
			best, bestGap = b, gap
		}
	}
	return best
}

// describe says what a baseline measured.
func describe(b *Result) string {
	switch b.Mode {
	case ModeExec:
		return "exec " + b.Command
	case ModeRunc:
		return b.Command
	case ModeBurst:
		return "bare net/http hello, sleeping like it"
	}
	return "bare net/http hello"
}

func ptr[T any](v T) *T { return &v }

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

// WriteTable prints the comparisons as an aligned table, then the baselines
// used.
func (rep Report) WriteTable(w io.Writer) error {
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\towl\tbaseline\towl/baseline\ttarget\tverdict\terrors\tat\tbusy")
	seen := map[string]bool{}
	var baselines []string
	for _, c := range rep.Comparisons {
		base, ratio, verdict := "—", "—", ""
		if c.Baseline != nil {
			base = fmtValue(*c.Baseline, c.Unit)
			if !seen[c.BaselineOf] {
				seen[c.BaselineOf] = true
				baselines = append(baselines, c.BaselineOf)
			}
		}
		if c.Ratio != nil {
			ratio = fmt.Sprintf(ratioFormat, *c.Ratio)
		}
		switch {
		case c.Met != nil && *c.Met:
			verdict = "met"
		case c.Met != nil:
			verdict = "MISSED"
		case c.Target != "":
			verdict = "no baseline"
		}
		at := ""
		if !c.Started.IsZero() {
			at = c.Started.UTC().Format("15:04:05")
		}
		busy := ""
		if c.Busy != nil {
			busy = fmt.Sprintf("%.0f%%", 100**c.Busy)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", c.Metric, fmtValue(c.Owl, c.Unit), base, ratio, c.Target, verdict, c.Errors, at, busy)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(table.String()) {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	if len(baselines) > 0 {
		if _, err := fmt.Fprintf(w, "baselines (same run): %s\n", strings.Join(baselines, "; ")); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, "busy: share of all CPUs in use during the Owl measurement, whatever used them (a cold run on a quiet machine is mostly idle)")
	return err
}

func fmtValue(v float64, unit string) string {
	if unit == UnitPerSec {
		return fmtRate(v) + "/s"
	}
	return fmtDuration(fromMicros(v))
}
