package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/runtimeapi"
	"github.com/owl-project/owl/internal/runtimes"
	"github.com/owl-project/owl/internal/sandbox"
)

// runtimeAPIAddr is where every runtime finds the Runtime API, inside its
// own network namespace.
const runtimeAPIAddr = "127.0.0.1:9001"

// env is one execution environment: a sandbox, its Runtime API server and
// its log capture. Where it is in its life is its state (state.go).
type env struct {
	// Set when it is made, then read-only (no lock).
	id       string
	key      poolKey
	sb       Sandbox
	api      *runtimeapi.Server
	logs     *logCapture
	exited   context.Context // done when the sandbox's runtime exited
	serveErr chan error
	created  time.Time
	memMB    int      // accounted in Worker.memory until torn down
	dirs     []string // code cache directories it binds; unref'd at teardown
	// current is the invocation running now, for the function's own
	// calls (caller.go).
	current  *atomic.Pointer[chain]
	initType string   // AWS_LAMBDA_INITIALIZATION_TYPE
	external []string // the external extensions it started (extensions.go)
	// reason is why it ends, for its extensions' SHUTDOWN (extensions.go).
	reason atomic.Pointer[string]

	// Guarded by envPool.mu.
	state    envState
	lastUsed time.Time
	// provisioned environments are kept initialised by provisioning: never
	// evicted for idleness or memory.
	provisioned bool

	// freezeMu serialises freezing and thawing the sandbox; it guards
	// freezeTimer (made by the first scheduleFreeze) and sbFrozen (the
	// sandbox is frozen: Freeze succeeded, no Thaw since).
	freezeMu    sync.Mutex
	freezeTimer *time.Timer
	sbFrozen    bool
}

// scheduleFreeze freezes e after FreezeAfter unless it was taken
// meanwhile. The timer is made once per environment and re-armed on every
// release, which happens once per warm invocation: a new timer and closure
// each time were two allocations and a timer creation on the warm path.
func (w *Worker) scheduleFreeze(e *env) {
	e.freezeMu.Lock()
	defer e.freezeMu.Unlock()
	if e.freezeTimer == nil {
		e.freezeTimer = time.AfterFunc(w.cfg.FreezeAfter, func() { w.freezeIfIdle(e) })
		return
	}
	e.freezeTimer.Reset(w.cfg.FreezeAfter)
}

// freezeIfIdle is the freeze timer's function. The state moves to frozen
// under freezeMu before the sandbox freezes: an acquire that took e either
// did so before (and this does nothing) or thaws after this returns.
func (w *Worker) freezeIfIdle(e *env) {
	e.freezeMu.Lock()
	defer e.freezeMu.Unlock()
	if !w.envs.beginFreeze(e) {
		return
	}
	if err := e.sb.Freeze(); err != nil {
		w.envs.freezeFailed(e)
		return
	}
	e.sbFrozen = true
}

// thaw cancels a pending freeze and thaws a frozen sandbox.
func (e *env) thaw() error {
	e.freezeMu.Lock()
	defer e.freezeMu.Unlock()
	if e.freezeTimer != nil {
		e.freezeTimer.Stop() // kept for the next release to re-arm
	}
	if !e.sbFrozen {
		return nil
	}
	if err := e.sb.Thaw(); err != nil {
		return err
	}
	e.sbFrozen = false
	return nil
}

func (e *env) maxMemoryMB() int {
	b, err := e.sb.MaxMemoryBytes()
	if err != nil {
		return 0
	}
	return int((b + (1<<20 - 1)) >> 20)
}

// startOptions are how an environment is started.
type startOptions struct {
	// waitForMemory lets an invocation wait for memory (CapacityWait).
	waitForMemory bool
	// provisioned starts it for provisioned concurrency.
	provisioned bool
}

// coldStart is what starting an environment adds to its first
// invocation's log and REPORT.
type coldStart struct {
	dur   time.Duration
	lines []string // what the runtime logged while initialising
	ext   []string // the extensions' among them (logCapture.takeSplit)
}

