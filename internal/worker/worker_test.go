package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/testkit"
)

// These tests run the worker on fake sandboxes (fake_test.go): no root.

func invoke(t *testing.T, w *Worker, fn registry.Function, payload string) *Result {
	t.Helper()
	res, err := w.Invoke(t.Context(), fn, Request{RequestID: "req-" + payload, Payload: []byte(payload)})
	if err != nil {
		t.Fatalf("invoke %q: %v", payload, err)
	}
	return res
}

// errorType reads the errorType of an error payload.
func wantFunctionError(t *testing.T, res *Result, errType, inMessage string) {
	t.Helper()
	if !res.FunctionError || res.ErrorType != errType {
		t.Fatalf("result %+v: want function error %s", res, errType)
	}
	if !strings.Contains(string(res.Payload), `"errorType":"`+errType+`"`) || !strings.Contains(string(res.Payload), inMessage) {
		t.Errorf("payload %s: want errorType %s and %q", res.Payload, errType, inMessage)
	}
}

// TestInvokeOutcomes: what an invocation returns for each way it can end,
// and whether its environment serves again.
func TestInvokeOutcomes(t *testing.T) {
	w, sbs := newTestWorker(t, Config{})
	fn := testFunction("outcomes", nil)

	res := invoke(t, w, fn, `{"n":1}`)
	if res.FunctionError || string(res.Payload) != `{"n":1}` {
		t.Fatalf("success: %+v", res)
	}
	testkit.Contains(t, "cold start log", res.Log, "START RequestId: req-", "init done", `got {"n":1}`, "END RequestId: req-", "REPORT RequestId: req-", "Init Duration", "Max Memory Used: 10 MB")

	res = invoke(t, w, fn, "fail")
	if !res.FunctionError || res.ErrorType != "Oops" {
		t.Fatalf("function error: %+v", res)
	}
	if len(sbs.created()) != 1 {
		t.Fatalf("a function error must leave the environment in service: %d sandboxes", len(sbs.created()))
	}

	for _, tc := range []struct {
		payload, errType, message string
	}{
		{"sleep", lambdaerr.SandboxTimedout, "Task timed out after 1.00 seconds"},
		{"exit", lambdaerr.RuntimeExitError, "Runtime exited with error: exit status 2"},
		{"oom", lambdaerr.RuntimeExitError, "Runtime exited with error: signal: killed"},
	} {
		before := len(sbs.created())
		res := invoke(t, w, fn, tc.payload)
		wantFunctionError(t, res, tc.errType, tc.message)
		if !strings.Contains(res.Log, "REPORT RequestId: req-"+tc.payload) {
			t.Errorf("%s: no REPORT:\n%s", tc.payload, res.Log)
		}
		if tc.payload == "oom" && !strings.Contains(res.Log, "Max Memory Used: 128 MB") {
			t.Errorf("an OOM kill reports the memory limit as used:\n%s", res.Log)
		}
		eventually(t, tc.payload+": the environment destroyed", func() bool { return sbs.created()[before-1].isDestroyed() })
		if s := w.Stats(); s.Environments != 0 {
			t.Errorf("%s: %d environments left, want none reused", tc.payload, s.Environments)
		}
		// The next invocation starts afresh.
		if res := invoke(t, w, fn, "again"); res.FunctionError {
			t.Fatalf("after %s: %+v", tc.payload, res)
		}
		if got := len(sbs.created()); got != before+1 {
			t.Fatalf("after %s: %d sandboxes, want %d", tc.payload, got, before+1)
		}
	}
}

// TestInitFailures: a runtime that cannot become ready is the function's
// error, reported as Lambda does, and leaves no environment.
func TestInitFailures(t *testing.T) {
	w, sbs := newTestWorker(t, Config{})
	for _, tc := range []struct {
		init, errType, message string
	}{
		{"error", "Runtime.HandlerNotFound", "no handler"},
		{"exit", lambdaerr.RuntimeExitError, "exit status 3"},
		{"noentry", lambdaerr.RuntimeInvalidEntrypoint, "no such file"},
	} {
		res := invoke(t, w, testFunction("init-"+tc.init, map[string]string{"FAKE_INIT": tc.init}), "x")
		wantFunctionError(t, res, tc.errType, tc.message)
		if tc.init == "exit" && !strings.Contains(res.Log, "dying at init") {
			t.Errorf("the init's output is not in the log:\n%s", res.Log)
		}
		if s := w.Stats(); s.Environments != 0 {
			t.Errorf("init %s: %d environments left", tc.init, s.Environments)
		}
	}
	eventually(t, "every sandbox destroyed", func() bool { return sbs.live() == 0 })
}

