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
// its log capture.
type env struct {
	key      poolKey
	sb       Sandbox
	api      *runtimeapi.Server
	logs     *logCapture
	exited   context.Context // done when the sandbox's runtime exited
	serveErr chan error
	lastUsed time.Time // guarded by Worker.mu while idle
	idle     bool      // in its pool's idle list; guarded by Worker.mu
	created  time.Time
	memMB    int      // accounted in Worker.memUsed until destroyed
	dirs     []string // code cache directories it binds; unref'd when destroyed
	// provisioned environments are kept initialised by provisioning: never
	// evicted for idleness or memory. Guarded by Worker.mu.
	provisioned bool

	freezeMu    sync.Mutex  // serialises freezing and thawing
	freezeTimer *time.Timer // guarded by freezeMu; made by the first scheduleFreeze
	idleMu      *sync.Mutex // Worker.mu, which guards idle; set with freezeTimer
	frozen      atomic.Bool // written under freezeMu
}

// scheduleFreeze freezes the environment after d unless it was taken
// meanwhile (e.idle, read under idleMu: Worker.mu). The timer is made once
// per environment and re-armed on every release, which happens once per
// warm invocation: a new timer and closure each time were two allocations
// and a timer creation on the warm path.
func (e *env) scheduleFreeze(d time.Duration, idleMu *sync.Mutex) {
	e.freezeMu.Lock()
	defer e.freezeMu.Unlock()
	if e.freezeTimer == nil {
		e.idleMu = idleMu
		e.freezeTimer = time.AfterFunc(d, e.freezeIfIdle)
		return
	}
	e.freezeTimer.Reset(d)
}

// freezeIfIdle is the freeze timer's function.
func (e *env) freezeIfIdle() {
	e.freezeMu.Lock()
	defer e.freezeMu.Unlock()
	// Checked under freezeMu: an acquire that took the environment
	// either saw idle=false before this, or thaws after this returns.
	e.idleMu.Lock()
	idle := e.idle
	e.idleMu.Unlock()
	if e.frozen.Load() || !idle {
		return
	}
	if err := e.sb.Freeze(); err == nil {
		e.frozen.Store(true)
	}
}

