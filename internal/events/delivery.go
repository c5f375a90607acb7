package events

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// consumerName is delivery's consumer of the work queue of retries (its
// consumer of the log is cursorName: eventlog.go).
const consumerName = "owl-delivery"

// Request is one delivery of an event to a resolved function.
type Request struct {
	RequestID  string
	Payload    []byte
	TraceID    string
	InvokedARN string
	// Depth and Origin are the event's place in its chain (Event).
	Depth  int
	Origin string
	// Queued is when the event began waiting to be delivered (accepted,
	// or a retry's due time): the queue's span (zero: none).
	Queued time.Time
}

// Outcome is what a delivery that reached the function's runtime got.
type Outcome struct {
	Payload       []byte
	FunctionError bool
	ErrorType     string
}

// Invoker runs one invocation (the server adapts its worker). An error is
// an invocation that did not run: a throttle (TooManyRequestsException),
// no capacity, or a failure of Owl's own.
type Invoker interface {
	Invoke(ctx context.Context, fn registry.Function, req Request) (Outcome, error)
}

// Functions is what delivery reads of the registry.
type Functions interface {
	ResolveForInvoke(ctx context.Context, name, qualifier string, rnd float64) (registry.Target, error)
	ARN(name, qualifier string) string
}

// DeliveryOptions configure delivery.
type DeliveryOptions struct {
	// Concurrency bounds the events being delivered at once on this node.
	Concurrency int
	// RetryDelay is the wait before the first retry of a function error;
	// each further retry waits twice the one before (Lambda: about 1 and
	// 2 minutes).
	RetryDelay time.Duration
	// ThrottleBackoff is the longest wait between tries of an event that
	// was throttled or found no capacity; the waits start at a second and
	// double up to it (Lambda: 1 s to 5 min).
	ThrottleBackoff time.Duration
	// Config is the event invoke config of name:qualifier: how many times
	// a function error is retried and how old an event may get (Lambda's
	// defaults: 2 and 6 hours), and where records of successes and
	// failures go. Nil: the defaults, no destinations.
	Config func(name, qualifier string) registry.EventInvokeConfig
	// Publish sends a record to a NATS destination (arn:owl:nats:::subject).
	Publish func(subject string, data []byte) error
	// RecursionAllowed says whether function name lets a chain of events
	// come back to it past registry.MaxChainDepth hops (its recursion
	// config is Allow); nil: no function does.
	RecursionAllowed func(name string) bool
	// Settled, when set, runs before an event that ran is acknowledged,
	// so what the invocation wrote is stored first (the server flushes
	// the function log: a delivered event's START..REPORT outlive a crash
	// right after).
	Settled func(ctx context.Context)
	Logger  *slog.Logger
}

// Stats count what the queue and delivery did since they started.
type Stats struct {
	// Accepted counts the events clients invoked that were stored.
	Accepted int64
	// Unrecorded counts events missing from the event log (the write of
	// a mapping's message's record failed); Replayed the events replays
	// stored.
	Unrecorded, Replayed int64
	// Loops counts events stopped as recursive loops.
	Loops int64
	// Delivered counts events whose function ran and succeeded.
	Delivered int64
	// Retried counts function errors given another attempt.
	Retried int64
	// Dropped counts events given up: retries exhausted, too old, their
	// function deleted, or unreadable.
	Dropped int64
	// Throttled counts tries that were throttled and put back to wait.
	Throttled int64
	// Destined counts records sent to destinations, DestinationFailed
	// those a destination kept refusing (logged and given up).
	Destined, DestinationFailed int64
}

// Delivery hands the queue's events to functions.
type Delivery struct {
	q     *Queue
	fns   Functions
	inv   Invoker
	opts  DeliveryOptions
	log   *slog.Logger
	cc    []jetstream.ConsumeContext // of the log and of the work queue
	slots chan struct{}
	wg    sync.WaitGroup
	// ctx ends running deliveries at Close; what they held is redelivered.
	ctx    context.Context
	cancel context.CancelFunc

	delivered, retried, dropped, throttled atomic.Int64
	destined, destinationFailed            atomic.Int64
	loops                                  atomic.Int64 // chains stopped as recursive loops
}

// ackWait is how long JetStream waits for an acknowledgement before it
// redelivers; a running delivery says it is still at work every third of
// it, so only a crashed node's events come back.
const ackWait = 30 * time.Second

// KeepInProgress tells JetStream every interval that msgs are still being
// worked on, so that it does not redeliver them while they are, until the
// returned stop is called; stop returns once the reporting has ended.
// Only a crashed worker's messages then come back after their AckWait.
func KeepInProgress(interval time.Duration, msgs ...jetstream.Msg) (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				for _, msg := range msgs {
					_ = msg.InProgress()
				}
			}
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}