// TestWarmReuse: an idle environment serves the next invocation of its
// configuration, and only of its configuration.
func TestWarmReuse(t *testing.T) {
	w, sbs := newTestWorker(t, Config{})
	fn := testFunction("warm", nil)
	invoke(t, w, fn, "one")
	res := invoke(t, w, fn, "two")
	if strings.Contains(res.Log, "Init Duration") {
		t.Errorf("a warm invocation reports an init:\n%s", res.Log)
	}
	if n := len(sbs.created()); n != 1 {
		t.Fatalf("%d sandboxes for two sequential invocations, want 1", n)
	}
	if s := w.Stats(); s.Environments != 1 || s.Idle != 1 {
		t.Errorf("stats %+v", s)
	}
	other := fn
	other.RevisionID = "rev-2"
	invoke(t, w, other, "three")
	if n := len(sbs.created()); n != 2 {
		t.Fatalf("another revision reused an environment: %d sandboxes", n)
	}
}

// TestFreezeAndThaw: an environment idle for FreezeAfter is frozen; the
// next invocation thaws it; one that cannot be thawed is replaced.
func TestFreezeAndThaw(t *testing.T) {
	w, sbs := newTestWorker(t, Config{FreezeAfter: 20 * time.Millisecond})
	fn := testFunction("freeze", nil)
	invoke(t, w, fn, "one")
	sb := sbs.created()[0]
	eventually(t, "frozen", func() bool { return sb.isFrozen() && w.Stats().Frozen == 1 })

	invoke(t, w, fn, "two")
	if sb.isFrozen() || len(sbs.created()) != 1 {
		t.Fatalf("not thawed and reused: frozen %v, %d sandboxes", sb.isFrozen(), len(sbs.created()))
	}
	eventually(t, "frozen again", func() bool { return sb.isFrozen() })

	sb.mu.Lock()
	sb.thawErr = errors.New("thaw refused")
	sb.mu.Unlock()
	res := invoke(t, w, fn, "three")
	if res.FunctionError || len(sbs.created()) != 2 {
		t.Fatalf("a failed thaw: %+v, %d sandboxes, want a fresh environment", res, len(sbs.created()))
	}
	eventually(t, "the unthawable environment destroyed", sb.isDestroyed)
}

// TestRetire: changed configurations lose their idle environments at once
// and their busy ones when the invocation ends; the new revision keeps its.
func TestRetire(t *testing.T) {
	w, sbs := newTestWorker(t, Config{})
	old := testFunction("retire", nil)
	done := make(chan *Result)
	go func() {
		res, _ := w.Invoke(context.Background(), old, Request{RequestID: "busy", Payload: []byte("hold:500")})
		done <- res
	}()
	eventually(t, "a busy environment", func() bool { return len(sbs.created()) == 1 && sbs.created()[0].eventsTaken() == 1 })
	busySB := sbs.created()[0]
	invoke(t, w, old, "idle-one")
	idleSB := sbs.created()[1]

	w.Retire(registry.Change{Name: "retire", Version: registry.Latest, Revision: "rev-2"})
	eventually(t, "the idle environment destroyed", idleSB.isDestroyed)
	if busySB.isDestroyed() {
		t.Fatal("a busy environment was destroyed under its invocation")
	}
	if res := <-done; res == nil || res.FunctionError {
		t.Fatalf("the busy invocation: %+v", res)
	}
	eventually(t, "the busy environment destroyed when it finished", busySB.isDestroyed)

	updated := old
	updated.RevisionID = "rev-2"
	invoke(t, w, updated, "new")
	w.Retire(registry.Change{Name: "retire", Version: registry.Latest, Revision: "rev-2"})
	if s := w.Stats(); s.Idle != 1 {
		t.Errorf("the current revision lost its environment: %+v", s)
	}
	w.Retire(registry.Change{Name: "retire"}) // deleted
	eventually(t, "everything destroyed on deletion", func() bool { return sbs.live() == 0 })
}

