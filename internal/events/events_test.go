package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/testkit"
	"github.com/owl-project/owl/internal/testkit/fakefns"
)

// fakeInvoker records every invocation and answers with what outcome
// says for it (nil: success).
type fakeInvoker struct {
	mu      sync.Mutex
	calls   []Request
	outcome func(req Request, n int) (Outcome, error) // n: calls of this request id so far, 1-based
	block   chan struct{}                             // when set, invocations wait on it or their ctx
}

func (f *fakeInvoker) Invoke(ctx context.Context, _ registry.Function, req Request) (Outcome, error) {
	f.mu.Lock()
	f.calls = append(f.calls, req)
	n := 0
	for _, c := range f.calls {
		if c.RequestID == req.RequestID {
			n++
		}
	}
	outcome, block := f.outcome, f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		}
	}
	if outcome == nil {
		return Outcome{}, nil
	}
	return outcome(req, n)
}

func (f *fakeInvoker) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.RequestID == id {
			n++
		}
	}
	return n
}

// configWith is an event invoke config source giving every function
// these settings.
func configWith(retries int, maxAge time.Duration, onSuccess, onFailure string) func(name, qualifier string) registry.EventInvokeConfig {
	secs := int(maxAge.Seconds())
	return func(name, qualifier string) registry.EventInvokeConfig {
		return registry.EventInvokeConfig{FunctionName: name, Qualifier: qualifier,
			MaximumRetryAttempts: &retries, MaximumEventAgeInSeconds: &secs, OnSuccess: onSuccess, OnFailure: onFailure}
	}
}

type harness struct {
	t   *testing.T
	bus *natsbus.Bus
	q   *Queue
}