// StartDelivery starts delivering q's events. Close stops it.
func StartDelivery(ctx context.Context, q *Queue, fns Functions, inv Invoker, opts DeliveryOptions) (*Delivery, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Minute
	}
	if opts.ThrottleBackoff <= 0 {
		opts.ThrottleBackoff = 5 * time.Minute
	}
	if opts.Config == nil {
		opts.Config = func(name, qualifier string) registry.EventInvokeConfig {
			return registry.EventInvokeConfig{FunctionName: name, Qualifier: qualifier}
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cons, err := q.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       consumerName,
		Description:   "delivers retries of asynchronous invocations to their functions",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: opts.Concurrency,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the event delivery consumer: %w", err)
	}
	cursor, err := q.log.CreateOrUpdateConsumer(ctx, cursorConfig(opts.Concurrency))
	if err != nil {
		return nil, fmt.Errorf("updating the event log's delivery cursor: %w", err)
	}
	d := &Delivery{q: q, fns: fns, inv: inv, opts: opts, log: opts.Logger, slots: make(chan struct{}, opts.Concurrency)}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for _, c := range []jetstream.Consumer{cursor, cons} {
		cc, err := c.Consume(d.receive, jetstream.PullMaxMessages(opts.Concurrency))
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("consuming events: %w", err)
		}
		d.cc = append(d.cc, cc)
	}
	d.wg.Go(func() { q.trimLoop(d.ctx) })
	return d, nil
}

// receive runs on the consumer's goroutine: it waits for a free slot (so
// at most Concurrency events run) and delivers msg on a goroutine of its
// own.
func (d *Delivery) receive(msg jetstream.Msg) {
	if d.ctx.Err() != nil {
		_ = msg.Nak() // closing: back to the queue, for the next start
		return
	}
	select {
	case d.slots <- struct{}{}:
	case <-d.ctx.Done():
		_ = msg.Nak() // back to the queue, for the next start
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() { <-d.slots }()
		d.deliver(msg)
	}()
}

// deliver takes one event to its final outcome, or puts it back for later.
func (d *Delivery) deliver(msg jetstream.Msg) {
	if msg.Headers().Get(logOnlyHeader) != "" {
		d.ack(msg, Event{}) // a record of the log only, not an event to deliver
		return
	}
	ev, err := decodeEvent(msg)
	if err != nil || ev.RequestID == "" || ev.Function == "" {
		d.drop(msg, ev, fmt.Sprintf("unreadable event record: %v", err))
		return
	}
	now := time.Now()
	if wait := ev.NotBefore.Sub(now); wait > 0 {
		_ = msg.NakWithDelay(wait) // a retry's delay; not an attempt
		return
	}
	t, err := d.fns.ResolveForInvoke(d.ctx, ev.Function, ev.Qualifier, rand.Float64())
	if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		d.drop(msg, ev, "its function or qualifier no longer exists")
		return
	}
	if err != nil {
		d.later(msg, ev, err)
		return
	}
	fn := t.Function
	cfg := d.opts.Config(ev.Function, ev.Qualifier)
	if maxAge := cfg.MaxAge(); now.Sub(ev.Accepted) > maxAge {
		d.fail(msg, ev, fn, cfg, conditionAge, nil, fmt.Sprintf("older than its maximum event age (%v)", maxAge))
		return
	}
	if ev.Depth >= registry.MaxChainDepth && (d.opts.RecursionAllowed == nil || !d.opts.RecursionAllowed(ev.Function)) {
		d.loops.Add(1)
		d.fail(msg, ev, fn, cfg, conditionLoop, nil, fmt.Sprintf("a recursive loop: %d hops from event %s (the function's recursion config is Terminate)", ev.Depth, ev.Origin))
		return
	}
	out, err := d.invoke(msg, fn, ev)
	if err != nil {
		d.later(msg, ev, err)
		return
	}
	d.settle()
	res := &result{out: out, version: fn.Version}
	switch {
	case !out.FunctionError:
		d.delivered.Add(1)
		d.toDestination(ev, cfg.OnSuccess, record(ev, d.fns.ARN(ev.Function, ev.Qualifier), conditionSuccess, res))
		d.ack(msg, ev)
	case ev.Attempt <= cfg.Retries():
		d.retry(msg, ev, out)
	default:
		d.fail(msg, ev, fn, cfg, conditionRetries, res,
			fmt.Sprintf("function error (%s) on attempt %d, retries exhausted", out.ErrorType, ev.Attempt))
	}
}

// fail gives an event up: its record goes to the OnFailure destination,
// its payload to the function's dead-letter target, if they are set.
func (d *Delivery) fail(msg jetstream.Msg, ev Event, fn registry.Function, cfg registry.EventInvokeConfig, condition string, res *result, reason string) {
	d.toDestination(ev, cfg.OnFailure, record(ev, d.fns.ARN(ev.Function, ev.Qualifier), condition, res))
	d.toDeadLetter(ev, fn.DeadLetterTarget)
	d.drop(msg, ev, reason)
}