// start creates an environment for fn and waits for its runtime's first
// /next; the environment is busy, for the caller. A runtime that fails to
// initialise yields *initFailed.
func (w *Worker) start(ctx context.Context, fn registry.Function, key poolKey, opts startOptions) (*env, coldStart, error) {
	if err := fn.Runnable(); err != nil {
		return nil, coldStart{}, err // an image not pulled (yet)
	}
	rt, ok := runtimes.Lookup(fn.Runtime)
	if !ok && fn.Image == nil {
		return nil, coldStart{}, fmt.Errorf("function %s: runtime %q is not available on this node", fn.Name, fn.Runtime)
	}
	egress := fn.Network == registry.NetworkEgress || fn.Network == "" && w.cfg.Egress
	if egress && !w.cfg.Egress {
		// Never run it without the network it was configured with; like
		// Lambda's answer for a function in a Failed state.
		return nil, coldStart{}, lambdaerr.New(lambdaerr.ResourceConflict,
			"The function %s has Network %s, which this Owl server has disabled (OWL_NETWORK_EGRESS=false): "+
				"enable egress, or update the function to Network %s.", fn.Name, registry.NetworkEgress, registry.NetworkNone)
	}
	if w.cfg.Space != nil {
		// Its /tmp may take all of its size from the data dir's disk:
		// claimed until its disk exists, which the guard then counts as
		// promised (server.go), so concurrent starts cannot all pass.
		tmpBytes := int64(fn.EphemeralStorage) << 20
		if w.cfg.TmpOvercommit > 1 {
			tmpBytes = int64(float64(tmpBytes) / w.cfg.TmpOvercommit)
		}
		if err := w.cfg.Space.Claim(tmpBytes); err != nil {
			return nil, coldStart{}, noRoomForTmp(fn.EphemeralStorage, err)
		}
		defer w.cfg.Space.Release(tmpBytes)
	}
	if err := w.memory.reserve(ctx, fn.MemorySize, opts.waitForMemory, w.evictIdle); err != nil {
		return nil, coldStart{}, err
	}
	spec := envSpec{key: key, memMB: fn.MemorySize, provisioned: opts.provisioned}
	handedOver := false // once the environment exists, its teardown releases the memory and dirs
	defer func() {
		if !handedOver {
			w.memory.release(fn.MemorySize)
			w.cache.unref(spec.dirs...)
		}
	}()
	// In the queue of starts (pace.go) at most as long as the invocation
	// could run, or CapacityWait if longer.
	slot, err := w.pace.acquire(ctx, max(time.Duration(fn.Timeout)*time.Second, w.cfg.CapacityWait))
	if err != nil {
		return nil, coldStart{}, err
	}
	defer slot.free()
	e, prewarmed, err := w.makeEnv(ctx, fn, rt, egress, &spec)
	if err != nil {
		return nil, coldStart{}, err
	}
	slot.created()
	handedOver = true
	if prewarmed {
		// Its refill waits until this one is ready, not competing with it
		// for CPU.
		defer w.prewarm.kickRefill()
	}
	return w.awaitReady(ctx, e)
}

// makeEnv creates fn's sandbox and serves it as a starting environment;
// Close waits for it (envPool.beginStart).
func (w *Worker) makeEnv(ctx context.Context, fn registry.Function, rt runtimes.Runtime, egress bool, spec *envSpec) (_ *env, prewarmed bool, _ error) {
	if err := w.envs.beginStart(); err != nil {
		return nil, false, err
	}
	defer w.envs.endStart()
	sb, prewarmed, err := w.createSandbox(ctx, fn, rt, egress, spec)
	if err != nil {
		return nil, false, err
	}
	e, err := w.serve(sb, *spec)
	return e, prewarmed, err
}

// envSpec is what serve makes an environment of, besides its sandbox.
type envSpec struct {
	key         poolKey
	id          string
	t0          time.Time // when its sandbox began to start (code unpacked)
	memMB       int
	provisioned bool
	dirs        []string // code cache references it takes over
	// fn and the credentials of the function's own calls (caller.go).
	fn, keyID, secret, token string
	// extensions are the external extensions it starts; info and
	// initType what the Extensions and Telemetry APIs tell them.
	extensions []string
	info       runtimeapi.FunctionInfo
	initType   string
}