func newHarness(t *testing.T, maxBytes int64) *harness {
	t.Helper()
	ctx := context.Background()
	bus, err := natsbus.StartEmbedded(ctx, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	q, err := Open(ctx, bus.JS, Options{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, bus: bus, q: q}
}

func (h *harness) start(inv Invoker, opts DeliveryOptions) *Delivery {
	h.t.Helper()
	return h.startWith(fakefns.Functions{"fn": true}, inv, opts)
}

// startWith starts delivery on fns, closed when the test ends.
func (h *harness) startWith(fns Functions, inv Invoker, opts DeliveryOptions) *Delivery {
	h.t.Helper()
	if opts.RetryDelay == 0 {
		opts.RetryDelay = 10 * time.Millisecond
	}
	if opts.ThrottleBackoff == 0 {
		opts.ThrottleBackoff = time.Second
	}
	d, err := StartDelivery(context.Background(), h.q, fns, inv, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(d.Close)
	return d
}

// enqueuePayloads enqueues an event of fn per request id, with its payload.
func (h *harness) enqueuePayloads(payloads map[string]string) {
	h.t.Helper()
	for id, payload := range payloads {
		if err := h.q.Enqueue(context.Background(), Event{RequestID: id, Function: "fn", Payload: json.RawMessage(payload)}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) enqueue(id, fn string) {
	h.t.Helper()
	if err := h.q.Enqueue(context.Background(), Event{RequestID: id, Function: fn, Payload: json.RawMessage(`{"n":1}`)}); err != nil {
		h.t.Fatalf("Enqueue %s: %v", id, err)
	}
}

func (h *harness) waitEmpty() {
	h.t.Helper()
	testkit.WaitFor(h.t, 30*time.Second, "the queue to empty", func() bool {
		n, err := h.q.Pending(context.Background())
		return err == nil && n == 0
	})
}

func TestDeliveredOnceWithItsRequestID(t *testing.T) {
	h := newHarness(t, 1<<20)
	inv := &fakeInvoker{}
	d := h.start(inv, DeliveryOptions{})
	for i := range 20 {
		h.enqueue(fmt.Sprintf("req-%d", i), "fn")
	}
	h.waitEmpty()
	for i := range 20 {
		if n := inv.count(fmt.Sprintf("req-%d", i)); n != 1 {
			t.Errorf("req-%d delivered %d times, want once", i, n)
		}
	}
	if s := d.Stats(); s.Delivered != 20 || s.Dropped != 0 || s.Retried != 0 {
		t.Errorf("stats %+v, want 20 delivered", s)
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if got := string(inv.calls[0].Payload); got != `{"n":1}` || inv.calls[0].InvokedARN == "" {
		t.Errorf("delivered %q to %q", got, inv.calls[0].InvokedARN)
	}
}

// A function error is retried as often as the config says, the retries
// keeping the request id, and then given up.
func TestFunctionErrorsRetriedThenDropped(t *testing.T) {
	h := newHarness(t, 1<<20)
	inv := &fakeInvoker{outcome: func(req Request, n int) (Outcome, error) {
		if req.RequestID == "flaky" && n == 2 {
			return Outcome{}, nil // succeeds on the first retry
		}
		return Outcome{FunctionError: true, ErrorType: "Handled"}, nil
	}}
	d := h.start(inv, DeliveryOptions{Config: configWith(2, time.Hour, "", "")})
	h.enqueue("doomed", "fn")
	h.enqueue("flaky", "fn")
	h.waitEmpty()
	testkit.WaitFor(t, 10*time.Second, "both events finished", func() bool {
		s := d.Stats()
		return s.Dropped == 1 && s.Delivered == 1
	})
	if n := inv.count("doomed"); n != 3 {
		t.Errorf("an always failing event ran %d times, want 1 + 2 retries", n)
	}
	if n := inv.count("flaky"); n != 2 {
		t.Errorf("an event that succeeds on its retry ran %d times, want 2", n)
	}
	if s := d.Stats(); s.Retried != 3 {
		t.Errorf("stats %+v: want 3 retries (2 + 1)", s)
	}
}

// A throttled event waits and is delivered once the function has room; it
// is not counted as an attempt.
func TestThrottledEventsWait(t *testing.T) {
	h := newHarness(t, 1<<20)
	var mu sync.Mutex
	open := false
	inv := &fakeInvoker{outcome: func(Request, int) (Outcome, error) {
		mu.Lock()
		defer mu.Unlock()
		if !open {
			return Outcome{}, lambdaerr.New(lambdaerr.TooManyRequests, "Rate Exceeded.")
		}
		return Outcome{}, nil
	}}
	d := h.start(inv, DeliveryOptions{Config: configWith(0, time.Hour, "", "")})
	h.enqueue("waiting", "fn")
	testkit.WaitFor(t, 10*time.Second, "a throttled try", func() bool { return d.Stats().Throttled >= 2 })
	mu.Lock()
	open = true
	mu.Unlock()
	h.waitEmpty()
	if s := d.Stats(); s.Delivered != 1 || s.Dropped != 0 {
		t.Errorf("stats %+v: want the throttled event delivered, with 0 retries configured", s)
	}
}

func TestDroppedWhenTooOldOrGone(t *testing.T) {
	h := newHarness(t, 1<<20)
	inv := &fakeInvoker{}
	d := h.start(inv, DeliveryOptions{Config: configWith(2, time.Minute, "", "")})
	old := Event{RequestID: "old", Function: "fn", Payload: json.RawMessage(`{}`), Accepted: time.Now().Add(-2 * time.Minute)}
	if err := h.q.Enqueue(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	h.enqueue("orphan", "deleted-fn")
	h.waitEmpty()
	testkit.WaitFor(t, 10*time.Second, "both dropped", func() bool { return d.Stats().Dropped == 2 })
	if inv.count("old") != 0 || inv.count("orphan") != 0 {
		t.Error("an event past its age or of a deleted function ran")
	}
}

// Closing hands in-flight events back; the next start delivers them with
// their request ids.
func TestCloseHandsEventsBack(t *testing.T) {
	h := newHarness(t, 1<<20)
	first := &fakeInvoker{block: make(chan struct{})}
	d, err := StartDelivery(context.Background(), h.q, fakefns.Functions{"fn": true}, first, DeliveryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.enqueue("a", "fn")
	h.enqueue("b", "fn")
	testkit.WaitFor(t, 10*time.Second, "both events in flight", func() bool { return first.count("a") == 1 && first.count("b") == 1 })
	d.Close()
	second := &fakeInvoker{}
	h.start(second, DeliveryOptions{})
	h.waitEmpty()
	if second.count("a") != 1 || second.count("b") != 1 {
		t.Errorf("after a restart: a %d, b %d deliveries; want 1 each", second.count("a"), second.count("b"))
	}
}

// Nothing is accepted that the queue cannot keep: a full stream and a
// too large payload are errors before the event counts as accepted.
func TestEnqueueRefusals(t *testing.T) {
	h := newHarness(t, 64<<10)
	big := make([]byte, 0, MaxPayload+2)
	big = append(big, '"')
	big = append(big, slices.Repeat([]byte("x"), MaxPayload)...)
	big = append(big, '"')
	err := h.q.Enqueue(context.Background(), Event{RequestID: "big", Function: "fn", Payload: big})
	if !lambdaerr.Is(err, lambdaerr.RequestTooLarge) {
		t.Errorf("a %d byte payload: %v, want RequestTooLargeException", len(big), err)
	}
	if _, oldest, err := h.q.Backlog(context.Background()); err != nil || !oldest.IsZero() {
		t.Errorf("Backlog of an empty queue: oldest %v, %v; want zero", oldest, err)
	}
	payload := json.RawMessage(`"` + string(slices.Repeat([]byte("y"), 8<<10)) + `"`)
	first := time.Now()
	var accepted int
	for i := range 20 {
		err = h.q.Enqueue(context.Background(), Event{RequestID: fmt.Sprintf("fill-%d", i), Function: "fn", Payload: payload})
		if err != nil {
			break
		}
		accepted++
	}
	if !lambdaerr.Is(err, lambdaerr.ServiceUnavailable) {
		t.Fatalf("filling a 64 KiB queue with 8 KiB events: %v after %d, want ServiceUnavailableException", err, accepted)
	}
	if n, _ := h.q.Pending(context.Background()); n != uint64(accepted) {
		t.Errorf("%d events stored, %d accepted: every accepted one must be kept", n, accepted)
	}
	// Nothing delivers here: the oldest waiting is the first accepted.
	if _, oldest, err := h.q.Backlog(context.Background()); err != nil || oldest.Before(first.Add(-time.Second)) || oldest.After(time.Now()) {
		t.Errorf("Backlog's oldest = %v, %v; want the first event's store time (just after %v)", oldest, err, first)
	}
}

// Records of successes and failures reach their destinations in Lambda's
// format: a function (as an asynchronous invocation of it) and a NATS
// subject.
func TestDestinations(t *testing.T) {
	h := newHarness(t, 1<<20)
	inv := &fakeInvoker{outcome: func(req Request, _ int) (Outcome, error) {
		if string(req.Payload) == `{"fail":true}` {
			return Outcome{FunctionError: true, ErrorType: "Handled", Payload: []byte(`{"errorMessage":"no"}`)}, nil
		}
		return Outcome{Payload: []byte(`{"ok":1}`)}, nil
	}}
	var mu sync.Mutex
	published := map[string][]byte{}
	sink := "arn:aws:lambda:us-east-1:0:function:sink"
	cfg := configWith(1, time.Hour, "arn:owl:nats:::results.ok", sink)
	d := h.startWith(fakefns.Functions{"fn": true, "sink": true}, inv, DeliveryOptions{
		Config: func(name, q string) registry.EventInvokeConfig {
			if name == "sink" {
				return registry.EventInvokeConfig{FunctionName: name}
			}
			return cfg(name, q)
		},
		Publish: func(subject string, data []byte) error {
			mu.Lock()
			defer mu.Unlock()
			published[subject] = data
			return nil
		},
	})
	h.enqueuePayloads(map[string]string{"good": `{"n":1}`, "bad": `{"fail":true}`})
	testkit.WaitFor(t, 30*time.Second, "both records delivered", func() bool { return d.Stats().Destined == 2 && d.Stats().Delivered >= 2 })
	h.waitEmpty()

	var ok Record
	mu.Lock()
	err := json.Unmarshal(published["results.ok"], &ok)
	mu.Unlock()
	if err != nil || ok.Version != "1.0" || ok.RequestContext.RequestID != "good" || ok.RequestContext.Condition != "Success" ||
		ok.RequestContext.ApproximateInvokeCount != 1 || string(ok.RequestPayload) != `{"n":1}` ||
		ok.ResponseContext == nil || ok.ResponseContext.StatusCode != 200 || string(ok.ResponsePayload) != `{"ok":1}` {
		t.Errorf("the success record on results.ok: %+v (%v)", ok, err)
	}
	// The failure record was delivered to the sink function as an event.
	inv.mu.Lock()
	var fail Record
	for _, c := range inv.calls {
		if c.InvokedARN == "arn:aws:lambda:us-east-1:0:function:sink" {
			_ = json.Unmarshal(c.Payload, &fail)
		}
	}
	inv.mu.Unlock()
	if fail.RequestContext.RequestID != "bad" || fail.RequestContext.Condition != "RetriesExhausted" ||
		fail.RequestContext.ApproximateInvokeCount != 2 || fail.ResponseContext == nil ||
		fail.ResponseContext.FunctionError != "Unhandled" || string(fail.ResponsePayload) != `{"errorMessage":"no"}` {
		t.Errorf("the failure record at the sink: %+v", fail)
	}
}

// withDeadLetter gives every function of fakefns.Functions a dead-letter target.
type withDeadLetter struct {
	fakefns.Functions
	target string
}

func (w withDeadLetter) ResolveForInvoke(ctx context.Context, name, qualifier string, rnd float64) (registry.Target, error) {
	t, err := w.Functions.ResolveForInvoke(ctx, name, qualifier, rnd)
	t.Function.DeadLetterTarget = w.target
	return t, err
}

// An event given up sends its payload, as it came, to the function's
// dead-letter target; one delivered does not.
func TestDeadLetter(t *testing.T) {
	h := newHarness(t, 1<<20)
	inv := &fakeInvoker{outcome: func(req Request, _ int) (Outcome, error) {
		return Outcome{FunctionError: string(req.Payload) == `{"fail":true}`}, nil
	}}
	var mu sync.Mutex
	var letters []string
	d := h.startWith(withDeadLetter{fakefns.Functions{"fn": true}, "arn:owl:nats:::dead.letters"}, inv,
		DeliveryOptions{Config: configWith(0, time.Hour, "", ""), Publish: func(subject string, data []byte) error {
			mu.Lock()
			defer mu.Unlock()
			letters = append(letters, subject+" "+string(data))
			return nil
		}})
	h.enqueuePayloads(map[string]string{"ok": `{"n":1}`, "doomed": `{"fail":true}`})
	h.waitEmpty()
	testkit.WaitFor(t, 10*time.Second, "the dead letter", func() bool { return d.Stats().Destined == 1 })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(letters, []string{`dead.letters {"fail":true}`}) {
		t.Errorf("dead letters %q, want the failed event's payload only", letters)
	}
}

// pingPong is an event invoke config source in which a's successes go to
// b and b's to a: a loop.
func pingPong(name, q string) registry.EventInvokeConfig {
	other := map[string]string{"a": "b", "b": "a"}[name]
	return registry.EventInvokeConfig{FunctionName: name, OnSuccess: "arn:aws:lambda:us-east-1:0:function:" + other}
}

// TestRecursiveLoopStopped: a chain of events that loops (a's successes
// go to b, b's to a) runs registry.MaxChainDepth invocations, then the
// next event is stopped, counted and sent to OnFailure; with the
// functions' recursion config Allow it goes on.
func TestRecursiveLoopStopped(t *testing.T) {
	h := newHarness(t, 1<<20)
	inv := &fakeInvoker{}
	d := h.startWith(fakefns.Functions{"a": true, "b": true}, inv, DeliveryOptions{Config: pingPong})
	h.enqueue("first", "a")
	testkit.WaitFor(t, time.Minute, "the loop to be stopped", func() bool { return d.Stats().Loops == 1 })
	h.waitEmpty()
	inv.mu.Lock()
	n := len(inv.calls)
	inv.mu.Unlock()
	if n != registry.MaxChainDepth {
		t.Fatalf("the loop ran %d invocations, want %d", n, registry.MaxChainDepth)
	}

	h2 := newHarness(t, 1<<20)
	inv2 := &fakeInvoker{}
	d2 := h2.startWith(fakefns.Functions{"a": true, "b": true}, inv2, DeliveryOptions{Config: pingPong,
		RecursionAllowed: func(string) bool { return true }})
	h2.enqueue("first", "a")
	testkit.WaitFor(t, time.Minute, "the allowed loop to pass the depth", func() bool {
		inv2.mu.Lock()
		defer inv2.mu.Unlock()
		return len(inv2.calls) > registry.MaxChainDepth+4
	})
	d2.Close() // the loop would go on forever
	if d2.Stats().Loops != 0 {
		t.Fatal("an allowed loop was stopped")
	}
}
