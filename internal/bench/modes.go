package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/owl-project/owl/internal/client"
)

// Config is what a benchmark runs against and how hard. Start from
// DefaultConfig; Validate names the setting that is wrong.
type Config struct {
	// Endpoint is the base URL of the Owl API (or of a baseline server).
	Endpoint string
	// Token is the bearer token; empty sends no Authorization header.
	Token string
	// Function is the function invoked (and, in cold mode, reconfigured).
	Function string
	// Payload is the event of every invocation.
	Payload []byte
	// Requests is N: measured invocations (warm, cold, exec).
	Requests int
	// Connections is C: concurrent keep-alive connections (warm, throughput).
	Connections int
	// Duration is D: how long throughput mode runs.
	Duration time.Duration
	// Warmup is how many invocations run before measuring; -1 picks a
	// default that suits the mode.
	Warmup int
	// Settle is how long cold mode waits after each configuration update
	// before the timed invocation, so that the teardown of the previous
	// version's environment is not measured as part of the cold start.
	Settle time.Duration
	// Timeout bounds the wait for each response's headers.
	Timeout time.Duration
	// Target labels the results: TargetOwl or TargetBaseline.
	Target string
	// Fresh (burst) changes the function's configuration before the burst,
	// so that it meets a revision without any environment.
	Fresh bool
	// ServerPID is the process whose CPU time is the server's: 0 finds
	// the one listening on the endpoint's port when the endpoint is on
	// this machine; -1 measures none.
	ServerPID int
}

// watchedPID is the server process whose CPU a measurement reads (0:
// none).
func (c Config) watchedPID() int {
	switch {
	case c.ServerPID < 0:
		return 0
	case c.ServerPID > 0:
		return c.ServerPID
	}
	return serverPID(c.Endpoint)
}

// startCPU starts measuring the CPU of a run; the function it returns ends
// the measurement, per ops invocations.
func (c Config) startCPU() func(ops int) *CPU {
	pid := c.watchedPID()
	before := takeCPU(pid)
	return func(ops int) *CPU {
		cpu := cpuBetween(before, takeCPU(pid), ops)
		if cpu != nil && c.Target == TargetBaseline {
			cpu.FunctionsUS = nil // a baseline has none; Owl's cgroups hold other servers'
		}
		return cpu
	}
}

// DefaultConfig returns the settings `owl bench` starts from.
func DefaultConfig() Config {
	return Config{
		Endpoint:    client.DefaultEndpoint,
		Function:    "owl-bench-hello",
		Payload:     []byte(`{"name":"owl"}`),
		Requests:    10000,
		Connections: 1,
		Duration:    10 * time.Second,
		Warmup:      -1,
		Settle:      100 * time.Millisecond,
		Timeout:     30 * time.Second,
		Target:      TargetOwl,
	}
}

// Validate checks the settings mode uses.
func (c Config) Validate(mode string) error {
	var errs []error
	if mode != ModeExec && mode != ModeRunc {
		if c.Endpoint == "" {
			errs = append(errs, errors.New("endpoint: required"))
		}
		if c.Function == "" {
			errs = append(errs, errors.New("function: required"))
		}
		if c.Timeout <= 0 {
			errs = append(errs, fmt.Errorf("timeout %v: must be positive", c.Timeout))
		}
	}
	switch mode {
	case ModeWarm, ModeCold, ModeExec, ModeRunc, ModeBurst:
		if c.Requests < 1 {
			errs = append(errs, fmt.Errorf("requests (-n) %d: must be at least 1", c.Requests))
		}
	case ModeThroughput:
		if c.Duration <= 0 {
			errs = append(errs, fmt.Errorf("duration (-d) %v: must be positive", c.Duration))
		}
	default:
		errs = append(errs, fmt.Errorf("mode %q: want warm, throughput, cold, burst, exec or runc", mode))
	}
	if mode == ModeBurst {
		if c.Requests > maxBurst {
			errs = append(errs, fmt.Errorf("requests (-n) %d: a burst is at most %d invocations", c.Requests, maxBurst))
		}
		if c.Connections < 1 || c.Connections > c.Requests {
			errs = append(errs, fmt.Errorf("connections (-c) %d: must be from 1 to the requests (-n) %d", c.Connections, c.Requests))
		}
	}
	if mode == ModeWarm || mode == ModeThroughput {
		if c.Connections < 1 || c.Connections > 10000 {
			errs = append(errs, fmt.Errorf("connections (-c) %d: must be from 1 to 10000", c.Connections))
		}
	}
	if mode == ModeWarm && c.Requests < c.Connections {
		errs = append(errs, fmt.Errorf("requests (-n) %d: must be at least the connections (-c) %d", c.Requests, c.Connections))
	}
	if (mode == ModeCold || mode == ModeBurst) && c.Settle < 0 {
		errs = append(errs, fmt.Errorf("settle %v: must not be negative", c.Settle))
	}
	if c.Warmup < -1 {
		errs = append(errs, fmt.Errorf("warmup %d: must be 0 or more", c.Warmup))
	}
	return errors.Join(errs...)
}

