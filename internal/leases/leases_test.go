package leases

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/testkit/natstest"
)

// startBus runs a real embedded JetStream for the tables of a test: the
// "nodes" below share its bucket as nodes of a cluster share theirs.
func startBus(t *testing.T) *natsbus.Bus { return natstest.Start(t) }

func openTable(t *testing.T, bus *natsbus.Bus, node string, opts Options) *Table {
	t.Helper()
	opts.Node = node
	tb, err := Open(context.Background(), bus.JS, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-tb.stop:
		default:
			tb.Close(context.Background())
		}
	})
	return tb
}

// The limit holds across nodes: what one node leases, the other cannot
// take until it is given back.
func TestLimitAcrossNodes(t *testing.T) {
	bus := startBus(t)
	ctx := context.Background()
	a := openTable(t, bus, "a", Options{Linger: 50 * time.Millisecond})
	b := openTable(t, bus, "b", Options{Linger: 50 * time.Millisecond})
	for i := range 3 {
		if err := a.Acquire(ctx, "fn.f", 5); err != nil {
			t.Fatalf("a's slot %d: %v", i, err)
		}
	}
	for i := range 2 {
		if err := b.Acquire(ctx, "fn.f", 5); err != nil {
			t.Fatalf("b's slot %d: %v", i, err)
		}
	}
	if err := a.Acquire(ctx, "fn.f", 5); !errors.Is(err, ErrFull) {
		t.Fatalf("a sixth slot of 5 on a: %v, want ErrFull", err)
	}
	if err := b.Acquire(ctx, "fn.f", 5); !errors.Is(err, ErrFull) {
		t.Fatalf("a sixth slot of 5 on b: %v, want ErrFull", err)
	}
	// Another key is another limit.
	if err := b.Acquire(ctx, "fn.g", 1); err != nil {
		t.Fatalf("another function's slot: %v", err)
	}
	// A slot a gives back is b's once a's lease of it lapses (Linger).
	a.Release("fn.f")
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := b.Acquire(ctx, "fn.f", 5)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrFull) || time.Now().After(deadline) {
			t.Fatalf("b after a gave a slot back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if leased, used := a.Held("fn.f"); leased != 2 || used != 2 {
		t.Fatalf("a holds %d slots, uses %d; want 2 and 2", leased, used)
	}
}

// A node that dies without giving its leases back holds them only until
// they expire; then the others get the slots.
func TestDeadNodesLeasesExpire(t *testing.T) {
	bus := startBus(t)
	ctx := context.Background()
	const ttl = 600 * time.Millisecond
	a := openTable(t, bus, "a", Options{TTL: ttl})
	b := openTable(t, bus, "b", Options{TTL: ttl})
	if err := a.Acquire(ctx, "unreserved", 1); err != nil {
		t.Fatal(err)
	}
	// a "dies": its loop stops renewing, nothing is given back.
	close(a.stop)
	<-a.done
	if err := b.Acquire(ctx, "unreserved", 1); !errors.Is(err, ErrFull) {
		t.Fatalf("b while a's lease counts: %v, want ErrFull", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Acquire(ctx, "unreserved", 1) != nil {
		if time.Now().After(deadline) {
			t.Fatal("a dead node's lease never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And a, whose lease lapsed, may not use its slot any more: the limit
	// is b's now.
	a.Release("unreserved")
	a.mu.Lock()
	ok := a.takeLocked(a.slots["unreserved"])
	a.mu.Unlock()
	if ok {
		t.Fatal("a node used a slot of a lapsed lease")
	}
}

// Leases in use are renewed: a node that keeps running an invocation for
// longer than the TTL keeps its slot.
func TestLeasesInUseAreRenewed(t *testing.T) {
	bus := startBus(t)
	ctx := context.Background()
	const ttl = 400 * time.Millisecond
	a := openTable(t, bus, "a", Options{TTL: ttl})
	b := openTable(t, bus, "b", Options{TTL: ttl})
	if err := a.Acquire(ctx, "fn.long", 1); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(4 * ttl)
	for time.Now().Before(end) {
		if err := b.Acquire(ctx, "fn.long", 1); !errors.Is(err, ErrFull) {
			t.Fatalf("b took the slot a is using: %v", err)
		}
		time.Sleep(ttl / 4)
	}
}

// Many invocations on three nodes at once never run more than the limit
// cluster-wide: counted at the moment each holds its slot.
func TestLimitUnderContention(t *testing.T) {
	bus := startBus(t)
	ctx := context.Background()
	const limit = 7
	var tables []*Table
	for _, n := range []string{"a", "b", "c"} {
		tables = append(tables, openTable(t, bus, n, Options{Linger: 30 * time.Millisecond, Block: 3}))
	}
	var running, peak, admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for g := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tb := tables[g%len(tables)]
			for range 40 {
				err := tb.Acquire(ctx, "unreserved", limit)
				if errors.Is(err, ErrFull) {
					refused.Add(1)
					time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				admitted.Add(1)
				n := running.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				running.Add(-1)
				tb.Release("unreserved")
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Fatalf("%d ran at once across the nodes; the limit is %d", p, limit)
	}
	if admitted.Load() == 0 {
		t.Fatal("nothing was admitted")
	}
	t.Logf("admitted %d, refused %d, peak %d of %d", admitted.Load(), refused.Load(), peak.Load(), limit)
}

// Close gives the leases back at once.
func TestCloseGivesLeasesBack(t *testing.T) {
	bus := startBus(t)
	ctx := context.Background()
	a := openTable(t, bus, "a", Options{Linger: time.Hour})
	b := openTable(t, bus, "b", Options{Linger: time.Hour})
	if err := a.Acquire(ctx, "fn.f", 2); err != nil {
		t.Fatal(err)
	}
	a.Release("fn.f")
	if err := a.Acquire(ctx, "fn.f", 2); err != nil { // the held slot again, no write
		t.Fatal(err)
	}
	a.Release("fn.f")
	a.Close(ctx)
	for range 2 {
		if err := b.Acquire(ctx, "fn.f", 2); err != nil {
			t.Fatalf("b after a closed: %v", err)
		}
	}
}
