package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/runtimeapi"
	"github.com/owl-project/owl/internal/runtimes"
	"github.com/owl-project/owl/internal/sandbox"
)

// Pre-warmed environments (issue 5): for each interpreted runtime (Python,
// Node.js) the worker keeps Config.Prewarm sandboxes whose interpreter is
// already running Owl's bootstrap, which has done its imports and waits on
// the Runtime API's specialize endpoint. A cold start of a function of that
// runtime takes one instead of creating a sandbox and starting the
// interpreter: the sandbox is specialised (the function's code and layers
// are attached read-only through its slots, a /tmp of the function's size,
// its memory and CPU limits, its network), the bootstrap is handed the
// function's environment, and it loads the handler and asks for /next as a
// freshly started runtime would.
//
// No state is shared between functions: a spare holds nothing of any
// function before it is specialised, is specialised exactly once, and is
// then an ordinary environment of that one function version (pooled, reused
// warm and destroyed like any other); it never returns to the spares.
// Without a ready spare, or if specialising fails (the spare is then
// destroyed), the cold start creates its sandbox as before.
//
// Custom runtimes (provided, provided.al2, provided.al2023) share one kind
// of spare, keyed providedKey: their program is the function's own
// bootstrap, so nothing can run before the function is known. Their spare
// is a sandbox built to the point of exec (sandbox.Spec.DeferExec: mounts,
// identity, seccomp, the Runtime API listener and, on a node with egress,
// eth0) whose init waits; specialising attaches the code and execs the
// bootstrap (or /opt/bootstrap) with exactly the function's environment, as
// a fresh start does. A fresh exec honours every variable, so any function
// of a custom runtime may take one, unless its network differs from the
// spare's (made with the spare, off the cold path) or it has external
// extensions (they start before the runtime).

const (
	// prewarmMemoryMB is a spare's memory limit until it is specialised:
	// at most any function's (a v1 memory limit cannot be lowered below
	// the usage, and an idle interpreter uses far less).
	prewarmMemoryMB = 128
	// prewarmRetry is how long the refill waits after a failed start.
	prewarmRetry = time.Second
	// prewarmIDPrefix starts the sandbox ID (and cgroup name) of a spare.
	prewarmIDPrefix = "prewarm-"
	// prewarmVar tells Owl's bootstraps to wait for their function.
	prewarmVar = "_OWL_PREWARM"
	// providedKey is the runtime under which the spares of every custom
	// runtime are kept: they are the same until specialised.
	providedKey = "provided"
)

// startupEnvKeys are the variables of a function's environment that its
// runtime's generic start-up environment has too (same values for every
// function of the runtime): a spare is started with them.
var startupEnvKeys = map[string]bool{
	"PATH": true, "LANG": true, "LD_LIBRARY_PATH": true, "TZ": true,
	"LAMBDA_TASK_ROOT": true, "LAMBDA_RUNTIME_DIR": true, "AWS_LAMBDA_RUNTIME_API": true,
	"AWS_EXECUTION_ENV": true,
}

// startupSensitive are prefixes of variables an interpreter or the C
// library reads when the process starts: a function that sets one of them
// needs a fresh process to honour it, so it never gets a spare.
var startupSensitive = []string{"PYTHON", "NODE_", "UV_", "LD_", "MALLOC_", "GLIBC_", "LC_", "LANG", "TZ", "_OWL_", "AWS_LAMBDA_EXEC_WRAPPER"}

// runtimeSpare is a pre-warmed environment waiting for its function.
type runtimeSpare struct {
	sb Sandbox
	// req is the bootstrap's request for its function; nil for a custom
	// runtime's spare, whose init waits for its command (DeferExec).
	req *runtimeapi.SpecializeRequest
}

func (s *runtimeSpare) destroy() {
	if s.req != nil {
		_ = s.req.Close()
	}
	_ = s.sb.Destroy()
}

// prewarmPool keeps the spares of every interpreted runtime.
type prewarmPool struct {
	w   *Worker
	per int

	mu     sync.Mutex                 // guards ready and closed
	ready  map[string][]*runtimeSpare // by runtime ID; guarded by mu
	closed bool                       // guarded by mu

	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	seq         atomic.Uint64
	specialized atomic.Int64
	fallbacks   atomic.Int64
	// failures counts specialisations failed in a row; at
	// maxSpecializeFailures the pool gives up (e.g. a kernel without
	// open_tree/mount_setattr) instead of wasting a spare per cold start.
	failures atomic.Int32
	disabled atomic.Bool
}

