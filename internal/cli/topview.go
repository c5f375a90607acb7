package cli

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// topSnapshot is one scrape of an Owl server's /metrics, reduced to what
// owl top shows: per function counters and the duration histogram, and
// the server's gauges.
type topSnapshot struct {
	at        time.Time
	functions map[string]*topCounters
	// Server-wide gauges: invocations running, environments by state,
	// the memory budget and what is reserved of it (bytes), and the
	// asynchronous invocations stored and not yet finished.
	concurrent             float64
	environments           map[string]float64
	memBudget, memReserved float64
	queueDepth             float64
}

// topCounters are one function's cumulative counters at a scrape.
type topCounters struct {
	outcomes       map[string]float64 // owl_invocations_total by outcome, summed over versions
	cold           float64            // owl_cold_starts_total
	count, sum     float64            // owl_invocation_duration_seconds' _count and _sum
	buckets        []topBucket        // its cumulative buckets, ascending, +Inf last
	hasObservation bool
	envs           map[string]float64 // owl_function_environments by state, now
}

// topBucket is a histogram bucket: observations ≤ le, cumulative.
type topBucket struct{ le, count float64 }

// parseTopSnapshot reads a scrape in the Prometheus text format taken at at.
func parseTopSnapshot(r io.Reader, at time.Time) (*topSnapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing the metrics: %w", err)
	}
	s := &topSnapshot{at: at, functions: map[string]*topCounters{}, environments: map[string]float64{}}
	fn := func(m *dto.Metric) *topCounters {
		name := label(m, "function")
		c := s.functions[name]
		if c == nil {
			c = &topCounters{outcomes: map[string]float64{}}
			s.functions[name] = c
		}
		return c
	}
	for _, m := range fams["owl_invocations_total"].GetMetric() {
		fn(m).outcomes[label(m, "outcome")] += m.GetCounter().GetValue()
	}
	for _, m := range fams["owl_cold_starts_total"].GetMetric() {
		fn(m).cold += m.GetCounter().GetValue()
	}
	for _, m := range fams["owl_invocation_duration_seconds"].GetMetric() {
		c, h := fn(m), m.GetHistogram()
		c.count = float64(h.GetSampleCount()) + h.GetSampleCountFloat()
		c.sum = h.GetSampleSum()
		c.hasObservation = true
		c.buckets = c.buckets[:0]
		for _, b := range h.GetBucket() {
			c.buckets = append(c.buckets, topBucket{b.GetUpperBound(), float64(b.GetCumulativeCount()) + b.GetCumulativeCountFloat()})
		}
		sort.Slice(c.buckets, func(i, j int) bool { return c.buckets[i].le < c.buckets[j].le })
		if n := len(c.buckets); n == 0 || !math.IsInf(c.buckets[n-1].le, 1) {
			c.buckets = append(c.buckets, topBucket{math.Inf(1), c.count})
		}
	}
	for _, m := range fams["owl_function_environments"].GetMetric() {
		c := fn(m)
		if c.envs == nil {
			c.envs = map[string]float64{}
		}
		c.envs[label(m, "state")] += m.GetGauge().GetValue()
	}
	for _, m := range fams["owl_environments"].GetMetric() {
		s.environments[label(m, "state")] += m.GetGauge().GetValue()
	}
	gauge := func(name string) float64 {
		v := 0.0
		for _, m := range fams[name].GetMetric() {
			v += m.GetGauge().GetValue()
		}
		return v
	}
	s.concurrent = gauge("owl_concurrent_executions")
	s.memBudget, s.memReserved = gauge("owl_memory_budget_bytes"), gauge("owl_memory_reserved_bytes")
	s.queueDepth = gauge("owl_async_queue_depth")
	return s, nil
}