// TestEviction: an environment that does not fit the memory budget evicts
// the least recently used idle one; with every environment busy it is
// refused.
func TestEviction(t *testing.T) {
	w, sbs := newTestWorker(t, Config{MemoryBudgetMB: 256, MemoryOvercommit: 1})
	a, b, c := testFunction("a", nil), testFunction("b", nil), testFunction("c", nil)
	invoke(t, w, a, "x")
	invoke(t, w, b, "x")
	invoke(t, w, c, "x") // evicts a's, the least recently used
	all := sbs.created()
	eventually(t, "a's environment evicted", all[0].isDestroyed)
	if all[1].isDestroyed() || all[2].isDestroyed() {
		t.Fatal("evicted more than the least recently used")
	}

	hold := make(chan struct{})
	var wg sync.WaitGroup
	for _, fn := range []registry.Function{b, c} {
		wg.Go(func() {
			<-hold
			invoke(t, w, fn, "hold:1500")
		})
	}
	close(hold)
	eventually(t, "both environments busy", func() bool { return w.Stats().Idle == 0 })
	_, err := w.Invoke(t.Context(), a, Request{RequestID: "no-room", Payload: []byte("x")})
	if e := lambdaerr.As(err); e == nil || e.Code != lambdaerr.TooManyRequests || !strings.Contains(e.Message, "no memory") {
		t.Errorf("with every environment busy: %v, want TooManyRequests for memory", err)
	}
	wg.Wait()
}

// TestIdleCollection: environments idle past the idle timeout go; so do
// those older than MaxLifetime.
func TestIdleCollection(t *testing.T) {
	w, sbs := newTestWorker(t, Config{IdleTimeout: 200 * time.Millisecond})
	invoke(t, w, testFunction("idle", nil), "x")
	eventually(t, "the idle environment collected", func() bool { return sbs.live() == 0 && w.Stats().Environments == 0 })

	w2, sbs2 := newTestWorker(t, Config{MaxLifetime: 150 * time.Millisecond})
	fn := testFunction("old", nil)
	invoke(t, w2, fn, "x")
	time.Sleep(200 * time.Millisecond)
	invoke(t, w2, fn, "x") // it served once more, and is then too old to pool
	eventually(t, "the expired environment collected", func() bool { return sbs2.live() == 0 })
}