// maxBurst bounds a burst: one goroutine, buffer and (at C = N) connection
// each.
const maxBurst = 100000

// warmupCount is how many invocations precede the measurement: by default
// enough for every connection to be open and every environment warm.
func (c Config) warmupCount() int {
	if c.Warmup >= 0 {
		return c.Warmup
	}
	return max(200, 20*c.Connections)
}

func (c Config) newResult(mode string, conns int) *Result {
	return &Result{
		Mode: mode, Target: c.Target, Endpoint: c.Endpoint, Function: c.Function,
		Connections: conns, Started: time.Now().UTC(), Host: ThisHost(),
	}
}

// probe sends one invocation and turns its failure into an error, so a
// wrong endpoint, token or function name stops the run at once.
func probe(l *loader, cfg Config) error {
	o := l.invoke(make([]byte, respBufSize))
	if o.fail == nil {
		return nil
	}
	return fmt.Errorf("first invocation of %s at %s failed: %s: %s", cfg.Function, cfg.Endpoint, o.fail.kind, o.fail.example)
}

// warmUp runs the warm-up invocations over conns connections and records
// them in r.
func warmUp(ctx context.Context, l *loader, cfg Config, conns int, r *Result) {
	n := cfg.warmupCount()
	if n == 0 {
		return
	}
	ts, _ := l.run(ctx, conns, countStop(n), false, 0)
	t := merged(ts)
	r.Warmup, r.WarmupErrors = t.ok+t.errs, t.errs
	r.addKinds("warm-up: ", t.kinds)
}

// Warm measures N invocations of a warm function over C connections.
func Warm(ctx context.Context, cfg Config) (*Result, error) {
	return measureLoad(ctx, cfg, ModeWarm, func() (stop, int) {
		return countStop(cfg.Requests), cfg.Requests/cfg.Connections + 1
	})
}

// Throughput measures how many invocations C connections complete in D.
func Throughput(ctx context.Context, cfg Config) (*Result, error) {
	return measureLoad(ctx, cfg, ModeThroughput, func() (stop, int) {
		// Room for 50k/s per connection's share, so appends rarely grow.
		return durationStop(cfg.Duration), int(cfg.Duration.Seconds()*50000)/cfg.Connections + 1
	})
}

// measureLoad is what Warm and Throughput share: validate cfg for mode,
// connect and probe, warm up, then run C connections until the stop that
// plan returns (plan also says how many samples to make room for per
// connection; it is called once cfg is valid) and measure the run's CPU.
func measureLoad(ctx context.Context, cfg Config, mode string, plan func() (stop, int)) (*Result, error) {
	if err := cfg.Validate(mode); err != nil {
		return nil, err
	}
	l, err := newLoader(ctx, cfg, cfg.Connections, false)
	if err != nil {
		return nil, err
	}
	defer l.close()
	if err := probe(l, cfg); err != nil {
		return nil, err
	}
	r := cfg.newResult(mode, cfg.Connections)
	warmUp(ctx, l, cfg, cfg.Connections, r)
	done, capacity := plan()
	endCPU := cfg.startCPU()
	ts, elapsed := l.run(ctx, cfg.Connections, done, true, capacity)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.fill(merged(ts), elapsed)
	r.CPU = endCPU(r.Requests)
	return r, nil
}

// initDurationRe finds the Init Duration of a REPORT line.
var initDurationRe = regexp.MustCompile(`\tInit Duration: ([0-9]+(?:\.[0-9]+)?) ms`)

// initDuration returns the Init Duration in a log tail, if there is one.
func initDuration(log string) (time.Duration, bool) {
	m := initDurationRe.FindStringSubmatch(log)
	if m == nil {
		return 0, false
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ms * float64(time.Millisecond)), true
}

// coldVar is the environment variable cold mode changes to make a new
// version of the function.
const coldVar = "BENCH_ITER"

// updateWait bounds how long cold mode waits for an update to finish.
const updateWait = time.Minute