// maxSpecializeFailures in a row disable pre-warming until restart.
const maxSpecializeFailures = 3

// PrewarmRuntimes lists the runtimes this node keeps spares of: the
// interpreted ones it can run, and providedKey, whose spares serve every
// custom runtime.
func PrewarmRuntimes() []string {
	ids := runtimes.Interpreted()
	if _, ok := runtimes.Lookup(providedKey); ok {
		ids = append(ids, providedKey)
	}
	return ids
}

// prewarmKey is the runtime whose spares rt's functions take.
func prewarmKey(rt runtimes.Runtime) string {
	if rt.Provided() {
		return providedKey
	}
	return rt.ID
}

func newPrewarmPool(w *Worker, per int) *prewarmPool {
	p := &prewarmPool{w: w, per: per, ready: map[string][]*runtimeSpare{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if per <= 0 || w.sandbox == nil {
		close(p.done)
		return p
	}
	p.kick <- struct{}{}
	go p.refill(PrewarmRuntimes())
	return p
}

func (p *prewarmPool) kickRefill() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// refill keeps per spares of each runtime, one start at a time (they are
// off the request path; two cores are better spent on invocations).
func (p *prewarmPool) refill(ids []string) {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		case <-p.kick:
		}
		for {
			id := p.missing(ids)
			if id == "" {
				break
			}
			s, err := p.start(id)
			if err != nil {
				select {
				case <-p.stop:
					return // cancelled by close, not failed
				default:
				}
				p.w.cfg.Logger.Warn("starting a pre-warmed environment", "runtime", id, "err", err)
				select {
				case <-p.stop:
					return
				case <-time.After(prewarmRetry):
				}
				continue
			}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				s.destroy()
				return
			}
			p.ready[id] = append(p.ready[id], s)
			p.mu.Unlock()
		}
	}
}

// missing returns a runtime with fewer than per ready spares, dropping
// spares whose runtime exited meanwhile; "" when none.
func (p *prewarmPool) missing(ids []string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		live := p.ready[id][:0]
		for _, s := range p.ready[id] {
			select {
			case <-s.sb.Done():
				go s.destroy()
			default:
				live = append(live, s)
			}
		}
		p.ready[id] = live
		if len(live) < p.per {
			return id
		}
	}
	return ""
}

// start creates a spare of runtime id and waits until its bootstrap asks
// for its function.
func (p *prewarmPool) start(id string) (*runtimeSpare, error) {
	rt, ok := runtimes.Lookup(id)
	if !ok {
		return nil, fmt.Errorf("runtime %s is not available", id)
	}
	w := p.w
	ctx, cancel := context.WithTimeout(context.Background(), initTimeout)
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	spec := sandbox.Spec{
		ID:             prewarmIDPrefix + id + "-" + strconv.FormatUint(p.seq.Add(1), 10),
		Slots:          true,
		RuntimeDir:     w.cfg.RuntimeDir,
		Argv:           rt.Argv,
		Env:            w.prewarmEnviron(rt),
		MemoryMB:       prewarmMemoryMB,
		UID:            w.cfg.UID,
		GID:            w.cfg.GID,
		RuntimeAPIAddr: runtimeAPIAddr,
	}
	if rt.Provided() {
		// Built up to the exec of a bootstrap it does not know yet.
		spec.Argv, spec.Env, spec.DeferExec, spec.Egress = nil, nil, true, w.cfg.Egress
	}
	sb, err := w.sandbox.Create(ctx, spec)
	if err != nil {
		return nil, err
	}
	if rt.Provided() {
		return &runtimeSpare{sb: sb}, nil
	}
	dctx, dcancel := context.WithCancel(ctx)
	defer dcancel()
	go func() {
		select {
		case <-sb.Done():
			dcancel()
		case <-dctx.Done():
		}
	}()
	req, err := runtimeapi.AwaitSpecialize(dctx, sb.Listener())
	if err != nil {
		select {
		case <-sb.Done():
			// Say why: the runtime's exit and the end of what it wrote.
			out := make([]byte, 2048)
			_ = sb.Output().SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, _ := io.ReadFull(sb.Output(), out)
			err = fmt.Errorf("the runtime exited before it was ready (%v): %q", sb.ExitError(), out[:n])
		default:
		}
		_ = sb.Destroy()
		return nil, fmt.Errorf("%s: %w", sb.ID(), err)
	}
	return &runtimeSpare{sb: sb, req: req}, nil
}

