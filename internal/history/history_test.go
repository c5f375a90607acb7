package history_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/history"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/testkit/natstest"
)

// open starts a recorder whose ticker never fires during the test (the
// test writes samples itself with Sample).
func open(t *testing.T, ctx context.Context, bus *natsbus.Bus, node string, opts history.Options) *history.Recorder {
	t.Helper()
	opts.Node, opts.Interval = node, time.Hour
	r, err := history.Open(ctx, bus.JS, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func sum(ps []lambdawire.HistoryPoint, f func(lambdawire.HistoryPoint) int64) (n int64) {
	for _, p := range ps {
		n += f(p)
	}
	return n
}

// TestNodesSumAndFunctionsStayApart: two recorders (two nodes) writing
// samples of the same function add up in a query; another function's
// samples are not in it, and are in the all-functions query; every step
// of the range has its point, quiet ones zero.
func TestNodesSumAndFunctionsStayApart(t *testing.T) {
	bus := natstest.Start(t)
	ctx := context.Background()
	a := open(t, ctx, bus, "node-a", history.Options{})
	b := open(t, ctx, bus, "node b.x", history.Options{}) // not a subject token: made one
	since := time.Now().Add(-time.Minute)

	for i := 0; i < 3; i++ {
		a.Observe(history.Observation{Function: "f", Duration: 3 * time.Millisecond, Cold: i == 0})
	}
	a.Observe(history.Observation{Function: "f", Failed: true, Duration: 100 * time.Millisecond})
	b.Observe(history.Observation{Function: "f", Throttled: true})
	b.Observe(history.Observation{Function: "f", Duration: 5 * time.Millisecond})
	b.Observe(history.Observation{Function: "g", Duration: time.Second})
	a.Sample(ctx)
	b.Sample(ctx)

	until := time.Now().Add(time.Second)
	rep, err := a.Query(ctx, "f", since, until, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := int(until.Sub(since.Truncate(10*time.Second))+10*time.Second-1) / int(10*time.Second)
	if len(rep.Points) != want {
		t.Fatalf("%d points, want %d (one per step)", len(rep.Points), want)
	}
	if rep.StepSeconds != 10 || rep.IntervalSeconds != 3600 {
		t.Errorf("step %d s, interval %d s; want 10 and 3600", rep.StepSeconds, rep.IntervalSeconds)
	}
	got := [4]int64{
		sum(rep.Points, func(p lambdawire.HistoryPoint) int64 { return p.Invocations }),
		sum(rep.Points, func(p lambdawire.HistoryPoint) int64 { return p.Errors }),
		sum(rep.Points, func(p lambdawire.HistoryPoint) int64 { return p.Throttles }),
		sum(rep.Points, func(p lambdawire.HistoryPoint) int64 { return p.ColdStarts }),
	}
	if got != [4]int64{6, 1, 1, 1} {
		t.Errorf("f's invocations, errors, throttles, cold starts = %v, want [6 1 1 1]", got)
	}
	var busy int
	for _, p := range rep.Points {
		if p.Invocations == 0 {
			if p.DurationP50Ms != nil || p.Concurrency != 0 {
				t.Errorf("a quiet point has figures: %+v", p)
			}
			continue
		}
		busy++
		// Five durations ran: 3, 3, 3, 5 and 100 ms. The median is in
		// the 2-4 ms bucket, the p99 in the 64-128 ms one.
		if p.DurationP50Ms == nil || *p.DurationP50Ms < 2 || *p.DurationP50Ms > 4 {
			t.Errorf("p50 %v ms, want within 2-4", p.DurationP50Ms)
		}
		if p.DurationP99Ms == nil || *p.DurationP99Ms < 64 || *p.DurationP99Ms > 128 {
			t.Errorf("p99 %v ms, want within 64-128", p.DurationP99Ms)
		}
		if want := (3*3 + 100 + 5) / 10000.0; p.Concurrency < want*0.99 || p.Concurrency > want*1.01 {
			t.Errorf("concurrency %v, want %v (114 ms over 10 s)", p.Concurrency, want)
		}
	}
	if busy == 0 || busy > 2 {
		t.Errorf("%d points hold the samples, want 1 or 2 (the two nodes' samples a moment apart)", busy)
	}

	all, err := b.Query(ctx, "", since, until, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := sum(all.Points, func(p lambdawire.HistoryPoint) int64 { return p.Invocations }); n != 7 {
		t.Errorf("all functions: %d invocations, want 7", n)
	}

	// A range before the samples has none (whole minutes: 30 points).
	hourAgo := since.Truncate(time.Minute).Add(-time.Hour)
	old, err := a.Query(ctx, "f", hourAgo, hourAgo.Add(30*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := sum(old.Points, func(p lambdawire.HistoryPoint) int64 { return p.Invocations }); n != 0 || len(old.Points) != 30 {
		t.Errorf("an earlier range: %d invocations in %d points, want 0 in 30", n, len(old.Points))
	}

	// A deleted function's samples go, every node's; others stay.
	if err := a.Forget(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	all, err = a.Query(ctx, "", since, until, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := sum(all.Points, func(p lambdawire.HistoryPoint) int64 { return p.Invocations }); n != 1 {
		t.Errorf("after forgetting f: %d invocations, want g's 1", n)
	}
}

// TestQueryRefusesBadRanges: a step that is not positive, an empty range
// and one of more than MaxPoints steps are errors, not empty answers.
func TestQueryRefusesBadRanges(t *testing.T) {
	bus := natstest.Start(t)
	ctx := context.Background()
	r := open(t, ctx, bus, "n", history.Options{})
	now := time.Now()
	for _, c := range []struct {
		name         string
		since, until time.Time
		step         time.Duration
	}{
		{"zero step", now.Add(-time.Hour), now, 0},
		{"until before since", now, now.Add(-time.Hour), time.Minute},
		{"too many points", now.Add(-7 * 24 * time.Hour), now, time.Minute},
	} {
		if _, err := r.Query(ctx, "f", c.since, c.until, c.step); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// TestSamplesDroppedWithoutSpace: while the disk check fails nothing is
// written and the drops are counted; once it passes samples are written
// again.
func TestSamplesDroppedWithoutSpace(t *testing.T) {
	bus := natstest.Start(t)
	ctx := context.Background()
	full := true
	r := open(t, ctx, bus, "n", history.Options{SpaceCheck: func(int64) error {
		if full {
			return errors.New("below the reserve")
		}
		return nil
	}})
	since := time.Now()
	r.Observe(history.Observation{Function: "f", Duration: time.Millisecond})
	r.Observe(history.Observation{Function: "g", Duration: time.Millisecond})
	r.Sample(ctx)
	if r.Dropped() != 2 {
		t.Errorf("dropped %d samples, want 2", r.Dropped())
	}
	full = false
	r.Observe(history.Observation{Function: "f", Duration: time.Millisecond})
	r.Sample(ctx)
	rep, err := r.Query(ctx, "", since, time.Now().Add(time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := sum(rep.Points, func(p lambdawire.HistoryPoint) int64 { return p.Invocations }); n != 1 {
		t.Errorf("%d invocations stored, want the 1 after space came back", n)
	}
}
