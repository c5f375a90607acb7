package worker

import (
	"testing"

	"github.com/owl-project/owl/internal/lambdaerr"
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

	if r := reason(t, w.admit("zero")); r != "ReservedFunctionConcurrentInvocationLimitExceeded" {
		t.Errorf("reserved 0: reason %q", r)
	}
	for i := 0; i < 2; i++ {
		if err := w.admit("reserved"); err != nil {
			t.Fatalf("reserved invocation %d: %v", i, err)
		}
	}
	if r := reason(t, w.admit("reserved")); r != "ReservedFunctionConcurrentInvocationLimitExceeded" {
		t.Errorf("third reserved: reason %q", r)
	}
	// 5 - 2 reserved = 3 for everyone else, whatever the reserved function does.
	for i, fn := range []string{"a", "b", "a"} {
		if err := w.admit(fn); err != nil {
			t.Fatalf("unreserved invocation %d: %v", i, err)
		}
	}
	if r := reason(t, w.admit("c")); r != "ConcurrentInvocationLimitExceeded" {
		t.Errorf("fourth unreserved: reason %q", r)
	}
	w.leave("reserved")
	if r := reason(t, w.admit("c")); r != "ConcurrentInvocationLimitExceeded" {
		t.Errorf("a free reserved slot went to an unreserved function: reason %q", r)
	}
	if err := w.admit("reserved"); err != nil {
		t.Errorf("the reserved function's own slot: %v", err)
	}
	w.leave("a")
	if err := w.admit("c"); err != nil {
		t.Errorf("after an unreserved invocation ended: %v", err)
	}
	for _, fn := range []string{"reserved", "reserved", "a", "b", "c"} {
		w.leave(fn)
	}
	if a := &w.admission; a.total != 0 || a.unreserved != 0 || len(a.perFunction) != 0 || w.inflight.Load() != 0 {
		t.Errorf("counts after everything left: total %d, unreserved %d, per function %v, inflight %d", a.total, a.unreserved, a.perFunction, w.inflight.Load())
	}
}