// label returns the value of m's label name ("" if it has none).
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// topRow is what one function did between two scrapes.
type topRow struct {
	Function string
	// Invocations (every outcome, throttles included), Errors (function
	// errors, timeouts, init errors), Throttles and ColdStarts are counts
	// over the window; Rate is Invocations per second.
	Invocations, Errors, Throttles, ColdStarts float64
	Rate                                       float64
	// P50 and P99 are the handler's duration quantiles in seconds,
	// interpolated in the histogram's buckets as Prometheus'
	// histogram_quantile does; NaN when nothing ran in the window.
	P50, P99 float64
	// Concurrency is the average number of invocations running in the
	// handler over the window: handler seconds per second.
	Concurrency float64
	// Busy, Idle and Frozen are the function's environments in each state
	// at the second scrape (starting ones count as busy).
	Busy, Idle, Frozen float64
}

// topRows computes each function's row from two scrapes of the same
// server, prev then cur, as Prometheus' rate() would: a counter that went
// down was reset (a restart) and counts from zero. Functions gone from cur
// (deleted) are left out; rows are in name order.
func topRows(prev, cur *topSnapshot) []topRow {
	secs := cur.at.Sub(prev.at).Seconds()
	var rows []topRow
	for name, c := range cur.functions {
		p := prev.functions[name]
		if p == nil {
			p = &topCounters{}
		}
		r := topRow{Function: name, P50: math.NaN(), P99: math.NaN()}
		for outcome, v := range c.outcomes {
			d := counterDelta(p.outcomes[outcome], v)
			r.Invocations += d
			switch outcome {
			case "throttle":
				r.Throttles += d
			case "function_error", "timeout", "init_error":
				r.Errors += d
			}
		}
		r.ColdStarts = counterDelta(p.cold, c.cold)
		r.Busy, r.Idle, r.Frozen = c.envs["busy"]+c.envs["starting"], c.envs["idle"], c.envs["frozen"]
		if secs > 0 {
			r.Rate = r.Invocations / secs
			r.Concurrency = counterDelta(p.sum, c.sum) / secs
			if c.count < p.count {
				r.Concurrency = c.sum / secs
			}
		}
		if b := bucketDelta(p, c); b != nil {
			r.P50, r.P99 = bucketQuantile(0.5, b), bucketQuantile(0.99, b)
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Function < rows[j].Function })
	return rows
}

// counterDelta is how much a counter grew from prev to cur; a counter
// that went down was reset, and grew by cur.
func counterDelta(prev, cur float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// bucketDelta returns the histogram of the observations made between the
// scrapes p and c (nil: c has no histogram).
func bucketDelta(p, c *topCounters) []topBucket {
	if !c.hasObservation {
		return nil
	}
	if c.count < p.count || len(p.buckets) != len(c.buckets) { // reset, or new buckets
		return c.buckets
	}
	d := make([]topBucket, len(c.buckets))
	for i, b := range c.buckets {
		d[i] = topBucket{b.le, b.count - p.buckets[i].count}
	}
	return d
}

// bucketQuantile is Prometheus' histogram_quantile over cumulative
// buckets (ascending, +Inf last): the q-quantile, linearly interpolated
// inside the bucket it falls in; the highest finite bound when it falls
// in +Inf; NaN without observations.
func bucketQuantile(q float64, buckets []topBucket) float64 {
	buckets = append([]topBucket(nil), buckets...) // made monotonic below
	n := len(buckets)
	if n < 2 || !math.IsInf(buckets[n-1].le, 1) {
		return math.NaN()
	}
	// Counts from a scrape taken mid-update may dip; as Prometheus does,
	// make them monotonic.
	for i := 1; i < n; i++ {
		if buckets[i].count < buckets[i-1].count {
			buckets[i].count = buckets[i-1].count
		}
	}
	total := buckets[n-1].count
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	b := sort.Search(n-1, func(i int) bool { return buckets[i].count >= rank })
	if b == n-1 {
		return buckets[n-2].le
	}
	if b == 0 && buckets[0].le <= 0 {
		return buckets[0].le
	}
	start, end, count := 0.0, buckets[b].le, buckets[b].count
	if b > 0 {
		start = buckets[b-1].le
		count -= buckets[b-1].count
		rank -= buckets[b-1].count
	}
	return start + (end-start)*(rank/count)
}

// topSort is a column owl top can sort by, its key, and its order.
type topSort struct {
	name string
	key  byte
	less func(a, b topRow) bool // a before b
}

// topSorts are the sort columns in the order the s key cycles through.
var topSorts = []topSort{
	{"invocations", 'i', func(a, b topRow) bool { return a.Invocations > b.Invocations }},
	{"errors", 'e', func(a, b topRow) bool { return a.Errors > b.Errors }},
	{"throttles", 't', func(a, b topRow) bool { return a.Throttles > b.Throttles }},
	{"p99", 'p', func(a, b topRow) bool { return nanLow(a.P99) > nanLow(b.P99) }},
	{"p50", 'm', func(a, b topRow) bool { return nanLow(a.P50) > nanLow(b.P50) }},
	{"cold", 'c', func(a, b topRow) bool { return a.ColdStarts > b.ColdStarts }},
	{"concurrency", 'o', func(a, b topRow) bool { return a.Concurrency > b.Concurrency }},
	{"name", 'n', func(a, b topRow) bool { return a.Function < b.Function }},
}

// topSortNamed returns the index in topSorts of the column name.
func topSortNamed(name string) (int, error) {
	var names []string
	for i, s := range topSorts {
		if s.name == name {
			return i, nil
		}
		names = append(names, s.name)
	}
	return 0, fmt.Errorf("unknown sort column %q: give one of %s", name, strings.Join(names, ", "))
}

func nanLow(v float64) float64 {
	if math.IsNaN(v) {
		return -1
	}
	return v
}

// sortTopRows orders rows by the column topSorts[col], ties by name;
// reverse turns the order around.
func sortTopRows(rows []topRow, col int, reverse bool) {
	less := topSorts[col].less
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if reverse {
			a, b = b, a
		}
		if less(a, b) != less(b, a) {
			return less(a, b)
		}
		return a.Function < b.Function
	})
}

