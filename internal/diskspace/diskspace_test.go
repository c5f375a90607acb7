package diskspace

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	free, err := FreeBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	g := New(dir, 16<<20)
	if free > 64<<20 {
		if err := g.Check(1 << 20); err != nil {
			t.Errorf("a 1 MB write with %s free: %v", MB(free), err)
		}
		if g.WasLow() {
			t.Errorf("WasLow after a check that passed")
		}
	}
	err = g.Check(free) // would leave nothing
	if !IsLow(err) || !g.WasLow() {
		t.Fatalf("a write of all the free space: %v, want a LowSpaceError", err)
	}
	if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "16 MB stay reserved") {
		t.Errorf("message %q lacks the directory or the reserve", msg)
	}
	if err := New(dir, free+1<<30).Check(0); !IsLow(err) || !strings.Contains(err.Error(), "below the") {
		t.Errorf("below the reserve: %v", err)
	}
}

func TestPlanStart(t *testing.T) {
	dir := t.TempDir()
	free, err := FreeBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A reserve that leaves exactly the minimum: the smallest log stream.
	p, err := PlanStart(dir, 0, free-MinStartBytes)
	if err != nil || p.LogBytes != MinLogBytes {
		t.Errorf("at the minimum: %+v, %v; want LogBytes %d", p, err, MinLogBytes)
	}
	// What the store already holds counts as Owl's.
	if p, err := PlanStart(dir, 8<<30, free); err != nil || p.LogBytes != MaxLogBytes {
		t.Errorf("a full disk holding 8 GB of store: %+v, %v; want LogBytes %d", p, err, MaxLogBytes)
	}
	_, err = PlanStart(dir, 0, free-MinStartBytes+1<<20)
	if err == nil || !strings.Contains(err.Error(), "Owl needs at least") || strings.Contains(err.Error(), "\n") {
		t.Errorf("below the minimum: %v, want one line saying what is needed", err)
	}
}
