package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/runtimeapi"
	"github.com/owl-project/owl/internal/telemetry"
	"github.com/owl-project/owl/internal/tracing"
)

// initTimeout is Lambda's limit on a runtime's initialisation.
const initTimeout = 10 * time.Second

// CodeSource provides code zips by hex sha256 (the registry).
type CodeSource interface {
	Code(ctx context.Context, shaHex string) ([]byte, error)
}

// Config configures a Worker.
type Config struct {
	DataDir string
	// RuntimeDir holds Owl's runtime files (runtimes.Install); sandboxes
	// see it read-only at /var/runtime.
	RuntimeDir        string
	Region, AccountID string
	UID, GID          int
	// ConcurrencyLimit is the number of invocations running at once on this
	// node before TooManyRequestsException.
	ConcurrencyLimit int
	IdleTimeout      time.Duration
	// FreezeAfter is how long an environment stays idle before it is frozen
	// (cgroup freezer: no CPU until the next invocation thaws it); zero
	// never freezes. Back-to-back invocations within it pay no thaw.
	FreezeAfter time.Duration
	// MaxLifetime retires an environment the next time it is idle once it
	// is older; zero: no limit.
	MaxLifetime time.Duration
	// MemoryBudgetMB and MemoryOvercommit bound the MemorySize of all
	// environments together at budget × overcommit (see reserveMemory);
	// a zero budget does not limit.
	MemoryBudgetMB   int
	MemoryOvercommit float64
	// CapacityWait is how long an invocation waits for memory, and at
	// least how long it waits for its environment's turn to start.
	CapacityWait time.Duration
	// StartsInParallel bounds the environments starting at once (sandbox
	// creation and the first moments of their runtime's init, pace.go);
	// zero means DefaultStartsPerCPU per CPU.
	StartsInParallel int
	// Staleness tells whether a configuration was changed or deleted, so
	// that an environment started just before is not pooled; nil: never.
	Staleness Staleness
	// Reservations supplies reserved concurrency; nil: none.
	Reservations Reservations
	// Leases holds the concurrency limits across a cluster's nodes
	// (internal/leases); nil on a single node, where counting here is
	// enough.
	Leases Leases
	// Provisioning supplies provisioned concurrency; nil: none.
	Provisioning Provisioning
	// ProvisionEvery is how often provisioned environments are reconciled
	// without a Reprovision call; zero means every second.
	ProvisionEvery time.Duration
	// Egress says whether the sandbox manager has the egress network: the
	// sandboxes of functions with Network "egress" (the default of those
	// without one, then) get eth0.
	Egress bool
	// Prewarm is how many pre-warmed environments the worker keeps per
	// interpreted runtime, and for the custom runtimes together
	// (prewarm.go); 0 disables pre-warming.
	Prewarm int
	// LogLimitBytes caps the log output Owl keeps of one invocation; the
	// rest is read and dropped, and one line says so. Zero means
	// DefaultLogLimitBytes.
	LogLimitBytes int
	// Space, when set, is asked before code is unpacked and before an
	// environment gets its /tmp (a disk of EphemeralStorage in the data
	// dir): what would go below the data dir's disk reserve is refused
	// with 503 ServiceUnavailableException instead of failing half-way.
	Space SpaceChecker
	// TmpOvercommit divides the /tmp size a new environment claims from
	// Space (0 or 1: all of it).
	TmpOvercommit float64
	// Images gives the unpacked roots of image functions (images.go);
	// nil: they cannot start on this node.
	Images ImageSource
	// Inside, when set, makes the handler of an environment's own calls
	// (caller.go): its credentials are in the function's environment.
	Inside func(Caller) http.Handler
	// Observer, when set, is told of every invocation.
	Observer Observer
	Logger   *slog.Logger
	// Tracer records the spans of invocations (trace.go); nil: off.
	Tracer *tracing.Tracer
}