// createSandbox unpacks fn's code and layers (their references go into
// spec.dirs) and creates its sandbox: a pre-warmed one specialised for fn
// when one is ready (prewarmed), else a new one.
func (w *Worker) createSandbox(ctx context.Context, fn registry.Function, rt runtimes.Runtime, egress bool, spec *envSpec) (_ Sandbox, prewarmed bool, _ error) {
	if fn.Image != nil {
		sb, err := w.createImageSandbox(ctx, fn, egress, spec)
		return sb, false, sandboxError(fn, spec, err)
	}
	dir, err := w.cache.codeDir(ctx, fn.CodeSha256Hex)
	if err != nil {
		return nil, false, err
	}
	spec.dirs = append(spec.dirs, dir)
	optDir, err := w.cache.layersDir(ctx, fn.Layers)
	if err != nil {
		return nil, false, err
	}
	if optDir != "" {
		spec.dirs = append(spec.dirs, optDir)
	}
	spec.t0 = time.Now()
	spec.id = fmt.Sprintf("%s-%d", strings.ToLower(fn.Name), w.envSeq.Add(1))
	environ := w.environ(fn, rt, spec.provisioned)
	if w.cfg.Inside != nil {
		spec.keyID, spec.secret, spec.token = callerCreds()
		spec.fn = fn.Name
		environ = append(environ, callerEnv(spec.keyID, spec.secret, spec.token)...)
	}
	spec.extensions = externalExtensions(optDir)
	spec.info = runtimeapi.FunctionInfo{Name: fn.Name, Version: fnVersion(fn), Handler: fn.Handler, AccountID: w.cfg.AccountID}
	spec.initType = initType(spec.provisioned)
	command := wrapArgv(argv(rt, dir, optDir), fn, rt, spec.extensions)
	if len(spec.extensions) == 0 { // extensions start before the runtime: never a spare
		sb, err := w.prewarm.specialize(fn, rt, dir, optDir, egress, command, environ)
		if err != nil {
			return nil, false, sandboxError(fn, spec, err)
		}
		if sb != nil {
			spec.id = sb.ID() // a pre-warmed environment (prewarm.go)
			return sb, true, nil
		}
	}
	sb, err := w.sandbox.Create(ctx, sandbox.Spec{
		ID:             spec.id,
		CodeDir:        dir,
		RuntimeDir:     w.cfg.RuntimeDir,
		OptDir:         optDir,
		Argv:           command,
		Env:            environ,
		MemoryMB:       fn.MemorySize,
		TmpMB:          fn.EphemeralStorage,
		UID:            w.cfg.UID,
		GID:            w.cfg.GID,
		RuntimeAPIAddr: runtimeAPIAddr,
		Egress:         egress,
	})
	return sb, false, sandboxError(fn, spec, err)
}

// sandboxError is what a failed Create means: an entrypoint that cannot
// be exec'd is the function's fault (Runtime.InvalidEntrypoint, as Lambda
// reports it), other errors the platform's.
func sandboxError(fn registry.Function, spec *envSpec, err error) error {
	var fail *initFailed
	var lerr *lambdaerr.Error
	switch {
	case err == nil || errors.As(err, &fail) || errors.As(err, &lerr):
		return err
	case errors.Is(err, sandbox.ErrInvalidEntrypoint):
		return &initFailed{dur: time.Since(spec.t0), errType: lambdaerr.RuntimeInvalidEntrypoint,
			body: lambdaerr.ErrorBody(lambdaerr.RuntimeInvalidEntrypoint, fmt.Sprintf("Error: %v", err))}
	}
	return fmt.Errorf("creating sandbox for %s: %w", fn.Name, err)
}

// serve makes a starting environment of sb: it captures its output, runs
// its Runtime API and puts it in the pool, which from then on owns the
// memory and directories spec accounts (its teardown gives them back).
// On failure sb is destroyed and the caller still owns them.
func (w *Worker) serve(sb Sandbox, spec envSpec) (*env, error) {
	logs, err := newLogCapture(sb.Output(), w.cfg.LogLimitBytes)
	if err != nil {
		_ = sb.Destroy()
		return nil, fmt.Errorf("capturing output of %s: %w", spec.id, err)
	}
	current := new(atomic.Pointer[chain])
	pid := pidOf(sb)
	api, err := runtimeapi.New(runtimeapi.Config{Extra: w.insideHandler(spec.fn, spec.keyID, spec.secret, spec.token, current),
		Extensions: spec.extensions, ExtensionAlive: extensionAlive(pid), ExtensionExited: extensionExited(pid),
		Function: spec.info, Dial: sandboxDialer(pid)},
		w.cfg.Logger.With("env", spec.id))
	if err != nil {
		logs.close()
		_ = sb.Destroy()
		return nil, fmt.Errorf("runtime API for %s: %w", spec.id, err)
	}
	exited, markExited := context.WithCancel(context.Background())
	e := &env{id: spec.id, key: spec.key, sb: sb, api: api, logs: logs, exited: exited, serveErr: make(chan error, 1),
		created: spec.t0, memMB: spec.memMB, provisioned: spec.provisioned, dirs: spec.dirs, state: stateStarting, current: current, initType: spec.initType,
		external: spec.extensions}
	if err := w.envs.add(e); err != nil { // closed meanwhile
		markExited()
		_ = api.Close()
		logs.close()
		_ = sb.Destroy()
		return nil, err
	}
	api.TelemetryInitStart(spec.initType)
	go func() { e.serveErr <- e.api.Serve(sb.Listener()) }()
	go func() {
		<-sb.Done()
		markExited()
	}()
	return e, nil
}