// printTopTable writes the server line and the rows as a table; at most
// maxRows rows (0: all), then a line saying how many more there are.
func printTopTable(w io.Writer, cur *topSnapshot, rows []topRow, maxRows int) error {
	fmt.Fprintf(w, "running %s · environments %s · memory reserved %s of %s · async queue %s\n",
		num(cur.concurrent), topEnvironments(cur.environments), bytesIEC(cur.memReserved), bytesIEC(cur.memBudget), num(cur.queueDepth))
	// Numbers align right; names, padded to the longest, left.
	width := len("FUNCTION")
	for _, r := range rows {
		width = max(width, len(r.Function))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tINV/S\tINV\tERR\tTHR\tCOLD\tP50\tP99\tCONC\tENV B/I/F\t\n", width, "FUNCTION")
	for i, r := range rows {
		if maxRows > 0 && i == maxRows {
			fmt.Fprintf(tw, "%-*s\t\t\t\t\t\t\t\t\t\t\n", width, fmt.Sprintf("… %d more", len(rows)-i))
			break
		}
		fmt.Fprintf(tw, "%-*s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s/%s/%s\t\n", width, r.Function, r.Rate, num(r.Invocations), num(r.Errors),
			num(r.Throttles), num(r.ColdStarts), seconds(r.P50), seconds(r.P99), r.Concurrency, num(r.Busy), num(r.Idle), num(r.Frozen))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("printing the table: %w", err)
	}
	return nil
}

// topEnvironments lists environments by state: the usual states first.
func topEnvironments(envs map[string]float64) string {
	var parts []string
	seen := map[string]bool{}
	for _, s := range []string{"busy", "idle", "frozen", "prewarmed"} {
		if v, ok := envs[s]; ok {
			parts = append(parts, s+" "+num(v))
			seen[s] = true
		}
	}
	var rest []string
	for s := range envs {
		if !seen[s] {
			rest = append(rest, s)
		}
	}
	sort.Strings(rest)
	for _, s := range rest {
		parts = append(parts, s+" "+num(envs[s]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// num prints a count or a gauge: whole numbers without decimals.
func num(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// seconds prints a duration in seconds with a unit that suits it ("-" for NaN).
func seconds(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v < 0.001:
		return fmt.Sprintf("%.0fµs", v*1e6)
	case v < 1:
		return fmt.Sprintf("%.1fms", v*1e3)
	}
	return fmt.Sprintf("%.2fs", v)
}

// bytesIEC prints a byte count in binary units.
func bytesIEC(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", v)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