// SpaceChecker is the data dir's free-space guard (internal/diskspace).
type SpaceChecker interface {
	Check(need int64) error
	// Claim holds n bytes until Release: a new environment's /tmp, until
	// its disk exists and is counted by the guard itself.
	Claim(n int64) error
	Release(n int64)
}

// Worker runs invocations in sandboxes. Its parts each keep their own
// lock, and none is held while taking another's but for two orders:
// env.freezeMu before envPool.mu (freezeIfIdle), and envPool.mu before
// what Staleness takes (the registry's):
//
//   - admission (capacity.go): concurrency slots per function and account;
//   - memory (capacity.go): the memory budget of all environments;
//   - pace (pace.go): how many environments start at once;
//   - envs (pool.go, state.go): every environment, its state, the idle
//     pools; env.go starts and tears environments down;
//   - the code cache (codecache.go, layers.go): unpacked code and layers;
//   - prewarm (prewarm.go): sandboxes whose runtime (or, for a custom
//     runtime, whose init) waits for a function;
//   - provisioning (provision.go): provisioned concurrency.
type Worker struct {
	cfg      Config
	logs     *telemetry.LogStore
	sandbox  Sandboxes
	inflight atomic.Int64

	admission admission     // concurrency slots
	memory    *memoryBudget // memory of all environments
	pace      *startPacer   // environments starting at once
	envs      *envPool      // the environments and their states
	cache     *codeCache    // unpacked code and layers

	// provisionNow wakes the provisioning loop; provisionDone is closed
	// when it stopped; provisionStatus holds the last failure per key.
	provisionNow    chan struct{}
	provisionDone   chan struct{}
	provisionStatus provisionStatus

	prewarm *prewarmPool // pre-warmed environments per runtime

	envSeq  atomic.Uint64
	stopGC  chan struct{}
	gcDone  chan struct{}
	started time.Time
}

// New creates a worker. sb creates the node's sandboxes: on a host,
// SandboxManager of its *sandbox.Manager.
func New(cfg Config, code CodeSource, logs *telemetry.LogStore, sb Sandboxes) *Worker {
	if cfg.LogLimitBytes <= 0 {
		cfg.LogLimitBytes = DefaultLogLimitBytes
	}
	w := &Worker{
		cfg: cfg, logs: logs, sandbox: sb,
		admission: admission{perFunction: map[string]int{}},
		memory:    newMemoryBudget(cfg.MemoryBudgetMB, cfg.MemoryOvercommit, cfg.CapacityWait),
		pace:      newStartPacer(cfg.StartsInParallel),
		cache:     newCodeCache(cfg, code),
		stopGC:    make(chan struct{}), gcDone: make(chan struct{}), started: time.Now(),
		provisionNow: make(chan struct{}, 1), provisionDone: make(chan struct{}),
		provisionStatus: provisionStatus{byKey: map[poolKey]string{}},
	}
	w.envs = newEnvPool(cfg.MaxLifetime, w.stale)
	w.prewarm = newPrewarmPool(w, cfg.Prewarm)
	go w.collectIdle()
	go w.provisionLoop()
	return w
}

// Request is one synchronous invocation.
type Request struct {
	RequestID     string
	Payload       []byte
	ClientContext string // decoded JSON
	TraceID       string
	// InvokedARN is the ARN the caller used, qualifier included (the
	// context's invoked function ARN); the unqualified ARN when empty.
	InvokedARN string
	// Depth and Origin place the invocation in a chain of calls and
	// events (0 and "": it begins one); calls the function makes go a hop
	// further (caller.go).
	Depth  int
	Origin string
	// Stream, when set, receives the response of a runtime that streams
	// it, as it is written (runtimeapi.Stream); the Result then says
	// Streamed.
	Stream runtimeapi.Stream
}