// awaitReady waits for a starting environment's runtime to ask for its
// first event, and marks it busy. When the runtime does not become ready,
// e is destroyed and the error says why, like Lambda does.
func (w *Worker) awaitReady(ctx context.Context, e *env) (*env, coldStart, error) {
	ictx, cancel := context.WithTimeout(ctx, initTimeout)
	stop := context.AfterFunc(e.exited, cancel)
	err := e.api.WaitReady(ictx)
	stop()
	cancel()
	cs := coldStart{dur: time.Since(e.created)}
	cs.lines, _, cs.ext = e.logs.takeSplit()
	if err == nil {
		e.api.TelemetryInitDone(e.initType, "", cs.dur)
		// The init ran at the host's speed; the invocations get the
		// function's share.
		if err := e.sb.LimitCPU(); err != nil {
			w.destroy(e)
			return nil, coldStart{}, err
		}
		if err := w.envs.ready(e); err != nil {
			w.destroy(e)
			return nil, coldStart{}, err
		}
		return e, cs, nil
	}

	fail := &initFailed{dur: cs.dur}
	var ie *runtimeapi.InitError
	var xe *runtimeapi.ExtensionError
	switch {
	case errors.As(err, &xe):
		extensionInitFailure(xe, fail)
	case errors.As(err, &ie):
		fail.errType = ie.Type
		if fail.errType == "" {
			fail.errType = lambdaerr.RuntimeUnknown
		}
		fail.body = ie.Body
		if !json.Valid(fail.body) || len(fail.body) == 0 {
			fail.body = lambdaerr.ErrorBody(fail.errType, ie.Message)
		}
	case e.exited.Err() != nil:
		<-e.sb.Done()
		r := exitResult("", e.sb)
		fail.errType, fail.body = r.ErrorType, r.Payload
	case ctx.Err() != nil:
		w.destroy(e)
		return nil, coldStart{}, fmt.Errorf("starting %s: %w", e.id, ctx.Err())
	default:
		fail.errType = lambdaerr.SandboxTimedout
		fail.body = lambdaerr.ErrorBody(fail.errType, initTimeoutMessage(e))
	}
	e.api.TelemetryInitDone(e.initType, fail.errType, cs.dur)
	e.endWith(runtimeapi.ShutdownFailure)
	if fail.errType == lambdaerr.SandboxTimedout {
		e.endWith(runtimeapi.ShutdownTimeout)
	}
	fail.maxMemMB = e.maxMemoryMB()
	more, _ := e.logs.take()
	fail.lines = append(cs.lines, more...)
	w.destroy(e)
	return nil, coldStart{}, fail
}

// argv is the command a runtime starts with: Owl's interpreter and
// bootstrap, or for a custom runtime the first entrypoint that exists
// (/var/task/bootstrap, then /opt/bootstrap from a layer); when none does,
// the exec fails as Runtime.InvalidEntrypoint.
func argv(rt runtimes.Runtime, codeDir, optDir string) []string {
	if !rt.Provided() {
		return rt.Argv
	}
	for _, p := range rt.Entrypoints {
		host := ""
		if rel, ok := strings.CutPrefix(p, "/var/task/"); ok {
			host = codeDir + "/" + rel
		} else if rel, ok := strings.CutPrefix(p, "/opt/"); ok && optDir != "" {
			host = optDir + "/" + rel
		}
		if _, err := os.Stat(host); host != "" && err == nil {
			return []string{p}
		}
	}
	return rt.Entrypoints[:1]
}

