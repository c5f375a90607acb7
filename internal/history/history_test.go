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
	return openWith(t, ctx, bus, opts)
}

// openWith starts a recorder with opts, closed when t ends.
func openWith(t testing.TB, ctx context.Context, bus *natsbus.Bus, opts history.Options) *history.Recorder {
	t.Helper()
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
	b.Observe(history.Observation{Function: "f", InitFailed: true, Cold: true})
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
	if got != [4]int64{7, 2, 1, 1} {
		t.Errorf("f's invocations, errors, throttles, cold starts = %v, want [7 2 1 1] (an init failure is an error, not a cold start that served)", got)
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
	if n := sum(all.Points, func(p lambdawire.HistoryPoint) int64 { return p.Invocations }); n != 8 {
		t.Errorf("all functions: %d invocations, want 8", n)
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

	// A deleted function's samples go, every node's; the sums of all
	// functions keep what it did.
	a.Observe(history.Observation{Function: "f", Duration: time.Millisecond}) // not yet written: goes too
	if err := a.Forget(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	a.Sample(ctx)
	if _, n := query(t, a, "f", since, until, time.Minute); n != 0 {
		t.Errorf("after forgetting f: %d of its invocations left", n)
	}
	if _, n := query(t, a, "", since, until, time.Minute); n != 8 {
		t.Errorf("after forgetting f: %d invocations of all functions, want the 8 that ran", n)
	}
}

// query is r.Query, failing t on an error, with the invocations summed.
func query(t *testing.T, r *history.Recorder, fn string, since, until time.Time, step time.Duration) ([]lambdawire.HistoryPoint, int64) {
	t.Helper()
	rep, err := r.Query(context.Background(), fn, since, until, step)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Points, sum(rep.Points, func(p lambdawire.HistoryPoint) int64 { return p.Invocations })
}

// TestRollups: each 5 minutes of the clock, the samples that started in
// it are also written summed as rollups; a step of 5 minutes or more
// reads the rollups, and the samples for the minutes whose rollup may
// not be written yet, counting each invocation once; rollups of every
// function hold the sum; Close writes the open rollup.
func TestRollups(t *testing.T) {
	bus := natstest.Start(t)
	ctx := context.Background()
	r := openWith(t, ctx, bus, history.Options{Node: "n", Interval: 10 * time.Second})
	b := time.Now().Truncate(history.RollupPeriod).Add(-48 * time.Hour)
	now := b.Add(time.Minute)
	r.SetClock(func() time.Time { return now })
	at := func(d time.Duration) { now = b.Add(d) }

	r.Observe(history.Observation{Function: "f", Duration: time.Millisecond})
	r.Observe(history.Observation{Function: "f", Duration: time.Millisecond})
	at(time.Minute + 10*time.Second)
	r.Sample(ctx) // a sample from 1:00, in the rollup of 0:00
	r.Observe(history.Observation{Function: "f", Duration: time.Millisecond})
	r.Observe(history.Observation{Function: "g", Duration: time.Millisecond})
	at(6 * time.Minute)
	r.Sample(ctx) // from 1:10, in the rollup of 0:00, which is written now
	r.Observe(history.Observation{Function: "f", Duration: time.Millisecond})
	at(6*time.Minute + 10*time.Second)
	r.Sample(ctx) // from 6:00, in the rollup of 5:00, still open

	// At 6:20 the rollup of 5:00 is not written: the query reads the
	// rollup of 0:00 and the samples from 5:00 on.
	at(6*time.Minute + 20*time.Second)
	points, n := query(t, r, "f", b, now, history.RollupPeriod)
	if n != 4 || len(points) != 2 || points[0].Invocations != 3 || points[1].Invocations != 1 {
		t.Errorf("at 6:20, by 5 min: %d invocations in %+v, want 3 then 1", n, points)
	}
	r.Close() // writes the rollup of 5:00
	at(20 * time.Minute)
	points, n = query(t, r, "f", b, now, history.RollupPeriod)
	if n != 4 || len(points) != 4 || points[0].Invocations != 3 || points[1].Invocations != 1 {
		t.Errorf("at 20:00, by 5 min: %d invocations in %+v, want 3 then 1 (rollups only)", n, points)
	}
	if _, n := query(t, r, "", b, now, history.RollupPeriod); n != 5 {
		t.Errorf("all functions by 5 min: %d invocations, want 5", n)
	}
	points, n = query(t, r, "f", b, now, time.Minute)
	if n != 4 || points[1].Invocations != 3 || points[6].Invocations != 1 {
		t.Errorf("by minute: %d invocations in %+v, want 3 at 1:00 and 1 at 6:00 (samples)", n, points)
	}
	if got := r.FinestStep(b); got != 10*time.Second {
		t.Errorf("the finest step from a time within the samples' age: %v, want the interval", got)
	}
	if got := r.FinestStep(now.Add(-history.SampleAge - time.Minute)); got != history.RollupPeriod {
		t.Errorf("the finest step from before the samples' age: %v, want %v", got, history.RollupPeriod)
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
	if r.Dropped() != 3 {
		t.Errorf("dropped %d samples, want 3 (f's, g's and all's)", r.Dropped())
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