// prewarmEnviron is a spare's start-up environment: the runtime's own
// variables and the platform's, the same for every function of the
// runtime, and the marker that makes the bootstrap wait for its function.
func (w *Worker) prewarmEnviron(rt runtimes.Runtime) []string {
	envv := []string{prewarmVar + "=1"}
	for _, kv := range w.environ(registry.Function{}, rt, false) {
		k, _, _ := strings.Cut(kv, "=")
		if startupEnvKeys[k] || containsEnvKey(rt.Env, k) {
			envv = append(envv, kv)
		}
	}
	return envv
}

func containsEnvKey(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// prewarmEligible reports whether fn's environment can be honoured by a
// spare of its runtime: a custom runtime's is exec'd with it, an
// interpreter was started without it.
func prewarmEligible(fn registry.Function, rt runtimes.Runtime) bool {
	if rt.Provided() {
		return true
	}
	for k := range fn.Environment {
		for _, prefix := range startupSensitive {
			if strings.HasPrefix(k, prefix) {
				return false
			}
		}
	}
	return true
}

// take removes a ready spare of runtime id, or returns nil.
func (p *prewarmPool) take(id string) *runtimeSpare {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.ready[id]) > 0 {
		list := p.ready[id]
		s := list[0]
		p.ready[id] = list[1:]
		select {
		case <-s.sb.Done():
			go s.destroy()
			continue
		default:
		}
		return s
	}
	return nil
}

// specialize turns a ready spare into an environment of fn: it attaches
// the code, layers, /tmp, limits and network and hands the bootstrap the
// function's environment (a custom runtime's spare execs argv with it). It
// returns nil (and the caller creates a sandbox as usual) when there is no
// spare, fn cannot use one, or specialising failed; an error only when the
// function is at fault (its entrypoint cannot be exec'd), as Create would.
func (p *prewarmPool) specialize(fn registry.Function, rt runtimes.Runtime, codeDir, optDir string, egress bool, argv, env []string) (Sandbox, error) {
	if p.per <= 0 || p.disabled.Load() || !prewarmEligible(fn, rt) {
		return nil, nil
	}
	if rt.Provided() && egress != p.w.cfg.Egress {
		// Its spares were made with the node's network (Config.Egress).
		p.w.cfg.Logger.Debug("network differs from the pre-warmed environments'; starting a fresh one", "function", fn.Name, "egress", egress)
		return nil, nil
	}
	s := p.take(prewarmKey(rt))
	if s == nil {
		p.fallbacks.Add(1)
		p.w.cfg.Logger.Debug("no pre-warmed environment ready; starting a fresh one", "function", fn.Name, "runtime", rt.ID)
		return nil, nil
	}
	sp := sandbox.Specialization{
		CodeDir:  codeDir,
		OptDir:   optDir,
		TmpMB:    fn.EphemeralStorage,
		MemoryMB: fn.MemorySize,
		Egress:   egress,
	}
	if s.req == nil {
		sp.Argv, sp.Env = argv, env
	}
	t0 := time.Now()
	err := s.sb.Specialize(sp)
	if err == nil && s.req != nil {
		err = s.req.Answer(runtimeapi.Specialization{Env: env})
	}
	if errors.Is(err, sandbox.ErrInvalidEntrypoint) {
		// No bootstrap in the code: the function's fault, not the spare's.
		s.destroy()
		p.specialized.Add(1)
		p.kickRefill()
		return nil, err
	}
	if err != nil {
		p.w.cfg.Logger.Warn("specializing a pre-warmed environment; starting a fresh one", "function", fn.Name, "sandbox", s.sb.ID(), "err", err)
		s.destroy()
		p.fallbacks.Add(1)
		if p.failures.Add(1) >= maxSpecializeFailures && !p.disabled.Swap(true) {
			p.w.cfg.Logger.Error("pre-warming disabled: specialising failed repeatedly", "times", maxSpecializeFailures, "err", err)
			go p.close()
			return nil, nil
		}
		p.kickRefill()
		return nil, nil
	}
	p.failures.Store(0)
	p.specialized.Add(1)
	p.w.cfg.Logger.Debug("specialized a pre-warmed environment", "function", fn.Name, "sandbox", s.sb.ID(), "took", time.Since(t0))
	return s.sb, nil
}

// readyCount is how many spares are waiting.
func (p *prewarmPool) readyCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.ready {
		n += len(l)
	}
	return n
}

// close stops the refill and destroys the waiting spares.
func (p *prewarmPool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	all := p.ready
	p.ready = map[string][]*runtimeSpare{}
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	var wg sync.WaitGroup
	for _, l := range all {
		for _, s := range l {
			wg.Go(s.destroy)
		}
	}
	wg.Wait()
}
