package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/testkit"
)

// newHarnessWith is newHarness with options of the test's.
func newHarnessWith(t *testing.T, opts Options) *harness {
	t.Helper()
	h := newHarness(t, 1<<20)
	q, err := Open(context.Background(), h.bus.JS, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.q = q
	return h
}

// logCount is how many records the log holds.
func (h *harness) logCount() int {
	h.t.Helper()
	all, _, err := h.q.List(context.Background(), Filter{})
	if err != nil {
		h.t.Fatal(err)
	}
	return len(all)
}

// The log is the queue, and its retention never drops an event not yet
// delivered: a log full of undelivered events, past their age and past
// its size, keeps every one of them and refuses new ones (503); once they
// are delivered, their records go by age and size, and events are
// accepted again without a restart.
func TestLogKeepsUndeliveredEvents(t *testing.T) {
	h := newHarnessWith(t, Options{MaxBytes: 64 << 10, Log: LogOptions{MaxAge: time.Second}})
	inv := &fakeInvoker{}
	d := h.start(inv, DeliveryOptions{Concurrency: 2})
	payload := json.RawMessage(`"` + strings.Repeat("z", 8<<10) + `"`)
	ctx := context.Background()
	h.enqueue("delivered", "fn") // before them, done with: it may go
	h.waitEmpty()
	inv.mu.Lock()
	inv.block = make(chan struct{}) // running, not finished
	inv.mu.Unlock()
	var accepted []string
	var err error
	for i := 0; err == nil; i++ {
		id := fmt.Sprintf("full-%d", i)
		if err = h.q.Enqueue(ctx, Event{RequestID: id, Function: "fn", Payload: payload}); err == nil {
			accepted = append(accepted, id)
		}
	}
	if !lambdaerr.Is(err, lambdaerr.ServiceUnavailable) || len(accepted) < 4 {
		t.Fatalf("filling a 64 KiB log with 8 KiB events: %v after %d, want ServiceUnavailableException", err, len(accepted))
	}
	// Past the records' age, and trimmed more than once: all kept.
	time.Sleep(2*time.Second + 2*trimInterval)
	if err := h.q.trim(ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.logCount(); n != len(accepted) {
		t.Fatalf("the log holds %d records of %d undelivered events", n, len(accepted))
	}
	if err := h.q.Enqueue(ctx, Event{RequestID: "refused", Function: "fn", Payload: payload}); !lambdaerr.Is(err, lambdaerr.ServiceUnavailable) {
		t.Fatalf("an event for a log full of undelivered ones: %v, want ServiceUnavailableException", err)
	}
	if _, err := h.q.Get(ctx, "refused"); !lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		t.Errorf("the refused event's record: %v, want none", err)
	}
	close(inv.block)
	h.waitEmpty()
	for _, id := range accepted {
		if inv.count(id) == 0 {
			t.Errorf("accepted event %s never delivered", id)
		}
	}
	// Delivered and past their age: trimmed, and there is room again.
	testkit.WaitFor(t, 30*time.Second, "events to be accepted again", func() bool {
		return h.q.Enqueue(ctx, Event{RequestID: "after", Function: "fn", Payload: payload}) == nil
	})
	h.waitEmpty()
	testkit.WaitFor(t, 30*time.Second, "delivered records to age out", func() bool { return h.logCount() == 0 })
	if s := d.Stats(); s.Delivered != int64(len(accepted))+2 || s.Dropped != 0 {
		t.Errorf("stats %+v, want %d delivered, none dropped", s, len(accepted)+2)
	}
}

// Past three quarters of its bytes, the log trims its oldest delivered
// records: a stream of events larger than the log is accepted whole when
// delivery keeps up, and the newest records stay.
func TestLogTrimsDeliveredRecordsBySize(t *testing.T) {
	h := newHarnessWith(t, Options{MaxBytes: 64 << 10, Log: LogOptions{MaxAge: time.Hour}})
	inv := &fakeInvoker{}
	h.start(inv, DeliveryOptions{})
	payload := json.RawMessage(`"` + strings.Repeat("s", 4<<10) + `"`)
	ctx := context.Background()
	const n = 64 // 256 KiB of events through a 64 KiB log
	for i := range n {
		id := fmt.Sprintf("size-%d", i)
		testkit.WaitFor(t, 30*time.Second, "event "+id+" to be accepted", func() bool {
			err := h.q.Enqueue(ctx, Event{RequestID: id, Function: "fn", Payload: payload})
			if err != nil && !lambdaerr.Is(err, lambdaerr.ServiceUnavailable) {
				t.Fatal(err)
			}
			return err == nil
		})
	}
	h.waitEmpty()
	for i := range n {
		if c := inv.count(fmt.Sprintf("size-%d", i)); c != 1 {
			t.Errorf("size-%d delivered %d times, want once", i, c)
		}
	}
	if got := h.logCount(); got == 0 || got >= n {
		t.Errorf("the log holds %d of %d records, want the newest few", got, n)
	}
	if _, err := h.q.Get(ctx, fmt.Sprintf("size-%d", n-1)); err != nil {
		t.Errorf("the newest record: %v", err)
	}
}

// A record the log keeps for a message a mapping read (Log) is not an
// event to deliver; an event's trace header, chain depth and origin
// reach its delivery through its record.
func TestLogRecordsDelivery(t *testing.T) {
	h := newHarness(t, 1<<20)
	inv := &fakeInvoker{}
	h.start(inv, DeliveryOptions{})
	ctx := context.Background()
	h.q.Log(ctx, Event{RequestID: "mapped", Function: "fn", Payload: json.RawMessage(`{}`)}, TypeNATS, "arn:owl:esm")
	ev := Event{RequestID: "traced", Function: "fn", Payload: json.RawMessage(`{"t":1}`),
		TraceID: "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", Depth: 3, Origin: "first"}
	if err := h.q.Enqueue(ctx, ev); err != nil {
		t.Fatal(err)
	}
	h.waitEmpty()
	if n := inv.count("mapped"); n != 0 {
		t.Errorf("a mapping's record was delivered %d times", n)
	}
	if _, err := h.q.Get(ctx, "mapped"); err != nil {
		t.Errorf("a mapping's record: %v", err)
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if len(inv.calls) != 1 {
		t.Fatalf("%d deliveries, want 1", len(inv.calls))
	}
	if c := inv.calls[0]; c.RequestID != ev.RequestID || c.TraceID != ev.TraceID || c.Depth != 3 || c.Origin != "first" || string(c.Payload) != `{"t":1}` {
		t.Errorf("delivered %+v, want the event's id, trace, depth 3, origin and payload", c)
	}
}

// A store written before the log was the queue: its log records were
// delivered through the work queue, which still holds the events not
// yet delivered then. Those are delivered, once; the old records are not.
func TestLogFromBeforeTheCursor(t *testing.T) {
	ctx := context.Background()
	bus, err := natsbus.StartEmbedded(ctx, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	// The previous layout: a work queue of events and a log beside it.
	for _, cfg := range []jetstream.StreamConfig{
		{Name: streamName, Subjects: []string{subjectPrefix + ">"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage},
		{Name: logStreamName, Subjects: []string{logSubjectPrefix + ">"}, Storage: jetstream.FileStorage, MaxAge: time.Hour},
	} {
		if _, err := bus.JS.CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"old-delivered", "old-waiting"} {
		ev := Event{RequestID: id, Function: "fn", Payload: json.RawMessage(`{}`), Accepted: time.Now(), Attempt: 1}
		rec, err := encodeRecord(ev, origin{typ: TypeInvoke, source: sourceAPI})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bus.JS.Publish(ctx, logSubjectPrefix+"fn."+id, rec); err != nil {
			t.Fatal(err)
		}
		if id == "old-waiting" {
			data, _ := json.Marshal(ev)
			if _, err := bus.JS.Publish(ctx, subjectPrefix+"fn", data); err != nil {
				t.Fatal(err)
			}
		}
	}
	q, err := Open(ctx, bus.JS, Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, bus: bus, q: q}
	inv := &fakeInvoker{}
	h.start(inv, DeliveryOptions{})
	h.enqueue("new", "fn")
	h.waitEmpty()
	for id, want := range map[string]int{"old-delivered": 0, "old-waiting": 1, "new": 1} {
		if n := inv.count(id); n != want {
			t.Errorf("%s delivered %d times, want %d", id, n, want)
		}
	}
}