// Cold measures the first invocation of N new versions of a function. Each
// iteration sets BENCH_ITER in the function's environment
// (UpdateFunctionConfiguration: a new revision, and the previous one's
// environments are retired), waits until the update is Successful and
// Settle has passed, then times one invocation and checks, from its log
// tail, that the platform reports an Init Duration. The function's original
// environment is restored at the end.
//
// It is long because it is one measurement's script (prepare, iterate,
// check each cold start, restore), read in the order it runs.
func Cold(ctx context.Context, cfg Config) (res *Result, err error) {
	if err := cfg.Validate(ModeCold); err != nil {
		return nil, err
	}
	api := client.New(cfg.Endpoint, cfg.Token, client.WithUserAgent("owl-bench"))
	fn, err := api.GetFunction(ctx, cfg.Function)
	if err != nil {
		return nil, fmt.Errorf("cold: function %s: %w", cfg.Function, err)
	}
	var original map[string]string
	if e := fn.Configuration.Environment; e != nil {
		original = e.Variables
	}
	l, err := newLoader(ctx, cfg, 1, true)
	if err != nil {
		return nil, err
	}
	defer l.close()
	// One invocation first: the code is unpacked into the node's cache and
	// the connection is open, as they are for any later version.
	if err := probe(l, cfg); err != nil {
		return nil, err
	}
	defer func() {
		// Put the function back as it was; a failure here is the run's.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), updateWait)
		defer cancel()
		if rerr := updateEnv(rctx, api, cfg.Function, original); rerr != nil && err == nil {
			res, err = nil, fmt.Errorf("cold: restoring the environment of %s: %w", cfg.Function, rerr)
		}
	}()

	r := cfg.newResult(ModeCold, 1)
	r.Warmup = 1
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	t := newTally(cfg.Requests)
	var inits, updates []time.Duration
	buf := make([]byte, respBufSize)
	start, endCPU := time.Now(), cfg.startCPU()
	var measured time.Duration
	for i := 1; i <= cfg.Requests; i++ {
		vars := maps.Clone(original)
		if vars == nil {
			vars = map[string]string{}
		}
		vars[coldVar] = strconv.Itoa(i) + "-" + nonce
		u0 := time.Now()
		if err := updateEnv(ctx, api, cfg.Function, vars); err != nil {
			return nil, fmt.Errorf("cold: iteration %d: %w", i, err)
		}
		updates = append(updates, time.Since(u0))
		if cfg.Settle > 0 {
			select {
			case <-time.After(cfg.Settle):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		o := l.invoke(buf)
		measured += o.latency
		if o.fail == nil {
			d, ok := initDuration(o.log)
			if ok {
				inits = append(inits, d)
			} else {
				o.fail = &failure{kind: "not a cold start (no Init Duration in the log tail)", example: firstReportLine(o.log)}
			}
		}
		t.add(o, true)
		if t.transportRow >= maxConsecutiveTransportErrors {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.fill(t, time.Since(start))
	// Per invocation, CPU means little in a loop that mostly sleeps; how
	// busy the machine was says whether something else disturbed the run.
	r.CPU = endCPU(r.Requests)
	// Throughput of a loop that sleeps means nothing; report the rate of
	// the cold invocations themselves.
	if measured > 0 {
		r.Throughput = float64(t.ok) / measured.Seconds()
	}
	s := Summarize(inits)
	r.InitDuration = &s
	u := Summarize(updates)
	r.Update = &u
	r.Notes = append(r.Notes, fmt.Sprintf("each iteration: UpdateFunctionConfiguration (%s), wait %s, then one timed invocation", coldVar, cfg.Settle))
	return r, nil
}

// updateEnv replaces the function's environment and waits until the
// update is done.
func updateEnv(ctx context.Context, api *client.Client, name string, vars map[string]string) error {
	if vars == nil {
		vars = map[string]string{}
	}
	cfg, err := api.UpdateFunctionConfiguration(ctx, name, &client.UpdateFunctionConfigurationInput{
		Environment: &client.Environment{Variables: vars},
	})
	if err != nil {
		return fmt.Errorf("updating the configuration of %s: %w", name, err)
	}
	return waitReady(ctx, api, name, cfg)
}

// waitReady polls until the function is Active and its last update
// Successful, starting from cfg (the answer of the last call).
func waitReady(ctx context.Context, api *client.Client, name string, cfg *client.FunctionConfiguration) error {
	deadline := time.Now().Add(updateWait)
	delay := 5 * time.Millisecond
	for {
		state, update := cfg.State, cfg.LastUpdateStatus
		switch {
		case state == client.StateFailed || update == client.UpdateFailed:
			return fmt.Errorf("function %s: state %s, last update %s: %s %s", name, state, update, cfg.StateReason, cfg.LastUpdateStatusReason)
		case (state == "" || state == client.StateActive) && (update == "" || update == client.UpdateSuccessful):
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("function %s: still %s/%s after %s", name, state, update, updateWait)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(2*delay, 500*time.Millisecond)
		out, err := api.GetFunction(ctx, name)
		if err != nil {
			return err
		}
		cfg = &out.Configuration
	}
}

// firstReportLine is the REPORT line of a log tail, for error examples.
func firstReportLine(log string) string {
	for line := range strings.SplitSeq(log, "\n") {
		if strings.HasPrefix(line, "REPORT ") {
			return line
		}
	}
	if log == "" {
		return "(no log tail in the response)"
	}
	return snippet([]byte(log))
}
