package triggers

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/events"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/testkit/fakefns"
	"github.com/owl-project/owl/internal/testkit/natstest"
)

type harness struct {
	t *testing.T
	s *Scheduler
	q *events.Queue
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	bus := natstest.Start(t)
	q, err := events.Open(ctx, bus.JS, events.Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, bus.JS, fakefns.Functions{"fn": true}, q, Options{Region: "us-east-1", AccountID: "000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, s: s, q: q}
}

// put stores t as it is (a trigger created in the past, or one whose
// last firing was not recorded).
func (h *harness) put(t Trigger) {
	h.t.Helper()
	data, _ := json.Marshal(t)
	if _, err := h.s.kv.Put(context.Background(), t.Name, data); err != nil {
		h.t.Fatal(err)
	}
}

// run ticks until nothing more is due and returns the events stored.
func (h *harness) run() []events.Entry {
	h.t.Helper()
	ctx := context.Background()
	for range 100 {
		if h.s.tick(ctx) > 0 {
			break
		}
	}
	all, _, err := h.q.List(ctx, events.Filter{Function: "fn"})
	if err != nil {
		h.t.Fatal(err)
	}
	return all
}

func TestCatchUp(t *testing.T) {
	for _, c := range []struct {
		policy       string
		fired        int
		missed       int64
		lastFiringAt time.Duration // after creation
	}{
		{CatchUpLast, 1, 1, 10 * time.Minute}, // +5 missed, +10 fires
		{CatchUpNone, 0, 2, 10 * time.Minute}, // both missed
	} {
		t.Run(c.policy, func(t *testing.T) {
			h := newHarness(t)
			created := time.Now().Add(-12 * time.Minute).UTC()
			h.put(Trigger{Name: "five", Schedule: "rate(5 minutes)", Function: "fn", CatchUp: c.policy, Created: created, State: Enabled})
			got := h.run()
			if len(got) != c.fired || h.s.Stats().Missed != c.missed {
				t.Fatalf("%d fired, %d missed; want %d and %d", len(got), h.s.Stats().Missed, c.fired, c.missed)
			}
			tr, _ := h.s.Get(context.Background(), "five")
			if !tr.LastFiring.Equal(created.Add(c.lastFiringAt)) {
				t.Fatalf("last firing %s, want creation + %s", tr.LastFiring, c.lastFiringAt)
			}
			if next, ok := tr.Next(); !ok || !next.Equal(created.Add(15*time.Minute)) {
				t.Fatalf("next firing %s, want creation + 15m", next)
			}
		})
	}
}

func TestLateFiringsAllFire(t *testing.T) {
	// Down (or stalled) for less than a minute: every firing still fires,
	// late, each once.
	h := newHarness(t)
	created := time.Now().Add(-10500 * time.Millisecond).UTC()
	h.put(Trigger{Name: "tick", Schedule: "rate(1 second)", Function: "fn", CatchUp: CatchUpNone, Created: created, State: Enabled})
	got := h.run()
	if len(got) != 10 || h.s.Stats().Missed != 0 {
		t.Fatalf("%d fired, %d missed; want 10 and 0", len(got), h.s.Stats().Missed)
	}
	var prev time.Time
	for i, e := range got {
		var ev struct{ Time time.Time }
		if err := json.Unmarshal(e.Event.Data(), &ev); err != nil || e.Event.Type() != events.TypeSchedule {
			t.Fatalf("firing %d: %s", i, e.Event)
		}
		if want := created.Add(time.Duration(i+1) * time.Second); !ev.Time.Equal(want) || !ev.Time.After(prev) {
			t.Fatalf("firing %d at %s, want %s", i, ev.Time, want)
		}
		prev = ev.Time
	}
}

func TestFiringStoredOnce(t *testing.T) {
	// A crash after storing a firing's event but before recording it in
	// the trigger: the next run finds the event and does not store it again.
	h := newHarness(t)
	created := time.Now().Add(-90 * time.Second).UTC()
	tr := Trigger{Name: "minute", Schedule: "rate(1 minute)", Function: "fn", Created: created, State: Enabled, CatchUp: CatchUpLast}
	h.put(tr)
	if got := h.run(); len(got) != 1 {
		t.Fatalf("%d fired, want 1", len(got))
	}
	h.put(tr) // LastFiring lost
	if got := h.run(); len(got) != 1 || h.s.Stats().Fired != 1 {
		t.Fatalf("after the lost record: %d events, %d fired; want 1 and 1", len(got), h.s.Stats().Fired)
	}
}

func TestFunctionGoneStopsTrigger(t *testing.T) {
	h := newHarness(t)
	h.put(Trigger{Name: "orphan", Schedule: "rate(1 second)", Function: "gone", Created: time.Now().Add(-5 * time.Second).UTC(), State: Enabled, CatchUp: CatchUpLast})
	h.run()
	tr, _ := h.s.Get(context.Background(), "orphan")
	if tr.State != FunctionNotFound || tr.Reason == "" || h.s.Stats().Stopped != 1 {
		t.Fatalf("trigger of a deleted function: %+v, stats %+v", tr, h.s.Stats())
	}
	if _, ok := tr.Next(); ok {
		t.Fatal("a stopped trigger has a next firing")
	}
}

func TestCreateRefusals(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ok := CreateInput{Name: "t1", Schedule: "rate(1 minute)", Function: "fn"}
	if _, err := h.s.Create(ctx, ok); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   CreateInput
		code string
	}{
		{ok, lambdaerr.ResourceConflict},
		{CreateInput{Name: "bad name", Schedule: "rate(1 minute)", Function: "fn"}, lambdaerr.InvalidParameterValue},
		{CreateInput{Name: "t2", Schedule: "rate(1 minutes)", Function: "fn"}, lambdaerr.InvalidParameterValue},
		{CreateInput{Name: "t2", Schedule: "cron(0 10 * * * *)", Function: "fn"}, lambdaerr.InvalidParameterValue},
		{CreateInput{Name: "t2", Schedule: "rate(1 minute)", Timezone: "Nowhere/City", Function: "fn"}, lambdaerr.InvalidParameterValue},
		{CreateInput{Name: "t2", Schedule: "rate(1 minute)", Function: "nope"}, lambdaerr.ResourceNotFound},
		{CreateInput{Name: "t2", Schedule: "rate(1 minute)", Function: "fn", Input: json.RawMessage(`{`)}, lambdaerr.InvalidParameterValue},
		{CreateInput{Name: "t2", Schedule: "rate(1 minute)", Function: "fn", CatchUp: "all"}, lambdaerr.InvalidParameterValue},
	} {
		if _, err := h.s.Create(ctx, c.in); !lambdaerr.Is(err, c.code) {
			t.Errorf("Create(%+v) = %v, want %s", c.in, err, c.code)
		}
	}
	if err := h.s.Delete(ctx, "nope"); !lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		t.Errorf("Delete of an unknown trigger: %v", err)
	}
	if all, err := h.s.List(ctx); err != nil || len(all) != 1 {
		t.Errorf("List = %v, %v; want t1 alone", all, err)
	}
}
