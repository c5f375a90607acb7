package worker

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Starts are paced: a burst of cold invocations does not create all its
// sandboxes and start all their runtimes at once, which on a small host
// makes every start slow and the late ones time out in init together
// (1000 at once on 2 vCPUs: 2–13 % "Init timed out after 10.00 seconds").
// At most startPacer.n starts run at once; the others wait in the order
// they came (a Go channel's blocked senders are served first in, first
// out). A start holds its slot while its sandbox is created, then while
// its runtime initialises for at most startLease: a function whose own
// init is slow delays the others by no more than that.

// DefaultStartsPerCPU is how many environments start at once per CPU when
// Config.StartsInParallel is zero: the rate at which sandbox creation
// peaks on a 2-vCPU host (internal/sandbox's BenchmarkCreateDestroy: 4
// per CPU at once sustain ~1.5× the rate of one at a time).
const DefaultStartsPerCPU = 4

// startLease is how long a start holds its slot once its sandbox exists.
const startLease = 250 * time.Millisecond

// startPacer bounds the starts in progress.
type startPacer struct {
	slots   chan struct{}
	waiting atomic.Int64 // starts queued for a slot (tests, metrics)
}

func newStartPacer(n int) *startPacer {
	if n <= 0 {
		n = DefaultStartsPerCPU * runtime.NumCPU()
	}
	return &startPacer{slots: make(chan struct{}, n)}
}

// startSlot is a held slot; free gives it back (once).
type startSlot struct {
	once  sync.Once
	p     *startPacer
	lease *time.Timer // set and stopped by the start's goroutine only
}

// created starts the lease of a slot whose sandbox now exists.
func (s *startSlot) created() {
	s.lease = time.AfterFunc(startLease, s.give)
}

// free gives the slot back, if the lease has not yet.
func (s *startSlot) free() {
	if s.lease != nil {
		s.lease.Stop()
	}
	s.give()
}

func (s *startSlot) give() { s.once.Do(func() { <-s.p.slots }) }

// acquire waits up to wait for a slot, in arrival order; past it the
// start is refused with 429 TooManyRequestsException, Reason
// FunctionInvocationRateLimitExceeded (Lambda's when a function scales
// faster than it allows): Owl never starts more than the host sustains.
func (p *startPacer) acquire(ctx context.Context, wait time.Duration) (*startSlot, error) {
	select {
	case p.slots <- struct{}{}:
		return &startSlot{p: p}, nil
	default:
	}
	p.waiting.Add(1)
	defer p.waiting.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return &startSlot{p: p}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, throttled("FunctionInvocationRateLimitExceeded")
	}
}