// fnVersion is the version fn is: Latest or a published number.
func fnVersion(fn registry.Function) string {
	if fn.Version == "" {
		return registry.Latest
	}
	return fn.Version
}

// logEnviron is what tells a runtime a JSON LoggingConfig, as Lambda does:
// AWS_LAMBDA_LOG_FORMAT=JSON and AWS_LAMBDA_LOG_LEVEL, the application's
// level (they replace the function's own variables of those names). Text
// sets neither, so the function's AWS_LAMBDA_LOG_LEVEL, if any, applies.
func logEnviron(l registry.Logging) []string {
	if !l.JSON() {
		return nil
	}
	return []string{"AWS_LAMBDA_LOG_FORMAT=" + registry.LogJSON, "AWS_LAMBDA_LOG_LEVEL=" + l.AppLevel}
}

// environ is the runtime's environment, as Lambda sets it.
func (w *Worker) environ(fn registry.Function, rt runtimes.Runtime, provisioned bool) []string {
	envv := make([]string, 0, 24+len(fn.Environment))
	logEnv := logEnviron(fn.Logging)
	for k, v := range fn.Environment {
		if k == prewarmVar || (logEnv != nil && containsEnvKey(logEnv, k)) {
			continue // Owl's own (prewarm.go), or set by the function's LoggingConfig
		}
		envv = append(envv, k+"="+v)
	}
	envv = append(envv, logEnv...)
	for _, kv := range rt.Env { // the runtime's defaults, unless the function sets them
		if k, _, _ := strings.Cut(kv, "="); fn.Environment[k] == "" {
			envv = append(envv, kv)
		}
	}
	envv = append(envv,
		"_HANDLER="+fn.Handler,
		"AWS_LAMBDA_FUNCTION_NAME="+fn.Name,
		"AWS_LAMBDA_FUNCTION_VERSION="+fnVersion(fn),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(fn.MemorySize),
		"AWS_LAMBDA_LOG_GROUP_NAME="+fn.Logging.LogGroup(fn.Name),
		"AWS_LAMBDA_LOG_STREAM_NAME="+time.Now().UTC().Format("2006/01/02")+"/["+fnVersion(fn)+"]"+strings.ReplaceAll(fn.RevisionID, "-", ""),
		"AWS_LAMBDA_RUNTIME_API="+runtimeAPIAddr,
		"AWS_LAMBDA_INITIALIZATION_TYPE="+initType(provisioned),
		"AWS_REGION="+w.cfg.Region,
		"AWS_DEFAULT_REGION="+w.cfg.Region,
		"LAMBDA_TASK_ROOT=/var/task",
		"LAMBDA_RUNTIME_DIR=/var/runtime",
		"LANG=en_US.UTF-8",
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
		"TZ=:UTC",
	)
	if rt.ExecutionEnv != "" {
		envv = append(envv, "AWS_EXECUTION_ENV="+rt.ExecutionEnv)
	}
	return envv
}

// destroy retires e and tears it down in the background (unless it is
// retiring already); Close waits for every teardown.
func (w *Worker) destroy(e *env) {
	if w.envs.retire(e) {
		w.teardown(e)
	}
}

// teardown gives back the memory of an environment the pool retired, at
// once, and destroys its sandbox in the background.
func (w *Worker) teardown(e *env) {
	w.memory.release(e.memMB)
	go func() {
		defer w.envs.teardowns.Done()
		e.freezeMu.Lock()
		if e.freezeTimer != nil {
			e.freezeTimer.Stop()
		}
		e.freezeMu.Unlock()
		w.shutdownExtensions(e)
		if err := e.sb.Destroy(); err != nil {
			w.cfg.Logger.Warn("destroying sandbox", "sandbox", e.id, "err", err)
		}
		_ = e.api.Close()
		<-e.serveErr
		e.logs.close()
		w.cache.unref(e.dirs...)
	}()
}

func (w *Worker) teardownAll(envs []*env) {
	for _, e := range envs {
		w.teardown(e)
	}
}

// evictIdle tears down the least recently used idle environment to make
// room (memoryBudget.reserve); false when there is none.
func (w *Worker) evictIdle() bool {
	e := w.envs.takeLRU()
	if e == nil {
		return false
	}
	w.teardown(e)
	return true
}