// thaw cancels a pending freeze and thaws a frozen environment.
func (e *env) thaw() error {
	e.freezeMu.Lock()
	defer e.freezeMu.Unlock()
	if e.freezeTimer != nil {
		e.freezeTimer.Stop() // kept for the next release to re-arm
	}
	if !e.frozen.Load() {
		return nil
	}
	if err := e.sb.Thaw(); err != nil {
		return err
	}
	e.frozen.Store(false)
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

// start creates an environment for fn and waits for its runtime's first
// /next. A runtime that fails to initialise yields *initFailed.
func (w *Worker) start(ctx context.Context, fn registry.Function, key poolKey, opts startOptions) (*env, time.Duration, []string, error) {
	rt, ok := runtimes.Lookup(fn.Runtime)
	if !ok {
		return nil, 0, nil, fmt.Errorf("function %s: runtime %q is not available on this node", fn.Name, fn.Runtime)
	}
	egress := fn.Network == registry.NetworkEgress || fn.Network == "" && w.cfg.Egress
	if egress && !w.cfg.Egress {
		// Never run it without the network it was configured with; like
		// Lambda's answer for a function in a Failed state.
		return nil, 0, nil, lambdaerr.New(lambdaerr.ResourceConflict,
			"The function %s has Network %s, which this Owl server has disabled (OWL_NETWORK_EGRESS=false): "+
				"enable egress, or update the function to Network %s.", fn.Name, registry.NetworkEgress, registry.NetworkNone)
	}
	if err := w.reserveMemory(ctx, fn.MemorySize, opts.waitForMemory); err != nil {
		return nil, 0, nil, err
	}
	var dirs []string  // code cache references, given back by destroy
	accounted := false // once true, destroy releases the memory and dirs
	defer func() {
		if !accounted {
			w.mu.Lock()
			w.releaseMemoryLocked(fn.MemorySize)
			w.mu.Unlock()
			w.unref(dirs...)
		}
	}()
	dir, err := w.codeDir(ctx, fn.CodeSha256Hex)
	if err != nil {
		return nil, 0, nil, err
	}
	dirs = append(dirs, dir)
	optDir, err := w.layersDir(ctx, fn.Layers)
	if err != nil {
		return nil, 0, nil, err
	}
	if optDir != "" {
		dirs = append(dirs, optDir)
	}
	t0 := time.Now()
	id := fmt.Sprintf("%s-%d", strings.ToLower(fn.Name), w.envSeq.Add(1))
	environ := w.environ(fn, rt, opts.provisioned)
	if sb := w.prewarm.specialize(fn, rt, dir, optDir, egress, environ); sb != nil {
		// A pre-warmed environment (prewarm.go): its refill waits until
		// this one is ready, not competing with it for CPU.
		defer w.prewarm.kickRefill()
		id = sb.ID()
		return w.serve(ctx, sb, key, id, t0, fn, opts, dirs, &accounted)
	}
	sb, err := w.sandbox.Create(ctx, sandbox.Spec{
		ID:             id,
		CodeDir:        dir,
		RuntimeDir:     w.cfg.RuntimeDir,
		OptDir:         optDir,
		Argv:           argv(rt, dir, optDir),
		Env:            environ,
		MemoryMB:       fn.MemorySize,
		TmpMB:          fn.EphemeralStorage,
		UID:            w.cfg.UID,
		GID:            w.cfg.GID,
		RuntimeAPIAddr: runtimeAPIAddr,
		Egress:         egress,
	})
	if errors.Is(err, sandbox.ErrInvalidEntrypoint) {
		// The code has no runnable bootstrap: the function's fault, reported
		// as Lambda does, not a platform error.
		return nil, 0, nil, &initFailed{dur: time.Since(t0), errType: lambdaerr.RuntimeInvalidEntrypoint,
			body: lambdaerr.ErrorBody(lambdaerr.RuntimeInvalidEntrypoint, fmt.Sprintf("Error: %v", err))}
	}
	if err != nil {
		return nil, 0, nil, fmt.Errorf("creating sandbox for %s: %w", fn.Name, err)
	}
	return w.serve(ctx, sb, key, id, t0, fn, opts, dirs, &accounted)
}

// serve runs the Runtime API of a new environment's sandbox and waits for
// its runtime's first /next; the second half of start.
func (w *Worker) serve(ctx context.Context, sb Sandbox, key poolKey, id string, t0 time.Time, fn registry.Function,
	opts startOptions, dirs []string, accounted *bool) (*env, time.Duration, []string, error) {
	logs, err := newLogCapture(sb.Output(), w.cfg.LogLimitBytes)
	if err != nil {
		_ = sb.Destroy()
		return nil, 0, nil, fmt.Errorf("capturing output of %s: %w", id, err)
	}
	api, err := runtimeapi.New(runtimeapi.Config{}, w.cfg.Logger.With("env", id))
	if err != nil {
		logs.close()
		_ = sb.Destroy()
		return nil, 0, nil, fmt.Errorf("runtime API for %s: %w", id, err)
	}
	exited, markExited := context.WithCancel(context.Background())
	e := &env{key: key, sb: sb, api: api, logs: logs, exited: exited, serveErr: make(chan error, 1),
		created: t0, memMB: fn.MemorySize, provisioned: opts.provisioned, dirs: dirs}
	go func() { e.serveErr <- e.api.Serve(sb.Listener()) }()
	go func() {
		<-sb.Done()
		markExited()
	}()

	w.mu.Lock()
	w.all[e] = struct{}{}
	*accounted = true
	if w.pools[key] == nil {
		w.pools[key] = &pool{}
	}
	w.mu.Unlock()

	ictx, cancel := context.WithTimeout(ctx, initTimeout)
	stop := context.AfterFunc(exited, cancel)
	err = e.api.WaitReady(ictx)
	stop()
	cancel()
	initDur := time.Since(t0)
	if err == nil {
		return e, initDur, e.logs.take(), nil
	}

	// The runtime did not become ready: report why, like Lambda does.
	fail := &initFailed{dur: initDur}
	var ie *runtimeapi.InitError
	switch {
	case errors.As(err, &ie):
		fail.errType = ie.Type
		if fail.errType == "" {
			fail.errType = lambdaerr.RuntimeUnknown
		}
		fail.body = ie.Body
		if !json.Valid(fail.body) || len(fail.body) == 0 {
			fail.body = lambdaerr.ErrorBody(fail.errType, ie.Message)
		}
	case exited.Err() != nil:
		<-sb.Done()
		r := exitResult("", sb)
		fail.errType, fail.body = r.ErrorType, r.Payload
	case ctx.Err() != nil:
		w.destroy(e)
		return nil, 0, nil, fmt.Errorf("starting %s: %w", id, ctx.Err())
	default:
		fail.errType = lambdaerr.SandboxTimedout
		fail.body = lambdaerr.ErrorBody(fail.errType, fmt.Sprintf("Init timed out after %.2f seconds", initTimeout.Seconds()))
	}
	fail.maxMemMB = e.maxMemoryMB()
	lines := e.logs.take()
	w.destroy(e)
	return nil, initDur, lines, fail
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

// environ is the runtime's environment, as Lambda sets it.
func (w *Worker) environ(fn registry.Function, rt runtimes.Runtime, provisioned bool) []string {
	initType := "on-demand"
	if provisioned {
		initType = "provisioned-concurrency"
	}
	envv := make([]string, 0, 24+len(fn.Environment))
	for k, v := range fn.Environment {
		if k == prewarmVar {
			continue // Owl's own (prewarm.go): it would make the bootstrap wait for a function
		}
		envv = append(envv, k+"="+v)
	}
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
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/"+fn.Name,
		"AWS_LAMBDA_LOG_STREAM_NAME="+time.Now().UTC().Format("2006/01/02")+"/["+fnVersion(fn)+"]"+strings.ReplaceAll(fn.RevisionID, "-", ""),
		"AWS_LAMBDA_RUNTIME_API="+runtimeAPIAddr,
		"AWS_LAMBDA_INITIALIZATION_TYPE="+initType,
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

// destroy tears an environment down in the background; Close waits for
// every teardown.
func (w *Worker) destroy(e *env) {
	w.mu.Lock()
	if _, ok := w.all[e]; !ok {
		w.mu.Unlock()
		return
	}
	delete(w.all, e)
	w.releaseMemoryLocked(e.memMB)
	w.wg.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.wg.Done()
		e.freezeMu.Lock()
		if e.freezeTimer != nil {
			e.freezeTimer.Stop()
		}
		e.freezeMu.Unlock()
		if err := e.sb.Destroy(); err != nil {
			w.cfg.Logger.Warn("destroying sandbox", "sandbox", e.sb.ID(), "err", err)
		}
		_ = e.api.Close()
		<-e.serveErr
		e.logs.close()
		w.unref(e.dirs...)
	}()
}