// Result is the outcome of an invocation that reached a runtime.
type Result struct {
	Payload []byte
	// FunctionError is true when Payload is an error object (the API sets
	// X-Amz-Function-Error: Unhandled).
	FunctionError bool
	ErrorType     string
	// Log is this invocation's log text, START to REPORT.
	Log string
	// Streamed is true when the response went to Request.Stream: Payload
	// is then empty, or the error object of a failure.
	Streamed bool
	// report is its REPORT line's figures, which observers are told.
	report telemetry.Report
}

// Invoke runs req on an environment of fn. Errors are platform or
// admission errors (lambdaerr); function failures are Results.
func (w *Worker) Invoke(ctx context.Context, fn registry.Function, req Request) (*Result, error) {
	slot, err := w.admit(ctx, fn.Name)
	if err != nil {
		if lambdaerr.Is(err, lambdaerr.TooManyRequests) {
			w.observe(fn, outcomeThrottle, nil)
		}
		return nil, err
	}
	defer w.leave(fn.Name, slot)
	d, failed, err := w.deliver(ctx, fn, req)
	switch {
	case failed != nil:
		w.observe(fn, outcomeInitError, failed)
		return failed, err
	case lambdaerr.Is(err, lambdaerr.TooManyRequests):
		w.observe(fn, outcomeThrottle, nil)
		return nil, err
	case err != nil:
		return nil, err
	}
	res, err := w.conclude(fn, req, d)
	if res != nil {
		outcome := outcomeSuccess
		switch {
		case res.ErrorType == lambdaerr.SandboxTimedout:
			outcome = outcomeTimeout
		case res.FunctionError:
			outcome = outcomeFunctionError
		}
		w.observe(fn, outcome, res)
	}
	return res, err
}

// Outcomes of an invocation, as Observer gets them.
const (
	outcomeSuccess       = "success"
	outcomeFunctionError = "function_error"
	outcomeTimeout       = "timeout"
	outcomeThrottle      = "throttle"
	outcomeInitError     = "init_error"
)

// Observer is told of every invocation (internal/metrics, internal/usage).
type Observer interface {
	Invocation(Invocation)
}

// Invocation is what one invocation did, as an Observer is told.
type Invocation struct {
	Function, Version string
	// Outcome is success, function_error, timeout, throttle or init_error.
	Outcome  string
	MemoryMB int
	// Duration and InitDuration are its REPORT line's (InitDuration is
	// zero when warm, and both are zero for a throttled invocation).
	Duration, InitDuration time.Duration
	Cold                   bool
	// BilledMs is its REPORT line's Billed Duration (0: throttled, not run).
	BilledMs int64
}

// observe tells the Observer of an invocation; res is nil when throttled.
func (w *Worker) observe(fn registry.Function, outcome string, res *Result) {
	if w.cfg.Observer == nil {
		return
	}
	inv := Invocation{Function: fn.Name, Version: fnVersion(fn), Outcome: outcome, MemoryMB: fn.MemorySize}
	if res != nil {
		rep := res.report
		inv.Duration, inv.InitDuration, inv.Cold = rep.Duration, rep.InitDuration, rep.InitDuration > 0
		inv.BilledMs = telemetry.Billed(rep.Duration, rep.InitDuration)
	}
	w.cfg.Observer.Invocation(inv)
}

// MemoryBytes is the memory budget of the sandboxes (0: none) and what
// their environments reserve.
func (w *Worker) MemoryBytes() (budget, reserved int64) {
	if !w.memory.limited() {
		return 0, 0
	}
	return int64(w.memory.capMB) << 20, int64(w.memory.inUse()) << 20
}

// delivery is one invocation handed to an environment, and how it ended.
type delivery struct {
	e     *env
	cold  coldStart // when this delivery started e
	start time.Time
	dur   time.Duration
	out   runtimeapi.Outcome
	err   error // the Runtime API's: no outcome (see conclude)
	// timedOut: the function's own deadline ended it, not the caller
	// leaving and not the runtime exiting.
	timedOut bool
}

