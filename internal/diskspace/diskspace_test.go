package diskspace

import (
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// freeDir is a temporary directory of t's and the bytes free there.
func freeDir(t *testing.T) (string, int64) {
	t.Helper()
	dir := t.TempDir()
	free, err := FreeBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, free
}

func TestCheck(t *testing.T) {
	dir, free := freeDir(t)
	g := New(dir, 16<<20)
	if free > 64<<20 {
		if err := g.Check(1 << 20); err != nil {
			t.Errorf("a 1 MB write with %s free: %v", MB(free), err)
		}
		if g.WasLow() {
			t.Errorf("WasLow after a check that passed")
		}
	}
	err := g.Check(free) // would leave nothing
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
	dir, free := freeDir(t)
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

func TestClaims(t *testing.T) {
	dir, free := freeDir(t)
	if free < 256<<20 {
		t.Skipf("%s free: too little to test claims", MB(free))
	}
	// Room for 64 MB above the reserve (give or take what others write
	// meanwhile).
	g := New(dir, free-64<<20)
	if err := g.Claim(40 << 20); err != nil {
		t.Fatalf("claiming 40 of 64 MB: %v", err)
	}
	if err := g.Claim(40 << 20); !IsLow(err) {
		t.Errorf("a second claim of 40 MB: %v, want a LowSpaceError", err)
	}
	if err := g.Check(40 << 20); !IsLow(err) {
		t.Errorf("a 40 MB write beside a 40 MB claim: %v, want a LowSpaceError", err)
	}
	g.Release(40 << 20)
	if err := g.Check(40 << 20); err != nil {
		t.Errorf("a 40 MB write once the claim is released: %v", err)
	}

	// A Writer claims ahead of its writes and gives back the rest.
	f, err := os.CreateTemp(dir, "w-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := g.NewWriter(f)
	if err := w.Claim(30 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if c := g.claimed.Load(); c != 29<<20 {
		t.Errorf("claimed after writing 1 of 30 MB: %d, want 29 MB", c)
	}
	if _, err := w.Write(make([]byte, 80<<20)); !IsLow(err) {
		t.Errorf("writing 80 MB: %v, want a LowSpaceError", err)
	}
	if st, _ := f.Stat(); st.Size() != 1<<20 {
		t.Errorf("a refused write wrote: the file has %d bytes", st.Size())
	}
	w.Close()
	if c := g.claimed.Load(); c != 0 {
		t.Errorf("claimed after Close: %d", c)
	}
}

// TestPromised: space promised elsewhere (the sandboxes' /tmp disks)
// counts as used by checks and claims, as it changes.
func TestPromised(t *testing.T) {
	dir, free := freeDir(t)
	if free < 64<<20 {
		t.Skipf("%s free: too little to test with", MB(free))
	}
	g := New(dir, 16<<20)
	var promised atomic.Int64
	g.SetPromised(promised.Load)
	if err := g.Check(1 << 20); err != nil {
		t.Fatalf("nothing promised: %v", err)
	}
	promised.Store(free) // every byte, the reserve too
	if err := g.Check(1 << 20); !IsLow(err) {
		t.Errorf("a 1 MB write with all the space promised: %v, want a LowSpaceError", err)
	}
	if err := g.Claim(1 << 20); !IsLow(err) {
		t.Errorf("a 1 MB claim with all the space promised: %v, want a LowSpaceError", err)
	}
	promised.Store(0) // written, or the sandbox gone
	if err := g.Claim(1 << 20); err != nil {
		t.Errorf("a 1 MB claim once nothing is promised: %v", err)
	}
	g.Release(1 << 20)
}

// TestAllowance: writes announced to an Allowance are checked against
// the reserve a MiB of claims at a time, for allowanceAge at most; near
// the reserve each write is checked alone, a refused one claims nothing,
// and space freed is usable at once.
func TestAllowance(t *testing.T) {
	if a := (*Guard)(nil).NewAllowance(); a.Spend(1<<30) != nil {
		t.Errorf("no guard refused a write")
	}
	dir, _ := freeDir(t)
	const reserve = 16 << 20
	g := New(dir, reserve)
	// The free space the guard sees is vfree, whatever others write on
	// the real filesystem meanwhile: the promised space is the rest.
	var vfree atomic.Int64
	vfree.Store(reserve + 64<<20)
	g.SetPromised(func() int64 {
		free, err := FreeBytes(dir)
		if err != nil {
			t.Error(err)
		}
		return free - vfree.Load()
	})
	a := g.NewAllowance()
	spend := func(n int64) error {
		err := a.Spend(n)
		if err == nil {
			vfree.Add(-n) // the write is made
		}
		return err
	}
	if err := spend(1 << 10); err != nil {
		t.Fatalf("a 1 KB write with 64 MB above the reserve: %v", err)
	}
	if c := g.claimed.Load(); c != claimStep-1<<10 {
		t.Errorf("claimed after a 1 KB write: %d, want a MiB less the write", c)
	}
	// Others leave 64 KB above the reserve and the allowance's claim:
	// the claim already made still covers its writes.
	vfree.Store(reserve + 64<<10 + g.claimed.Load())
	if err := spend(512 << 10); err != nil {
		t.Errorf("a write within the claim: %v", err)
	}
	// Past the claim, a MiB no longer fits, 32 KB more does, 1 MB not.
	if err := spend(512<<10 - 1<<10 + 32<<10); err != nil {
		t.Errorf("a write that needs 32 KB more with 64 KB above the reserve: %v", err)
	}
	if err := spend(1 << 20); !IsLow(err) {
		t.Errorf("a 1 MB write with 32 KB above the reserve: %v, want a LowSpaceError", err)
	}
	if c := g.claimed.Load(); c != 0 {
		t.Errorf("claimed after a refusal with the claim spent: %d, want 0", c)
	}
	vfree.Store(reserve + 64<<20) // space freed
	if err := spend(1 << 10); err != nil {
		t.Errorf("a 1 KB write once space was freed: %v", err)
	}
	// Others fill the disk below the reserve: the claim made before it
	// stands for allowanceAge, no longer.
	vfree.Store(reserve / 2)
	time.Sleep(2 * allowanceAge)
	if err := spend(1 << 10); !IsLow(err) {
		t.Errorf("a 1 KB write %v after the disk went below the reserve: %v, want a LowSpaceError", 2*allowanceAge, err)
	}
	if c := g.claimed.Load(); c != 0 {
		t.Errorf("claimed after a refusal: %d, want 0", c)
	}
}
