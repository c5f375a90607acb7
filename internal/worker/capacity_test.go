package worker

import (
	"context"
	"errors"
	"testing"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/leases"
)

type fakeReservations map[string]int

func (f fakeReservations) Reserved(name string) (int, bool) { n, ok := f[name]; return n, ok }
func (f fakeReservations) ReservedTotal() int {
	t := 0
	for _, n := range f {
		t += n
	}
	return t
}

// admit is Worker.admit on a single node (no leases).
func admit(w *Worker, name string) error {
	_, err := w.admit(context.Background(), name)
	return err
}

func reason(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	e := lambdaerr.As(err)
	if e == nil || e.Code != lambdaerr.TooManyRequests || e.RetryAfter <= 0 {
		t.Fatalf("not a throttle with Retry-After: %v", err)
	}
	return e.Reason
}

// Functions with a reservation are held to it; the others share what the
// reservations leave of the account limit.
func TestAdmission(t *testing.T) {
	res := fakeReservations{"reserved": 2, "zero": 0}
	w := &Worker{cfg: Config{ConcurrencyLimit: 5, Reservations: res}, admission: admission{perFunction: map[string]int{}}}

	if r := reason(t, admit(w, "zero")); r != "ReservedFunctionConcurrentInvocationLimitExceeded" {
		t.Errorf("reserved 0: reason %q", r)
	}
	for i := 0; i < 2; i++ {
		if err := admit(w, "reserved"); err != nil {
			t.Fatalf("reserved invocation %d: %v", i, err)
		}
	}
	if r := reason(t, admit(w, "reserved")); r != "ReservedFunctionConcurrentInvocationLimitExceeded" {
		t.Errorf("third reserved: reason %q", r)
	}
	// 5 - 2 reserved = 3 for everyone else, whatever the reserved function does.
	for i, fn := range []string{"a", "b", "a"} {
		if err := admit(w, fn); err != nil {
			t.Fatalf("unreserved invocation %d: %v", i, err)
		}
	}
	if r := reason(t, admit(w, "c")); r != "ConcurrentInvocationLimitExceeded" {
		t.Errorf("fourth unreserved: reason %q", r)
	}
	w.leave("reserved", "")
	if r := reason(t, admit(w, "c")); r != "ConcurrentInvocationLimitExceeded" {
		t.Errorf("a free reserved slot went to an unreserved function: reason %q", r)
	}
	if err := admit(w, "reserved"); err != nil {
		t.Errorf("the reserved function's own slot: %v", err)
	}
	w.leave("a", "")
	if err := admit(w, "c"); err != nil {
		t.Errorf("after an unreserved invocation ended: %v", err)
	}
	for _, fn := range []string{"reserved", "reserved", "a", "b", "c"} {
		w.leave(fn, "")
	}
	if a := &w.admission; a.total != 0 || a.unreserved != 0 || len(a.perFunction) != 0 || w.inflight.Load() != 0 {
		t.Errorf("counts after everything left: total %d, unreserved %d, per function %v, inflight %d", a.total, a.unreserved, a.perFunction, w.inflight.Load())
	}
}

// fakeLeases is the cluster's leases at the seam: a count per key held to
// the limit asked, or an outage.
type fakeLeases struct {
	held map[string]int
	down error
}

func (f *fakeLeases) Acquire(_ context.Context, key string, limit int) error {
	if f.down != nil {
		return f.down
	}
	if f.held[key] >= limit {
		return leases.ErrFull
	}
	f.held[key]++
	return nil
}

func (f *fakeLeases) Release(key string) { f.held[key]-- }

// In a cluster a slot is also leased cluster-wide, under the key of the
// limit it counts against; a full lease throttles with Lambda's reason and
// undoes the local count; an unreachable lease store is a 503, not a
// throttle.
func TestAdmissionLeases(t *testing.T) {
	fl := &fakeLeases{held: map[string]int{}}
	w := &Worker{cfg: Config{ConcurrencyLimit: 10, Reservations: fakeReservations{"r": 3}, Leases: fl},
		admission: admission{perFunction: map[string]int{}}}
	key, err := w.admit(context.Background(), "r")
	if err != nil || key != "fn.r" {
		t.Fatalf("reserved function: key %q, %v", key, err)
	}
	fl.held["fn.r"] = 3 // the other nodes hold the rest of r's reservation
	if r := reason(t, admit(w, "r")); r != "ReservedFunctionConcurrentInvocationLimitExceeded" {
		t.Errorf("r past its reservation across the cluster: reason %q", r)
	}
	fl.held["unreserved"] = 7 // 10 - 3 reserved, all taken elsewhere
	if r := reason(t, admit(w, "u")); r != "ConcurrentInvocationLimitExceeded" {
		t.Errorf("unreserved past the account limit across the cluster: reason %q", r)
	}
	if a := &w.admission; a.total != 1 || a.unreserved != 0 || w.inflight.Load() != 1 {
		t.Errorf("a refused lease left local counts: total %d, unreserved %d, inflight %d", a.total, a.unreserved, w.inflight.Load())
	}
	w.leave("r", key)
	if fl.held["fn.r"] != 2 {
		t.Errorf("leave did not give the lease back: %d held", fl.held["fn.r"])
	}
	fl.down = errors.New("no quorum")
	_, err = w.admit(context.Background(), "u")
	if e := lambdaerr.As(err); e == nil || e.Code != lambdaerr.ServiceUnavailable {
		t.Errorf("leases unreachable: %v, want ServiceUnavailableException", err)
	}
	if w.inflight.Load() != 0 {
		t.Errorf("inflight %d after everything left", w.inflight.Load())
	}
}
