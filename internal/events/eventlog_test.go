package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
)

func TestEventLogRecordsAcceptedEvents(t *testing.T) {
	h := newHarness(t, 1<<20)
	ctx := context.Background()
	before := time.Now()
	h.enqueuePayloads(map[string]string{"req-1": `{"n":1}`})
	if err := h.q.Enqueue(ctx, Event{RequestID: "req-2", Function: "other", Qualifier: "live", Payload: json.RawMessage(`[2]`)}); err != nil {
		t.Fatal(err)
	}
	// A refused event is not logged.
	if err := h.q.Enqueue(ctx, Event{RequestID: "req-big", Function: "fn", Payload: make(json.RawMessage, MaxPayload+1)}); err == nil {
		t.Fatal("an oversized event was accepted")
	}

	ce, err := h.q.Get(ctx, "req-2")
	if err != nil {
		t.Fatal(err)
	}
	if ce.SpecVersion() != "1.0" || ce.ID() != "req-2" || ce.Type() != TypeInvoke || ce.Source() != sourceAPI ||
		ce.Subject() != "other" || ce.DataContentType() != "application/json" || string(ce.Data()) != `[2]` ||
		ce.Extensions()[extQualifier] != "live" || ce.Time().Before(before.Add(-time.Second)) {
		t.Fatalf("record of req-2: %s", ce)
	}
	// The record is CloudEvents' JSON format.
	raw, _ := json.Marshal(ce)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m["specversion"] != "1.0" || m["id"] != "req-2" || m["time"] == nil {
		t.Fatalf("JSON format: %s", raw)
	}

	for _, id := range []string{"req-big", "nope"} {
		if _, err := h.q.Get(ctx, id); !lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
			t.Errorf("Get(%s) = %v, want ResourceNotFound", id, err)
		}
	}
	for _, id := range []string{"", "a.b", "a*", "x>y", "a b"} {
		if _, err := h.q.Get(ctx, id); !lambdaerr.Is(err, lambdaerr.InvalidParameterValue) {
			t.Errorf("Get(%q) = %v, want InvalidParameterValue", id, err)
		}
	}

	all, more, err := h.q.List(ctx, Filter{})
	if err != nil || more || len(all) != 2 {
		t.Fatalf("List all = %d records, more %v, err %v", len(all), more, err)
	}
	fn, _, err := h.q.List(ctx, Filter{Function: "fn"})
	if err != nil || len(fn) != 1 || fn[0].Event.ID() != "req-1" {
		t.Fatalf("List fn = %v, %v", fn, err)
	}
	if late, _, err := h.q.List(ctx, Filter{Since: time.Now().Add(time.Hour)}); err != nil || len(late) != 0 {
		t.Fatalf("List since an hour ahead = %v, %v", late, err)
	}
	if early, _, err := h.q.List(ctx, Filter{Until: before.Add(-time.Hour)}); err != nil || len(early) != 0 {
		t.Fatalf("List until an hour ago = %v, %v", early, err)
	}
}

func TestEventLogPages(t *testing.T) {
	h := newHarness(t, 8<<20)
	ctx := context.Background()
	var want []string
	for i := range 600 { // more than one fetch batch
		id := fmt.Sprintf("req-%03d", i)
		want = append(want, id)
		h.enqueue(id, "fn")
	}
	var got []string
	f := Filter{Function: "fn", Limit: 250}
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("listing does not end")
		}
		page, more, err := h.q.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, e.Event.ID())
			f.After = e.Position
		}
		if !more {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("paged listing: %d ids, first %v", len(got), got[:min(3, len(got))])
	}
}

func TestReplay(t *testing.T) {
	h := newHarness(t, 1<<20)
	ctx := context.Background()
	h.enqueuePayloads(map[string]string{"old": `{"n":0}`})
	time.Sleep(20 * time.Millisecond)
	since := time.Now()
	for i := 1; i <= 3; i++ {
		if err := h.q.Enqueue(ctx, Event{RequestID: fmt.Sprintf("r%d", i), Function: "fn", Qualifier: "live",
			Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	h.enqueue("elsewhere", "other")

	done, err := h.q.Replay(ctx, ReplayRequest{Function: "fn", Since: since, Target: "fixed"})
	if err != nil || len(done) != 3 {
		t.Fatalf("Replay = %v, %v", done, err)
	}
	for i, r := range done {
		if r.ReplayOf != fmt.Sprintf("r%d", i+1) || r.ID == r.ReplayOf {
			t.Fatalf("replay %d: %+v", i, r)
		}
		ce, err := h.q.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ce.Type() != TypeReplay || ce.Subject() != "fixed" || ce.Extensions()[extReplayOf] != r.ReplayOf ||
			string(ce.Data()) != fmt.Sprintf(`{"n":%d}`, i+1) || ce.Extensions()[extQualifier] != nil {
			t.Fatalf("record of replay %d: %s", i, ce)
		}
	}
	// The replayed events wait in the queue for delivery: 5 accepted + 3.
	if n, err := h.q.Pending(ctx); err != nil || n != 8 {
		t.Fatalf("pending = %d, %v; want 8", n, err)
	}

	// To the same function: each keeps its qualifier; earlier replays in
	// the range are not replayed again.
	again, err := h.q.Replay(ctx, ReplayRequest{Function: "fn", Since: since})
	if err != nil || len(again) != 3 {
		t.Fatalf("second Replay = %v, %v", again, err)
	}
	ce, _ := h.q.Get(ctx, again[0].ID)
	if ce.Subject() != "fn" || ce.Extensions()[extQualifier] != "live" {
		t.Fatalf("replay to the same function: %s", ce)
	}
	if s := h.q.replayed.Load(); s != 6 {
		t.Fatalf("replayed counter %d, want 6", s)
	}
}

func TestReplayStopsAtAFullQueue(t *testing.T) {
	h := newHarness(t, 64<<10)
	ctx := context.Background()
	payload := `{"pad":"` + strings.Repeat("a", 8<<10) + `"}`
	var n int
	for ; ; n++ {
		err := h.q.Enqueue(ctx, Event{RequestID: fmt.Sprintf("e%d", n), Function: "fn", Payload: json.RawMessage(payload)})
		if err != nil {
			if !lambdaerr.Is(err, lambdaerr.ServiceUnavailable) {
				t.Fatal(err)
			}
			break
		}
	}
	// The event the full queue refused has no record: the log holds
	// accepted events only.
	if _, err := h.q.Get(ctx, fmt.Sprintf("e%d", n)); !lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		t.Fatalf("the refused event's record: %v, want none", err)
	}
	if all, _, err := h.q.List(ctx, Filter{}); err != nil || len(all) != n {
		t.Fatalf("the log has %d records (%v), want the %d accepted events", len(all), err, n)
	}
	done, err := h.q.Replay(ctx, ReplayRequest{Function: "fn"})
	var le *lambdaerr.Error
	if !errors.As(err, &le) || le.Code != lambdaerr.ServiceUnavailable || len(done) != 0 {
		t.Fatalf("replay into a full queue = %d replayed, %v", len(done), err)
	}
}
