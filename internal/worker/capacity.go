package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// Reservations tells the worker each function's reserved concurrency (the
// registry, from memory).
type Reservations interface {
	// Reserved is a function's reserved concurrency, if it has one.
	Reserved(name string) (int, bool)
	// ReservedTotal is the sum of every function's reservation.
	ReservedTotal() int
}

// admission counts running invocations against the account's limit and
// the functions' reservations. A function with a reservation of N runs at
// most N at once; the others share what the reservations leave. Guarded
// by Worker.admitMu.
type admission struct {
	perFunction map[string]int // running invocations by function
	unreserved  int            // running invocations of functions without a reservation
	total       int
}

// admit takes a concurrency slot for an invocation of name, or returns
// TooManyRequestsException with Lambda's Reason.
func (w *Worker) admit(name string) error {
	reserved, hasReservation := 0, false
	reservedTotal := 0
	if w.cfg.Reservations != nil {
		reserved, hasReservation = w.cfg.Reservations.Reserved(name)
		reservedTotal = w.cfg.Reservations.ReservedTotal()
	}
	w.admitMu.Lock()
	defer w.admitMu.Unlock()
	a := &w.admission
	switch {
	case hasReservation && a.perFunction[name] >= reserved:
		return throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
	case !hasReservation && a.unreserved >= w.cfg.ConcurrencyLimit-reservedTotal,
		a.total >= w.cfg.ConcurrencyLimit:
		return throttled("ConcurrentInvocationLimitExceeded")
	}
	a.perFunction[name]++
	a.total++
	if !hasReservation {
		a.unreserved++
	}
	w.inflight.Add(1)
	return nil
}

// leave gives back the slot admit took. Whether it counted as unreserved
// is decided again: a reservation put or deleted meanwhile moves at most
// one count between the pools, and both pools stay non-negative.
func (w *Worker) leave(name string) {
	_, hasReservation := false, false
	if w.cfg.Reservations != nil {
		_, hasReservation = w.cfg.Reservations.Reserved(name)
	}
	w.admitMu.Lock()
	defer w.admitMu.Unlock()
	a := &w.admission
	if a.perFunction[name]--; a.perFunction[name] <= 0 {
		delete(a.perFunction, name)
	}
	a.total--
	if !hasReservation && a.unreserved > 0 {
		a.unreserved--
	}
	w.inflight.Add(-1)
}

func throttled(reason string) error {
	return &lambdaerr.Error{Code: lambdaerr.TooManyRequests, Message: "Rate Exceeded.", Reason: reason, RetryAfter: 1}
}

// memoryCap is how many MB of environments may exist at once: the budget
// times the overcommit factor.
func (w *Worker) memoryCap() int {
	return int(float64(w.cfg.MemoryBudgetMB) * w.cfg.MemoryOvercommit)
}

// reserveMemory accounts mb for a new environment. When it does not fit,
// idle environments are evicted least recently used first (provisioned
// ones never); when nothing can be evicted it waits up to CapacityWait for
// memory to be released, then refuses with TooManyRequestsException.
// wait=false refuses at once (provisioning never queues).
func (w *Worker) reserveMemory(ctx context.Context, mb int, wait bool) error {
	if w.cfg.MemoryBudgetMB <= 0 {
		return nil
	}
	var deadline <-chan time.Time
	for {
		w.mu.Lock()
		if w.memUsed+mb <= w.memoryCap() {
			w.memUsed += mb
			w.mu.Unlock()
			return nil
		}
		victim := w.lruIdleLocked()
		waiting := victim == nil && wait && w.cfg.CapacityWait > 0
		if waiting {
			w.memWaiters++ // release wakes it: an idle environment can be evicted
		}
		freed := w.memFreed
		w.mu.Unlock()
		if victim != nil {
			w.destroy(victim) // releases its memory before returning
			continue
		}
		if !waiting {
			return w.capacityError(mb)
		}
		if deadline == nil {
			t := time.NewTimer(w.cfg.CapacityWait)
			defer t.Stop()
			deadline = t.C
		}
		var err error
		select {
		case <-freed:
		case <-deadline:
			err = w.capacityError(mb)
		case <-ctx.Done():
			err = ctx.Err()
		}
		w.mu.Lock()
		w.memWaiters--
		w.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

func (w *Worker) capacityError(mb int) error {
	w.mu.Lock()
	used := w.memUsed
	w.mu.Unlock()
	return &lambdaerr.Error{Code: lambdaerr.TooManyRequests, Reason: "ConcurrentInvocationLimitExceeded", RetryAfter: 1,
		Message: fmt.Sprintf("Rate Exceeded. This node has no memory for another %d MB environment: %d of %d MB (budget %d MB × overcommit %g) are in use by busy environments.",
			mb, used, w.memoryCap(), w.cfg.MemoryBudgetMB, w.cfg.MemoryOvercommit)}
}

// releaseMemory gives back an environment's memory and wakes waiters.
// Worker.mu must be held.
func (w *Worker) releaseMemoryLocked(mb int) {
	if w.cfg.MemoryBudgetMB <= 0 || mb == 0 {
		return
	}
	w.memUsed -= mb
	w.wakeMemoryWaitersLocked()
}

// wakeMemoryWaitersLocked wakes the invocations waiting in reserveMemory:
// memory was released, or an environment became idle (evictable).
// Worker.mu must be held.
func (w *Worker) wakeMemoryWaitersLocked() {
	close(w.memFreed)
	w.memFreed = make(chan struct{})
}

// lruIdleLocked takes the least recently used idle environment that is
// not provisioned out of its pool, or returns nil. Worker.mu must be held.
func (w *Worker) lruIdleLocked() *env {
	var (
		best    *env
		bestIdx int
		bestP   *pool
	)
	for _, p := range w.pools {
		for i, e := range p.idle {
			if e.provisioned {
				continue
			}
			if best == nil || e.lastUsed.Before(best.lastUsed) {
				best, bestIdx, bestP = e, i, p
			}
		}
	}
	if best == nil {
		return nil
	}
	bestP.idle = append(bestP.idle[:bestIdx], bestP.idle[bestIdx+1:]...)
	best.idle = false
	return best
}