// invoke runs the event, telling JetStream the delivery is in progress
// while it does.
func (d *Delivery) invoke(msg jetstream.Msg, fn registry.Function, ev Event) (Outcome, error) {
	defer KeepInProgress(ackWait/3, msg)()
	return d.inv.Invoke(d.ctx, fn, Request{
		RequestID: ev.RequestID, Payload: ev.Payload, TraceID: ev.TraceID,
		InvokedARN: d.fns.ARN(ev.Function, ev.Qualifier), Depth: ev.Depth, Origin: cmp.Or(ev.Origin, ev.RequestID),
		Queued: latest(ev.Accepted, ev.NotBefore),
	})
}

// retry stores the event's next attempt, due after the retry delay, then
// finishes this one. A crash between the two delivers the next attempt
// twice at most (at least once).
func (d *Delivery) retry(msg jetstream.Msg, ev Event, out Outcome) {
	next := ev
	next.NotBefore = time.Now().Add(d.opts.RetryDelay << (ev.Attempt - 1))
	next.Attempt++
	if err := d.q.store(d.ctx, next, nil); err != nil {
		d.later(msg, ev, fmt.Errorf("storing the retry: %w", err))
		return
	}
	d.retried.Add(1)
	d.log.Info("asynchronous invocation failed; retrying", "request_id", ev.RequestID, "function", ev.Function,
		"attempt", ev.Attempt, "error_type", out.ErrorType, "retry_at", next.NotBefore.Format(time.RFC3339Nano))
	d.ack(msg, ev)
}

// later puts the event back for another try of the same attempt: it was
// throttled, found no capacity, or Owl failed to run it. The waits double
// from a second up to ThrottleBackoff; the maximum event age still holds.
func (d *Delivery) later(msg jetstream.Msg, ev Event, err error) {
	if d.ctx.Err() != nil {
		_ = msg.Nak() // closing: back to the queue, for the next start
		return
	}
	n := 1
	if md, mdErr := msg.Metadata(); mdErr == nil {
		n = int(min(md.NumDelivered, 20))
	}
	wait := min(d.opts.ThrottleBackoff, time.Second<<(n-1))
	if lambdaerr.Is(err, lambdaerr.TooManyRequests) {
		d.throttled.Add(1)
		d.log.Debug("asynchronous invocation throttled; waiting", "request_id", ev.RequestID, "function", ev.Function, "wait", wait)
	} else {
		d.log.Warn("asynchronous invocation did not run; trying again", "request_id", ev.RequestID, "function", ev.Function,
			"err", err, "wait", wait)
	}
	_ = msg.NakWithDelay(wait)
}

func (d *Delivery) settle() {
	if d.opts.Settled != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.opts.Settled(ctx)
	}
}

func (d *Delivery) drop(msg jetstream.Msg, ev Event, reason string) {
	d.dropped.Add(1)
	d.log.Warn("asynchronous invocation dropped", "request_id", ev.RequestID, "function", ev.Function,
		"attempt", ev.Attempt, "reason", reason)
	d.ack(msg, ev)
}

func (d *Delivery) ack(msg jetstream.Msg, ev Event) {
	// DoubleAck: the record is gone from the work queue when it returns,
	// so a restart right after does not deliver it again.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil && !errors.Is(err, context.Canceled) {
		d.log.Warn("acknowledging an asynchronous invocation", "request_id", ev.RequestID, "err", err)
	}
}

// Stats returns the counts so far.
func (d *Delivery) Stats() Stats {
	return Stats{Accepted: d.q.Accepted(), Unrecorded: d.q.unrecorded.Load(), Replayed: d.q.replayed.Load(), Loops: d.loops.Load(), Delivered: d.delivered.Load(), Retried: d.retried.Load(), Dropped: d.dropped.Load(), Throttled: d.throttled.Load(),
		Destined: d.destined.Load(), DestinationFailed: d.destinationFailed.Load()}
}

// Close stops taking events and ends the running deliveries; their events
// stay in the queue, unacknowledged, and are delivered again by the next
// start (at least once).
func (d *Delivery) Close() {
	d.cancel()
	// Drain, not Stop: the messages already pulled reach receive, which
	// hands them back at once; dropped from the buffer, they would wait
	// out ackWait before the next start saw them.
	for _, cc := range d.cc {
		cc.Drain()
	}
	timeout := time.After(10 * time.Second)
	for _, cc := range d.cc {
		select {
		case <-cc.Closed():
		case <-timeout:
		}
	}
	d.wg.Wait()
}

// latest is the later of two times.
func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
