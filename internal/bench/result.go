package bench

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Modes a Result can come from.
const (
	ModeWarm       = "warm"
	ModeThroughput = "throughput"
	ModeCold       = "cold"
	ModeExec       = "exec"
	ModeBurst      = "burst"
	// ModeRunc is a baseline: `runc run` of a static program, the
	// cold-start cost of an OCI container.
	ModeRunc = "runc"
	// ModeGoBench is a `go test -bench` result read by ReadResults.
	ModeGoBench = "gobench"
)

// Targets a Result can be about.
const (
	TargetOwl      = "owl"
	TargetBaseline = "baseline"
)

// Result is one benchmark run, as printed and as written with --json.
type Result struct {
	Mode        string    `json:"mode"`
	Target      string    `json:"target"`             // "owl" or "baseline"
	Endpoint    string    `json:"endpoint,omitempty"` // empty for exec
	Function    string    `json:"function,omitempty"`
	Command     string    `json:"command,omitempty"` // exec: what was run
	Connections int       `json:"connections"`
	Started     time.Time `json:"started"`
	// Elapsed is the wall time of the measured part.
	Elapsed time.Duration `json:"-"`
	// Requests is how many measured invocations were sent (OK + Errors).
	Requests int `json:"requests"`
	OK       int `json:"ok"`
	Errors   int `json:"errors"`
	// Throughput is successful invocations per second of Elapsed.
	Throughput float64 `json:"throughput_per_s"`
	// Latency summarises the successful invocations' round trips.
	Latency Summary `json:"latency"`
	// InitDuration (cold) summarises the Init Duration the platform reported.
	InitDuration *Summary `json:"init_duration,omitempty"`
	// Update (cold) summarises the UpdateFunctionConfiguration calls.
	Update *Summary `json:"update,omitempty"`
	// Burst (burst) is the concurrency reached and the cold/warm split.
	Burst *BurstStats `json:"burst,omitempty"`
	// CPU is where the machine's CPU went while measuring (warm, throughput).
	CPU *CPU `json:"cpu,omitempty"`
	// Warmup counts the invocations before measuring, and their errors.
	Warmup       int         `json:"warmup"`
	WarmupErrors int         `json:"warmup_errors"`
	ErrorKinds   []ErrorKind `json:"error_kinds,omitempty"` // measured and warm-up errors, by kind
	Host         Host        `json:"host"`
	Notes        []string    `json:"notes,omitempty"`
}

// ErrorKind is one kind of failure and how often it happened.
type ErrorKind struct {
	Kind    string `json:"kind"` // "HTTP 429 TooManyRequestsException", "function error: Unhandled", "transport error", …
	Count   int    `json:"count"`
	Example string `json:"example"`
}

// Failed reports whether any invocation, measured or warm-up, failed.
func (r *Result) Failed() bool { return r.Errors > 0 || r.WarmupErrors > 0 }

type resultJSON Result

