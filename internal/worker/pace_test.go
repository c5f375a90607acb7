package worker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// slowFunction is a function that may wait for its start as long as a
// test needs.
func slowFunction(name string, env map[string]string) registry.Function {
	fn := testFunction(name, env)
	fn.Timeout = 60
	return fn
}

// TestStartsPaced: past StartsInParallel, starts queue and run in the
// order they came, and every invocation of the burst succeeds.
func TestStartsPaced(t *testing.T) {
	w, sbs := newTestWorker(t, Config{StartsInParallel: 1}, gated)
	var done []<-chan error
	done = append(done, goInvoke(w, slowFunction("f0", nil), "x"))
	<-sbs.entered // f0 creates its sandbox, held at the gate
	for i := 1; i <= 3; i++ {
		done = append(done, goInvoke(w, slowFunction(fmt.Sprintf("f%d", i), nil), "x"))
		eventually(t, fmt.Sprintf("f%d to queue", i), func() bool { return w.pace.waiting.Load() == int64(i) })
	}
	select {
	case <-sbs.entered:
		t.Fatal("a second sandbox was created while one start held the only slot")
	default:
	}
	close(sbs.gate)
	go func() {
		for range sbs.entered { // the later Creates pass the open gate
		}
	}()
	for i, ch := range done {
		if err := within(t, ch, fmt.Sprintf("f%d's invocation", i)); err != nil {
			t.Errorf("f%d: %v", i, err)
		}
	}
	var order []string
	for _, sb := range sbs.created() {
		name, _, _ := strings.Cut(sb.spec.ID, "-")
		order = append(order, name)
	}
	if got := strings.Join(order, " "); got != "f0 f1 f2 f3" {
		t.Errorf("sandboxes created in the order %s, want f0 f1 f2 f3 (the order the invocations came)", got)
	}
	close(sbs.entered)
}

// TestStartWaitBounded: an invocation that would wait for its start longer
// than its timeout (or CapacityWait, if longer) is refused with 429 and
// Lambda's reason, not left to time out in init.
func TestStartWaitBounded(t *testing.T) {
	w, sbs := newTestWorker(t, Config{StartsInParallel: 1}, gated)
	first := goInvoke(w, slowFunction("first", nil), "x")
	<-sbs.entered
	_, err := w.Invoke(t.Context(), testFunction("second", nil), Request{RequestID: "r", Payload: []byte("x")}) // Timeout 1 s
	if e := lambdaerr.As(err); e == nil || e.Code != lambdaerr.TooManyRequests || e.Reason != "FunctionInvocationRateLimitExceeded" {
		t.Fatalf("an invocation queued past its timeout: %v, want 429 FunctionInvocationRateLimitExceeded", err)
	}
	close(sbs.gate)
	if err := within(t, first, "the first invocation"); err != nil {
		t.Errorf("the invocation that held the slot: %v", err)
	}
	if n := len(sbs.created()); n != 1 {
		t.Errorf("%d sandboxes created, want the first's only", n)
	}
}

// TestSlowInitFreesItsSlot: a start whose runtime never gets ready holds
// its slot only for the lease; the next function starts meanwhile.
func TestSlowInitFreesItsSlot(t *testing.T) {
	w, _ := newTestWorker(t, Config{StartsInParallel: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hung := make(chan error, 1)
	go func() {
		_, err := w.Invoke(ctx, slowFunction("hangs", map[string]string{"FAKE_INIT": "hang"}), Request{RequestID: "h", Payload: []byte("x")})
		hung <- err
	}()
	eventually(t, "the hanging start to take the slot", func() bool { return len(w.pace.slots) == 1 })
	if res := invoke(t, w, slowFunction("quick", nil), "hello"); res.FunctionError || string(res.Payload) != "hello" {
		t.Errorf("the function started after a hanging one: %+v", res)
	}
	cancel()
	within(t, hung, "the hanging invocation to end")
}

// TestCPUQuotaAfterInit: the init runs without the CPU quota, which the
// worker applies once the runtime asked for its first event; a sandbox
// whose init never gets there is never limited.
func TestCPUQuotaAfterInit(t *testing.T) {
	w, sbs := newTestWorker(t, Config{})
	invoke(t, w, testFunction("quota", nil), "x")
	if _, err := w.Invoke(t.Context(), testFunction("fails", map[string]string{"FAKE_INIT": "error"}),
		Request{RequestID: "r", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for _, sb := range sbs.created() {
		var limited, early bool
		sb.locked(func() { limited, early = sb.cpuLimited, sb.limitedEarly })
		ready := !strings.HasPrefix(sb.spec.ID, "fails")
		if limited != ready || early {
			t.Errorf("sandbox %s: CPU limited %v (before its first /next: %v); want it limited once ready only", sb.spec.ID, limited, early)
		}
	}
}

// claimSpace is a SpaceChecker that records what is claimed.
type claimSpace struct {
	mu     sync.Mutex
	claims []int64
}

func (c *claimSpace) Check(int64) error { return nil }
func (c *claimSpace) Claim(n int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.claims = append(c.claims, n)
	return nil
}
func (c *claimSpace) Release(int64) {}

// TestTmpClaimOvercommit: a new environment claims its /tmp's size from
// the disk guard, divided by TmpOvercommit.
func TestTmpClaimOvercommit(t *testing.T) {
	for _, tt := range []struct {
		overcommit float64
		want       int64
	}{{0, 512 << 20}, {1, 512 << 20}, {16, 32 << 20}} {
		space := &claimSpace{}
		w, _ := newTestWorker(t, Config{Space: space, TmpOvercommit: tt.overcommit})
		invoke(t, w, testFunction("tmp", nil), "x")
		space.mu.Lock()
		claims := slices.Clone(space.claims)
		space.mu.Unlock()
		if len(claims) != 1 || claims[0] != tt.want {
			t.Errorf("overcommit %v: claims %v, want one of %d", tt.overcommit, claims, tt.want)
		}
	}
}
