package lambdaapi

import (
	"testing"
	"time"
)

func TestBodyBudget(t *testing.T) {
	b := newBodyBudget(1 << 30)
	if b.pendingMax != 64<<20 {
		t.Fatalf("pending share of 1 GiB = %d, want 64 MiB", b.pendingMax)
	}
	if !b.take(60<<20, true) {
		t.Fatal("60 MiB pending refused")
	}
	if b.take(8<<20, true) {
		t.Error("pending past 64 MiB accepted")
	}
	if !b.take(900<<20, false) {
		t.Error("authenticated bodies refused while the pending share is full")
	}
	if b.take(100<<20, false) {
		t.Error("past the whole budget accepted")
	}
	b.authenticatedNow(60 << 20) // the pending sender proved itself
	if !b.take(8<<20, true) {
		t.Error("pending share not freed by authentication")
	}
	b.give(60<<20, false)
	b.give(900<<20, false)
	b.give(8<<20, true)
	if b.used.Load() != 0 || b.pending.Load() != 0 {
		t.Errorf("after giving everything back: used %d, pending %d", b.used.Load(), b.pending.Load())
	}
	if small := newBodyBudget(96 << 20); small.pendingMax != 6<<20 {
		t.Errorf("pending share of 96 MiB = %d, want a sixteenth", small.pendingMax)
	}
}

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Unix(1000, 0)
	if _, ok := l.allow(t0); !ok {
		t.Fatal("first line suppressed")
	}
	for i := range 5 {
		if _, ok := l.allow(t0.Add(time.Duration(i) * 100 * time.Millisecond)); ok {
			t.Fatalf("line %d within the second let through", i)
		}
	}
	if n, ok := l.allow(t0.Add(1500 * time.Millisecond)); !ok || n != 5 {
		t.Errorf("after a second: ok %v, suppressed %d; want true, 5", ok, n)
	}
}
