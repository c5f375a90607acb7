package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/leases"
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
// most N at once; the others share what the reservations leave.
type admission struct {
	mu          sync.Mutex     // guards the fields below
	perFunction map[string]int // running invocations by function
	unreserved  int            // running invocations of functions without a reservation
	total       int
}

// Leases keeps concurrency limits cluster-wide (internal/leases.Table).
type Leases interface {
	// Acquire takes one slot of key's limit across the cluster, or
	// returns leases.ErrFull.
	Acquire(ctx context.Context, key string, limit int) error
	// Release gives back a slot Acquire took.
	Release(key string)
}

// admit takes a concurrency slot for an invocation of name, or returns
// TooManyRequestsException with Lambda's Reason. In a cluster it also
// takes the slot of the cluster-wide limit (Config.Leases) and returns its
// key, which leave gives back.
func (w *Worker) admit(ctx context.Context, name string) (leaseKey string, err error) {
	reserved, hasReservation := 0, false
	reservedTotal := 0
	if w.cfg.Reservations != nil {
		reserved, hasReservation = w.cfg.Reservations.Reserved(name)
		reservedTotal = w.cfg.Reservations.ReservedTotal()
	}
	a := &w.admission
	a.mu.Lock()
	switch {
	case hasReservation && a.perFunction[name] >= reserved:
		a.mu.Unlock()
		return "", throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
	case !hasReservation && a.unreserved >= w.cfg.ConcurrencyLimit-reservedTotal,
		a.total >= w.cfg.ConcurrencyLimit:
		a.mu.Unlock()
		return "", throttled("ConcurrentInvocationLimitExceeded")
	}
	a.perFunction[name]++
	a.total++
	if !hasReservation {
		a.unreserved++
	}
	a.mu.Unlock()
	w.inflight.Add(1)
	if w.cfg.Leases == nil {
		return "", nil
	}
	key, limit, reason := "unreserved", w.cfg.ConcurrencyLimit-reservedTotal, "ConcurrentInvocationLimitExceeded"
	if hasReservation {
		key, limit, reason = "fn."+name, reserved, "ReservedFunctionConcurrentInvocationLimitExceeded"
	}
	if err := w.cfg.Leases.Acquire(ctx, key, limit); err != nil {
		w.leave(name, "")
		if errors.Is(err, leases.ErrFull) {
			return "", throttled(reason)
		}
		return "", &lambdaerr.Error{Code: lambdaerr.ServiceUnavailable, RetryAfter: 1,
			Message: "The cluster's concurrency limits cannot be reached: " + err.Error()}
	}
	return key, nil
}

// leave gives back the slot admit took. Whether it counted as unreserved
// is decided again: a reservation put or deleted meanwhile moves at most
// one count between the pools, and both pools stay non-negative.
func (w *Worker) leave(name, leaseKey string) {
	if leaseKey != "" {
		w.cfg.Leases.Release(leaseKey)
	}
	_, hasReservation := false, false
	if w.cfg.Reservations != nil {
		_, hasReservation = w.cfg.Reservations.Reserved(name)
	}
	a := &w.admission
	a.mu.Lock()
	defer a.mu.Unlock()
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

// memoryBudget accounts the MemorySize of every environment (starting ones
// included) against the node's budget × overcommit. A zero budget does not
// limit (and accounts nothing).
type memoryBudget struct {
	// Fixed at creation (no lock).
	budgetMB   int
	overcommit float64
	capMB      int           // budgetMB × overcommit
	wait       time.Duration // CapacityWait

	mu      sync.Mutex // guards used, waiters and freed
	used    int
	waiters int           // reservations waiting (or about to) for memory
	freed   chan struct{} // closed and replaced to wake the waiters
}

func newMemoryBudget(budgetMB int, overcommit float64, wait time.Duration) *memoryBudget {
	return &memoryBudget{budgetMB: budgetMB, overcommit: overcommit, capMB: int(float64(budgetMB) * overcommit),
		wait: wait, freed: make(chan struct{})}
}

func (m *memoryBudget) limited() bool { return m.budgetMB > 0 }

// reserve accounts mb for a new environment. When it does not fit, evict
// is called to tear down an idle environment (least recently used first,
// provisioned ones never; see envPool.takeLRU) and reports whether it
// found one; when nothing can be evicted it waits up to CapacityWait for
// memory to be released or an environment to go idle, then refuses with
// TooManyRequestsException. wait=false refuses at once (provisioning
// never queues).
func (m *memoryBudget) reserve(ctx context.Context, mb int, wait bool, evict func() bool) error {
	if !m.limited() {
		return nil
	}
	var deadline <-chan time.Time
	for {
		m.mu.Lock()
		if m.used+mb <= m.capMB {
			m.used += mb
			m.mu.Unlock()
			return nil
		}
		// Counted as a waiter before looking for a victim: an environment
		// going idle after the look wakes it.
		m.waiters++
		freed := m.freed
		m.mu.Unlock()
		err := m.awaitRoom(ctx, mb, wait, evict, freed, &deadline)
		m.mu.Lock()
		m.waiters--
		m.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// awaitRoom evicts an idle environment or waits for a change, for
// reserve; nil means try again.
func (m *memoryBudget) awaitRoom(ctx context.Context, mb int, wait bool, evict func() bool, freed <-chan struct{}, deadline *<-chan time.Time) error {
	if evict() {
		return nil // its memory is released
	}
	if !wait || m.wait <= 0 {
		return m.full(mb)
	}
	if *deadline == nil {
		*deadline = time.After(m.wait)
	}
	select {
	case <-freed:
		return nil
	case <-*deadline:
		return m.full(mb)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *memoryBudget) full(mb int) error {
	return &lambdaerr.Error{Code: lambdaerr.TooManyRequests, Reason: "ConcurrentInvocationLimitExceeded", RetryAfter: 1,
		Message: fmt.Sprintf("Rate Exceeded. This node has no memory for another %d MB environment: %d of %d MB (budget %d MB × overcommit %g) are in use by busy environments.",
			mb, m.inUse(), m.capMB, m.budgetMB, m.overcommit)}
}

// release gives back an environment's memory and wakes the waiters.
func (m *memoryBudget) release(mb int) {
	if !m.limited() || mb == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.used -= mb
	m.wakeLocked()
}

// evictable wakes the waiters: an environment went idle, and can be
// evicted for one of them.
func (m *memoryBudget) evictable() {
	if !m.limited() {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wakeLocked()
}

func (m *memoryBudget) wakeLocked() {
	if m.waiters > 0 {
		close(m.freed)
		m.freed = make(chan struct{})
	}
}

// inUse is the memory accounted, in MB.
func (m *memoryBudget) inUse() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}