// deliver acquires an environment of fn (starting one if need be) and
// runs req on it, up to fn's timeout. A runtime that exited between two
// invocations before taking this one gets it redelivered to a fresh
// environment. A runtime that failed to initialise is a function error
// Result (failed); err is a platform or admission error.
func (w *Worker) deliver(ctx context.Context, fn registry.Function, req Request) (d *delivery, failed *Result, err error) {
	for attempt := 1; ; attempt++ {
		d = &delivery{}
		t0 := time.Now()
		d.e, d.cold, err = w.acquire(ctx, fn)
		var initFailure *initFailed
		if errors.As(err, &initFailure) {
			w.traceFailedInit(ctx, fn, &req, t0, initFailure)
			return nil, w.failedInit(fn, req, initFailure, attempt > 1), nil
		}
		if err != nil {
			return nil, nil, err
		}

		w.startLog(fn, req, d, attempt == 1)
		d.start = time.Now()
		span, traceID := w.traceStart(ctx, fn, &req, t0, d.start, d.cold)
		d.e.running(&req)
		deadline := d.start.Add(time.Duration(fn.Timeout) * time.Second)
		ictx, cancel := context.WithDeadline(ctx, deadline)
		stop := context.AfterFunc(d.e.exited, cancel)
		inv := runtimeapi.Invocation{
			RequestID:     req.RequestID,
			Deadline:      deadline,
			FunctionARN:   invokedARN(w.cfg.Region, w.cfg.AccountID, fn, req),
			TraceID:       traceID,
			ClientContext: req.ClientContext,
			Payload:       req.Payload,
			Stream:        req.Stream,
		}
		d.e.api.TelemetryStart(req.RequestID, fnVersion(fn))
		d.e.api.ExtensionsInvoke(&inv)
		d.out, d.err = d.e.api.Invoke(ictx, inv)
		if d.err == nil { // the invocation ends when its extensions are done too
			d.err = d.e.api.AwaitExtensions(ictx)
		}
		d.dur = time.Since(d.start)
		traceEnd(span, d)
		d.e.running(nil)
		// The deadline was the function's (the caller's own deadline or
		// departure ends ctx too) and it ended the invocation, not the
		// runtime's exit (which cancels ictx first).
		d.timedOut = d.err != nil && errors.Is(ictx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		stop()
		cancel()
		if errors.Is(d.err, runtimeapi.ErrWithdrawn) && d.e.exited.Err() != nil && ctx.Err() == nil && attempt < maxDeliveries {
			// The runtime exited between two invocations (aws-lambda-go
			// does right after reporting a panic or a refused response),
			// before it took this event: the function never saw it, so it
			// goes to a fresh environment, as Lambda re-initialises a
			// sandbox whose runtime exited.
			w.destroy(d.e)
			continue
		}
		return d, nil, nil
	}
}

// conclude turns a delivery into the invocation's Result and REPORT, and
// gives its environment back (or destroys it, when the invocation did not
// end with an outcome: the runtime exited, timed out, or the caller left
// and the environment's state is unknown).
func (w *Worker) conclude(fn registry.Function, req Request, d *delivery) (*Result, error) {
	e := d.e
	res := &Result{Payload: d.out.Payload, FunctionError: d.out.IsError, ErrorType: d.out.ErrorType, Streamed: d.out.Streamed}
	// A stream that ended early (its client left) leaves the runtime
	// mid-write: recycle the environment.
	reusable := d.err == nil && d.out.Broken == nil
	if d.err != nil {
		xres, extFailed := extensionResult(d.err)
		switch {
		case extFailed:
			res = xres
			e.endWith(runtimeapi.ShutdownFailure)
		case e.exited.Err() != nil:
			<-e.sb.Done()
			res = exitResult(req.RequestID, e.sb)
		case d.timedOut:
			e.endWith(runtimeapi.ShutdownTimeout)
			res = &Result{FunctionError: true, ErrorType: lambdaerr.SandboxTimedout, Payload: lambdaerr.ErrorBody(lambdaerr.SandboxTimedout,
				fmt.Sprintf("RequestId: %s Error: Task timed out after %d.00 seconds", req.RequestID, fn.Timeout))}
		default:
			// The caller went away; the environment's state is unknown.
			// Its log, START and lines already stored, still ends.
			taken, unsent := e.logs.take()
			rep := telemetry.Report{RequestID: req.RequestID, Duration: d.dur, MemoryMB: fn.MemorySize,
				MaxMemoryMB: reportedMemoryMB(e.maxMemoryMB(), fn), InitDuration: d.cold.dur}
			w.record(fn, req, append(d.cold.lines, taken...), unsent, true, rep)
			w.destroy(e)
			return nil, fmt.Errorf("invocation %s: %w", req.RequestID, d.err)
		}
	}
	taken, unsent, takenExt := e.logs.takeSplit()
	lines := append(d.cold.lines, taken...)
	maxMem := e.maxMemoryMB()
	if !reusable && e.exited.Err() != nil && e.sb.OOMKilled() {
		// Killed at its limit (the peak can stop a few pages short of it
		// when Owl's memory guard is first): Lambda reports the limit.
		maxMem = fn.MemorySize
	}
	rep := telemetry.Report{RequestID: req.RequestID, Duration: d.dur, MemoryMB: fn.MemorySize, MaxMemoryMB: reportedMemoryMB(maxMem, fn), InitDuration: d.cold.dur}
	if !reusable {
		rep.ErrorType = res.ErrorType
	}
	telemetryDone(e, lines, append(d.cold.ext, takenExt...), res, rep, d.timedOut) // before another invocation can start on e
	if !reusable {
		w.destroy(e)
	} else {
		w.release(e)
	}
	res.Log, res.report = w.record(fn, req, lines, unsent, true, rep), rep
	return res, nil
}

// reportedMemoryMB is the Max Memory Used of a REPORT line: the measured
// cgroup peak, rounded up to MB, but never above the function's memory.
// The kernel may force a few pages past the limit while it OOM-kills (cgroup
// v1 charges them anyway), and Lambda never reports more than MemorySize.
func reportedMemoryMB(peakMB int, fn registry.Function) int {
	return min(peakMB, fn.MemorySize)
}

// maxDeliveries bounds how often one invocation is handed to environments
// whose runtime exited before taking it.
const maxDeliveries = 3

// failedInit turns a runtime that could not initialise into the function
// error Lambda returns for it.
func (w *Worker) failedInit(fn registry.Function, req Request, f *initFailed, started bool) *Result {
	res := &Result{FunctionError: true, ErrorType: f.errType, Payload: f.body}
	rep := telemetry.Report{RequestID: req.RequestID, Duration: f.dur, MemoryMB: fn.MemorySize, MaxMemoryMB: reportedMemoryMB(f.maxMemMB, fn), ErrorType: f.errType}
	res.Log, res.report = w.record(fn, req, f.lines, f.lines, started, rep), rep
	return res
}

// startLog stores the invocation's START line (on its first delivery) and
// the output of the cold start that made its environment, then has the
// environment store what the function writes as it writes it: a log
// follower sees each line within milliseconds, not when the invocation
// ends.
func (w *Worker) startLog(fn registry.Function, req Request, d *delivery, first bool) {
	if w.logs == nil {
		return
	}
	version := fnVersion(fn)
	if start := ""; first {
		if start = startText(fn, req.RequestID, version, time.Now()); start != "" {
			w.logs.Append(fn.Name, telemetry.LogMeta{RequestID: req.RequestID, Version: version, Stream: lambdawire.LogPlatform}, start)
		}
	}
	meta := telemetry.LogMeta{RequestID: req.RequestID, Version: version, Stream: lambdawire.LogFunction}
	if len(d.cold.lines) > 0 {
		w.logs.Append(fn.Name, meta, joinLines(d.cold.lines))
	}
	d.e.logs.stream(func(lines []string) { w.logs.Append(fn.Name, meta, joinLines(lines)) })
}

// joinLines is lines, each ended by a newline.
func joinLines(lines []string) string {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	b := make([]byte, 0, n)
	for _, l := range lines {
		b = append(b, l...)
		b = append(b, '\n')
	}
	return string(b)
}

// record returns the invocation's log text — START, lines, END and REPORT,
// in fn's log format (logformat.go) — for its caller's log tail, and
// stores what startLog did not: with started, only unsent (the lines the
// environment has not streamed yet), END and REPORT.
func (w *Worker) record(fn registry.Function, req Request, lines, unsent []string, started bool, rep telemetry.Report) string {
	version := fnVersion(fn)
	n := 3
	for _, l := range lines {
		n += len(l) + 1
	}
	// The START line of the tail (and of the log, when !started) dates
	// from the invocation's start, as startLog's.
	began := time.Now().Add(-rep.Duration - rep.InitDuration)
	start, end := startText(fn, req.RequestID, version, began), endText(fn, rep)
	var b []byte
	b = make([]byte, 0, n+len(start)+len(end))
	b = append(b, start...)
	for _, l := range lines {
		b = append(b, l...)
		b = append(b, '\n')
	}
	b = append(b, end...)
	text := string(b)
	if w.logs == nil {
		return text
	}
	platform := telemetry.LogMeta{RequestID: req.RequestID, Version: version, Stream: lambdawire.LogPlatform}
	if !started && start != "" {
		w.logs.Append(fn.Name, platform, start)
	}
	if len(unsent) > 0 {
		w.logs.Append(fn.Name, telemetry.LogMeta{RequestID: req.RequestID, Version: version, Stream: lambdawire.LogFunction}, joinLines(unsent))
	}
	if end != "" {
		w.logs.Append(fn.Name, platform, end)
	}
	return text
}

func exitResult(requestID string, sb Sandbox) *Result {
	reason := "exit status 0"
	if err := sb.ExitError(); err != nil {
		reason = err.Error()
	}
	return &Result{FunctionError: true, ErrorType: lambdaerr.RuntimeExitError, Payload: lambdaerr.ErrorBody(lambdaerr.RuntimeExitError,
		fmt.Sprintf("RequestId: %s Error: Runtime exited with error: %s", requestID, reason))}
}

// initFailed is a runtime that failed before it was ready.
type initFailed struct {
	errType  string
	body     []byte
	dur      time.Duration
	maxMemMB int
	lines    []string // what the runtime logged while initialising
}

func (f *initFailed) Error() string { return "init failed: " + f.errType }

// acquire returns an idle environment of fn, thawed, or starts one; it is
// busy, for the caller. A cold start's duration and log lines come back
// in coldStart.
func (w *Worker) acquire(ctx context.Context, fn registry.Function) (*env, coldStart, error) {
	key := keyOf(fn)
	for {
		e, dead, err := w.envs.takeIdle(key)
		w.teardownAll(dead)
		if err != nil {
			return nil, coldStart{}, w.bug(err)
		}
		if e == nil {
			return w.start(ctx, fn, key, startOptions{waitForMemory: true})
		}
		if err := e.thaw(); err != nil {
			w.cfg.Logger.Warn("thawing environment", "sandbox", e.id, "err", err)
			w.destroy(e)
			continue // the next idle one, or a cold start
		}
		return e, coldStart{}, nil
	}
}

// release returns a healthy busy environment to its pool, unless it
// outlived MaxLifetime or its configuration changed.
func (w *Worker) release(e *env) {
	pooled, err := w.envs.release(e, time.Now())
	if !pooled {
		w.bug(err)
		w.destroy(e)
		return
	}
	w.memory.evictable()
	if w.cfg.FreezeAfter > 0 {
		w.scheduleFreeze(e)
	}
}

// bug logs err when it is an illegal state change (a bug in the worker,
// state.go), and returns err.
func (w *Worker) bug(err error) error {
	var te *transitionError
	if errors.As(err, &te) {
		w.cfg.Logger.Error("illegal environment state change", "err", err)
	}
	return err
}

func invokedARN(region, account string, fn registry.Function, req Request) string {
	if req.InvokedARN != "" {
		return req.InvokedARN
	}
	return registry.ARN(region, account, fn.Name, "")
}

// Retire tears down the environments of configurations that changed: those
// of c.Name's version c.Version (every version when empty) whose revision
// is not c.Revision. They must not serve again.
func (w *Worker) Retire(c registry.Change) {
	w.teardownAll(w.envs.retireConfig(c))
}

// Staleness tells which configurations are gone (the registry).
type Staleness interface {
	Stale(name, version, revision string) bool
}

// stale reports whether key's configuration was updated or deleted: its
// environments, even one that started just after the change, never serve
// again.
func (w *Worker) stale(key poolKey) bool {
	return w.cfg.Staleness != nil && w.cfg.Staleness.Stale(key.name, key.version, key.revision)
}

// collectIdle evicts environments idle longer than the idle timeout
// (provisioned ones stay) or older than the maximum lifetime.
func (w *Worker) collectIdle() {
	defer close(w.gcDone)
	every := min(w.cfg.IdleTimeout/4, 30*time.Second)
	if w.cfg.MaxLifetime > 0 {
		every = min(every, w.cfg.MaxLifetime/4)
	}
	t := time.NewTicker(max(every, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-w.stopGC:
			return
		case now := <-t.C:
			w.teardownAll(w.envs.collect(now, w.cfg.IdleTimeout))
			w.cache.collect(now)
			if w.cfg.Images != nil {
				w.cfg.Images.CollectLayers(now.Add(-w.cfg.IdleTimeout))
			}
		}
	}
}

// Stats is a snapshot of the node's environments.
type Stats struct {
	Environments, Idle, Frozen, Inflight int
	// PrewarmReady is the number of pre-warmed environments waiting for a
	// function; Specialized counts the environments started from one,
	// PrewarmFallbacks the cold starts of an interpreted runtime that
	// found none ready (or failed to specialise one) and started as usual.
	PrewarmReady                  int
	Specialized, PrewarmFallbacks int64
}

// Stats reports how many environments exist and how many are idle.
// FunctionEnvironments counts each function's environments by state
// (starting, busy, idle, frozen) and, under "provisioned", those of them
// that are provisioned; a function without environments is absent.
func (w *Worker) FunctionEnvironments() map[string]map[string]int { return w.envs.byFunction() }

// VersionEnvironments is FunctionEnvironments by "name:version": what a
// node advertises to placement (internal/cluster).
func (w *Worker) VersionEnvironments() map[string]map[string]int { return w.envs.byVersion() }

// ConcurrencyLimit is the invocations this node runs at once.
func (w *Worker) ConcurrencyLimit() int { return w.cfg.ConcurrencyLimit }

func (w *Worker) Stats() Stats {
	ps := w.envs.stats()
	return Stats{Environments: ps.all, Idle: ps.idle, Frozen: ps.frozen, Inflight: int(w.inflight.Load()),
		PrewarmReady: w.prewarm.readyCount(), Specialized: w.prewarm.specialized.Load(), PrewarmFallbacks: w.prewarm.fallbacks.Load()}
}

// Close destroys every environment; invocations still running fail. The
// caller stops admitting and drains before calling it.
func (w *Worker) Close() {
	all, first := w.envs.close()
	if !first {
		return
	}
	w.prewarm.close()
	close(w.stopGC)
	<-w.gcDone
	<-w.provisionDone
	w.teardownAll(all)
	w.envs.starts.Wait() // a start in progress fails (envPool.add) and destroys its sandbox
	w.envs.teardowns.Wait()
}