// MarshalJSON adds elapsed_s.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		resultJSON
		ElapsedS float64 `json:"elapsed_s"`
	}{resultJSON(r), r.Elapsed.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Result) UnmarshalJSON(b []byte) error {
	var j struct {
		resultJSON
		ElapsedS float64 `json:"elapsed_s"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Result(j.resultJSON)
	r.Elapsed = time.Duration(math.Round(j.ElapsedS * 1e9))
	return nil
}

// fill sets the counts and statistics of r from a merged tally.
func (r *Result) fill(t *tally, elapsed time.Duration) {
	r.Elapsed = elapsed
	r.OK, r.Errors = t.ok, t.errs
	r.Requests = t.ok + t.errs
	if elapsed > 0 {
		r.Throughput = float64(t.ok) / elapsed.Seconds()
	}
	r.Latency = Summarize(t.latencies)
	r.addKinds("", t.kinds)
}

// addKinds appends kinds to r.ErrorKinds, most frequent first, with prefix
// on each kind.
func (r *Result) addKinds(prefix string, kinds map[string]*ErrorKind) {
	start := len(r.ErrorKinds)
	for _, k := range kinds {
		c := *k
		c.Kind = prefix + c.Kind
		r.ErrorKinds = append(r.ErrorKinds, c)
	}
	slices.SortFunc(r.ErrorKinds[start:], func(a, b ErrorKind) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Kind, b.Kind))
	})
}

// Host describes the machine a result was measured on.
type Host struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model,omitempty"`
	Kernel     string `json:"kernel,omitempty"`
	GoVersion  string `json:"go_version"`
}

// ThisHost describes the machine this process runs on (best effort: CPU
// model and kernel come from /proc on Linux).
func ThisHost() Host {
	h := Host{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return h
}

// WriteText prints r for a person.
func (r *Result) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s\n", r.title())
	fmt.Fprintf(bw, "  requests  %d ok, %d errors in %s (%s/s)\n",
		r.OK, r.Errors, fmtDuration(r.Elapsed), fmtRate(r.Throughput))
	if r.Latency.Count > 0 {
		l := r.Latency
		fmt.Fprintf(bw, "  latency   p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s  min %s\n",
			fmtDuration(l.P50), fmtDuration(l.P90), fmtDuration(l.P99), fmtDuration(l.P999),
			fmtDuration(l.Max), fmtDuration(l.Mean), fmtDuration(l.Min))
	}
	if s := r.InitDuration; s != nil && s.Count > 0 {
		fmt.Fprintf(bw, "  init      p50 %s  p90 %s  p99 %s  max %s  (Init Duration reported by the platform)\n",
			fmtDuration(s.P50), fmtDuration(s.P90), fmtDuration(s.P99), fmtDuration(s.Max))
	}
	if s := r.Update; s != nil && s.Count > 0 {
		fmt.Fprintf(bw, "  update    p50 %s  p90 %s  max %s  (UpdateFunctionConfiguration, not part of the cold start)\n",
			fmtDuration(s.P50), fmtDuration(s.P90), fmtDuration(s.Max))
	}
	if b := r.Burst; b != nil {
		fmt.Fprintf(bw, "  burst     %d invocation%s started at once, wall %s from the first send to the last response; peak %d in flight, %d connection%s opened\n",
			r.Requests, plural(r.Requests), fmtDuration(r.Elapsed), b.PeakInFlight, b.Dials, plural(b.Dials))
		fmt.Fprintf(bw, "  cold      %d cold (Init Duration in the log tail), %d warm, %d without a log tail", b.Cold, b.Warm, b.NoLog)
		if b.SleepMS > 0 {
			fmt.Fprintf(bw, "; event sleep_ms %d", b.SleepMS)
		}
		if b.MemoryMB > 0 {
			fmt.Fprintf(bw, "; function %d MB", b.MemoryMB)
		}
		if b.Fresh {
			fmt.Fprintf(bw, "; fresh revision")
		}
		fmt.Fprintln(bw)
	}
	if c := r.CPU; c != nil {
		fmt.Fprintf(bw, "  cpu       %.0f%% of the machine busy; per invocation: load generator %s", 100*c.Busy, fmtDuration(fromMicros(c.ClientUS)))
		if c.ServerUS != nil {
			fmt.Fprintf(bw, ", server %s", fmtDuration(fromMicros(*c.ServerUS)))
		}
		if c.FunctionsUS != nil {
			fmt.Fprintf(bw, ", functions %s", fmtDuration(fromMicros(*c.FunctionsUS)))
		}
		fmt.Fprintf(bw, ", everything else %s\n", fmtDuration(fromMicros(c.OthersUS)))
	}
	if r.Warmup > 0 {
		fmt.Fprintf(bw, "  warm-up   %d invocation%s, %d errors\n", r.Warmup, plural(r.Warmup), r.WarmupErrors)
	}
	if len(r.ErrorKinds) > 0 {
		fmt.Fprintf(bw, "  errors:\n")
		for _, k := range r.ErrorKinds {
			fmt.Fprintf(bw, "    %6d  %s: %s\n", k.Count, k.Kind, k.Example)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(bw, "  note: %s\n", n)
	}
	return bw.Flush()
}

func (r *Result) title() string {
	var b strings.Builder
	b.WriteString(r.Target + " " + r.Mode)
	switch {
	case r.Command != "":
		fmt.Fprintf(&b, ": %s", r.Command)
	case r.Function != "":
		fmt.Fprintf(&b, ": %s at %s", r.Function, r.Endpoint)
	case r.Endpoint != "":
		fmt.Fprintf(&b, ": %s", r.Endpoint)
	}
	if r.Connections > 0 {
		fmt.Fprintf(&b, ", %d connection%s", r.Connections, plural(r.Connections))
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// fmtDuration prints a latency with three significant digits in a unit
// that suits it: 87.3µs, 1.24ms, 2.50s.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return sig3(float64(d)/1e3) + "µs"
	case d < time.Second:
		return sig3(float64(d)/1e6) + "ms"
	}
	return sig3(d.Seconds()) + "s"
}

// sig3 formats v (>= 1) with three significant digits.
func sig3(v float64) string {
	switch {
	case v >= 99.95:
		return fmt.Sprintf("%.0f", v)
	case v >= 9.995:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// fmtRate prints a rate per second: 812, 8.12k, 81.2k.
func fmtRate(v float64) string {
	switch {
	case v <= 0:
		return "0"
	case v < 1000:
		return fmt.Sprintf("%.0f", v)
	}
	return sig3(v/1000) + "k"
}

// WriteJSON writes v as indented JSON to path, or to stdout when path is
// "-".
func WriteJSON(path string, v any, stdout io.Writer) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err := stdout.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

// ReadResults reads result files written by WriteJSON: each holds one
// Result, a list of them, or a Report; or the text output of `go test
// -bench` (see ParseGoBench). A result read twice (a report and the files
// it was made from) is kept once.
func ReadResults(paths ...string) ([]Result, error) {
	all, err := readResults(paths)
	if err != nil {
		return nil, err
	}
	type key struct {
		mode, target, endpoint, command string
		conns                           int
		started                         time.Time
	}
	seen := map[key]bool{}
	out := all[:0]
	for _, r := range all {
		k := key{r.Mode, r.Target, r.Endpoint, r.Command, r.Connections, r.Started}
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out, nil
}

func readResults(paths []string) ([]Result, error) {
	var all []Result
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		trimmed := strings.TrimSpace(string(b))
		if !strings.HasPrefix(trimmed, "{") && !strings.HasPrefix(trimmed, "[") {
			st, err := os.Stat(p)
			if err != nil {
				return nil, err
			}
			rs := ParseGoBench(string(b), st.ModTime())
			if len(rs) == 0 {
				return nil, fmt.Errorf("%s: neither an owl bench result nor go test -bench output", p)
			}
			all = append(all, rs...)
			continue
		}
		if strings.HasPrefix(trimmed, "[") {
			var rs []Result
			if err := json.Unmarshal(b, &rs); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			all = append(all, rs...)
			continue
		}
		var probe struct {
			Results []Result `json:"results"`
		}
		if err := json.Unmarshal(b, &probe); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if probe.Results != nil {
			all = append(all, probe.Results...)
			continue
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if r.Mode == "" {
			return nil, fmt.Errorf("%s: not an owl bench result", p)
		}
		all = append(all, r)
	}
	return all, nil
}

// goBenchLine is one result line of `go test -bench`: name, iterations,
// then value-unit pairs.
var goBenchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// ParseGoBench reads the result lines of `go test -bench` output into
// Results of ModeGoBench (Target owl): Command is the benchmark's name
// without its -GOMAXPROCS suffix, Requests and OK the iterations,
// Throughput 1e9 / ns/op (operations per second of one goroutine),
// Latency.Mean ns/op, and the other metrics go to Notes. Started is at
// (the file's time), plus one nanosecond per line so that repeated lines
// (-count) stay distinct results.
func ParseGoBench(text string, at time.Time) []Result {
	var out []Result
	pkg := ""
	i := 0
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p
			continue
		}
		m := goBenchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		iters, err := strconv.Atoi(m[2])
		if err != nil {
			continue
		}
		f := strings.Fields(m[3])
		nsPerOp := 0.0
		var notes []string
		for j := 0; j+1 < len(f); j += 2 {
			v, err := strconv.ParseFloat(f[j], 64)
			if err != nil {
				continue
			}
			if f[j+1] == "ns/op" {
				nsPerOp = v
			} else {
				notes = append(notes, f[j]+" "+f[j+1])
			}
		}
		if nsPerOp <= 0 {
			continue
		}
		i++
		r := Result{
			Mode: ModeGoBench, Target: TargetOwl, Command: m[1], Started: at.UTC().Add(time.Duration(i)),
			Requests: iters, OK: iters, Throughput: 1e9 / nsPerOp,
			Elapsed: time.Duration(nsPerOp * float64(iters)),
			Latency: Summary{Count: iters, Mean: time.Duration(nsPerOp)},
			Host:    ThisHost(),
		}
		if pkg != "" {
			notes = append([]string{"go test -bench, package " + pkg}, notes...)
		}
		r.Notes = notes
		out = append(out, r)
	}
	return out
}