// TestConcurrentAccounting: many invocations at once never hold more
// memory than the budget, all succeed within the capacity wait, and every
// megabyte comes back.
func TestConcurrentAccounting(t *testing.T) {
	const budget = 512
	w, sbs := newTestWorker(t, Config{MemoryBudgetMB: budget, MemoryOvercommit: 1, CapacityWait: 5 * time.Second})
	fns := []registry.Function{testFunction("p", nil), testFunction("q", nil), testFunction("r", nil)}

	var over atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if used := memoryInUse(w); used > budget {
				over.Store(int64(used))
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 24 {
		wg.Go(func() {
			res, err := w.Invoke(t.Context(), fns[i%len(fns)], Request{RequestID: fmt.Sprint("c", i), Payload: []byte("hold:20")})
			if err != nil || res.FunctionError {
				failed.Add(1)
				t.Errorf("invocation %d: %v %+v", i, err, res)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	if n := over.Load(); n != 0 {
		t.Errorf("memory in use reached %d MB, over the %d MB budget", n, budget)
	}
	if s := w.Stats(); s.Environments > budget/128 || s.Inflight != 0 {
		t.Errorf("stats after the burst: %+v", s)
	}
	if got, want := memoryInUse(w), 128*w.Stats().Environments; got != want {
		t.Errorf("memory in use %d MB for %d environments, want %d", got, w.Stats().Environments, want)
	}
	w.Retire(registry.Change{Name: "p"})
	w.Retire(registry.Change{Name: "q"})
	w.Retire(registry.Change{Name: "r"})
	eventually(t, "all memory back", func() bool { return memoryInUse(w) == 0 && sbs.live() == 0 })
}

// memoryInUse is the worker's memory accounting, in MB.
func memoryInUse(w *Worker) int { return w.memory.inUse() }

// TestStateTransitions: the state machine allows exactly the changes
// state.go draws.
func TestStateTransitions(t *testing.T) {
	legal := map[[2]envState]bool{
		{stateStarting, stateBusy}: true, {stateStarting, stateRetiring}: true,
		{stateBusy, stateIdle}: true, {stateBusy, stateRetiring}: true,
		{stateIdle, stateBusy}: true, {stateIdle, stateFrozen}: true, {stateIdle, stateRetiring}: true,
		{stateFrozen, stateBusy}: true, {stateFrozen, stateIdle}: true, {stateFrozen, stateRetiring}: true,
	}
	all := []envState{stateStarting, stateBusy, stateIdle, stateFrozen, stateRetiring}
	for _, from := range all {
		for _, to := range all {
			e := &env{id: "e", state: from}
			err := e.moveLocked(to)
			if legal[[2]envState{from, to}] {
				if err != nil || e.state != to {
					t.Errorf("%s to %s: %v, state %s", from, to, err, e.state)
				}
				continue
			}
			var te *transitionError
			if !errors.As(err, &te) || e.state != from {
				t.Errorf("%s to %s: err %v, state %s; want a transitionError and no change", from, to, err, e.state)
			}
		}
	}
	if s := envState(9).String(); s != "envState(9)" {
		t.Errorf("unknown state prints as %q", s)
	}
}

// TestIllegalReleaseIsReported: releasing an environment that is not busy
// is a worker bug: logged as an error, and the environment is not pooled
// twice.
func TestIllegalReleaseIsReported(t *testing.T) {
	var logs testkit.Buffer
	w, _ := newTestWorker(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	fn := testFunction("twice", nil)
	invoke(t, w, fn, "x")
	e, _, err := w.envs.takeIdle(keyOf(fn))
	if err != nil || e == nil {
		t.Fatalf("takeIdle: %v %v", e, err)
	}
	w.release(e)
	if _, err := w.envs.release(e, time.Now()); !errors.As(err, new(*transitionError)) {
		t.Fatalf("a second release: %v, want a transitionError", err)
	}
	w.release(e)
	if !strings.Contains(logs.String(), "illegal environment state change") || !strings.Contains(logs.String(), "idle to idle") {
		t.Errorf("the illegal release was not logged:\n%s", logs.String())
	}
	if s := w.Stats(); s.Idle != 0 || s.Environments != 0 {
		t.Errorf("after an illegal release: %+v, want the environment gone, not pooled twice", s)
	}
}

// TestCloseWhileBusy: Close ends running invocations and leaves nothing
// behind; invocations after it are refused.
func TestCloseWhileBusy(t *testing.T) {
	w, sbs := newTestWorker(t, Config{})
	fn := testFunction("closing", nil)
	done := goInvoke(w, fn, "sleep")
	eventually(t, "a busy environment", func() bool { return len(sbs.created()) == 1 && sbs.created()[0].eventsTaken() == 1 })
	w.Close()
	within(t, done, "the running invocation to end on Close")
	if n := sbs.live(); n != 0 {
		t.Errorf("%d sandboxes alive after Close", n)
	}
	if _, err := w.Invoke(t.Context(), fn, Request{RequestID: "late"}); lambdaerr.As(err) == nil {
		t.Errorf("an invocation after Close: %v, want a service error", err)
	}
}

// fakeProvisioning asks for n environments of fn.
type fakeProvisioning struct {
	fn registry.Function
	n  atomic.Int64
}

func (p *fakeProvisioning) ProvisionedTargets(context.Context) ([]registry.ProvisionedTarget, error) {
	return []registry.ProvisionedTarget{{Function: p.fn, N: int(p.n.Load())}}, nil
}

// TestProvisioned: provisioning keeps its environments initialised, idle
// collection spares them, and a lowered target hands the surplus back.
func TestProvisioned(t *testing.T) {
	fn := testFunction("prov", nil)
	fn.Version = "1"
	prov := &fakeProvisioning{fn: fn}
	prov.n.Store(2)
	w, sbs := newTestWorker(t, Config{Provisioning: prov, ProvisionEvery: 20 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	eventually(t, "two provisioned environments", func() bool { n, _ := w.Provisioned("prov", "1"); return n == 2 })
	time.Sleep(300 * time.Millisecond) // past the idle timeout
	if n, _ := w.Provisioned("prov", "1"); n != 2 || len(sbs.created()) != 2 {
		t.Fatalf("provisioned %d, created %d: idle collection took provisioned environments", n, len(sbs.created()))
	}
	if !strings.Contains(envValue(sbs.created()[0].spec.Env, "AWS_LAMBDA_INITIALIZATION_TYPE"), "provisioned-concurrency") {
		t.Errorf("environment: %v", sbs.created()[0].spec.Env)
	}
	prov.n.Store(1)
	eventually(t, "the surplus collected", func() bool { n, _ := w.Provisioned("prov", "1"); return n == 1 && sbs.live() == 1 })
}

// TestCodeCache: code is unpacked once per node; dropped code stays while
// an environment binds it and goes with the last one.
func TestCodeCache(t *testing.T) {
	w, _ := newTestWorker(t, Config{})
	fn := testFunction("cached", nil)
	other := testFunction("cached-too", nil) // the same code
	invoke(t, w, fn, "x")
	invoke(t, w, other, "x")
	dir := filepath.Join(w.cfg.DataDir, "code", fn.CodeSha256Hex)
	if _, err := os.Stat(filepath.Join(dir, "bootstrap")); err != nil {
		t.Fatalf("unpacked code: %v", err)
	}
	w.DropCode(fn.CodeSha256Hex)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("code in use was removed: %v", err)
	}
	w.Retire(registry.Change{Name: fn.Name})
	w.Retire(registry.Change{Name: other.Name})
	eventually(t, "the dropped code removed with its last environment", func() bool {
		_, err := os.Stat(dir)
		return os.IsNotExist(err)
	})
}

// TestExitWhileIdle: a runtime that exits while idle is not handed to the
// next invocation, which gets a fresh environment and no error.
func TestExitWhileIdle(t *testing.T) {
	w, sbs := newTestWorker(t, Config{})
	fn := testFunction("quitter", nil)
	invoke(t, w, fn, "x")
	first := sbs.created()[0]
	e := envOf(w, first)
	first.exit(errors.New("exit status 0"), false)
	// Once the worker saw the exit (an invocation racing with it gets
	// redelivered, or Runtime.ExitError when the event was written first).
	eventually(t, "the exit noticed", func() bool { return e.exited.Err() != nil })
	if res := invoke(t, w, fn, "y"); res.FunctionError || string(res.Payload) != "y" {
		t.Fatalf("after the idle runtime exited: %+v", res)
	}
	if n := len(sbs.created()); n != 2 {
		t.Fatalf("%d sandboxes, want a fresh one", n)
	}
	eventually(t, "the exited environment destroyed", first.isDestroyed)
}

// TestCloseDuringStart: Close waits for a sandbox being created, which
// then never serves: the invocation that started it is refused and no
// sandbox is left when Close returns.
func TestCloseDuringStart(t *testing.T) {
	w, sbs := newTestWorker(t, Config{}, gated)
	done := goInvoke(w, testFunction("late", nil), "x")
	<-sbs.entered
	closed := make(chan struct{})
	go func() {
		w.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a sandbox was being created")
	case <-time.After(200 * time.Millisecond):
	}
	close(sbs.gate)
	within(t, closed, "Close to return")
	if n := sbs.live(); n != 0 {
		t.Errorf("%d sandboxes alive when Close returned", n)
	}
	if err := within(t, done, "the invocation to end"); lambdaerr.As(err) == nil {
		t.Errorf("the invocation that was starting: %v, want refused (shutting down)", err)
	}
}

// envOf is the environment of sandbox sb.
func envOf(w *Worker, sb Sandbox) *env {
	w.envs.mu.Lock()
	defer w.envs.mu.Unlock()
	for e := range w.envs.all {
		if e.sb == sb {
			return e
		}
	}
	return nil
}

// goInvoke runs an invocation of payload in the background; its error
// comes on the channel.
func goInvoke(w *Worker, fn registry.Function, payload string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := w.Invoke(context.Background(), fn, Request{RequestID: "req-" + payload, Payload: []byte(payload)})
		done <- err
	}()
	return done
}

// within waits for ch to deliver (or close), failing t after 10 s.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out after 10s waiting for %s", what)
		var zero T
		return zero
	}
}
