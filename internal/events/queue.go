// Package events owns asynchronous invocation: the durable store of the
// events Owl accepted (X-Amz-Invocation-Type: Event, and Lambda's legacy
// InvokeAsync) in JetStream — the event log, whose record of an event is
// also its place in the queue (eventlog.go), and a work queue of retries
// — and the delivery loop that hands them to functions at least once,
// retrying function errors and waiting out throttles, within each
// function's event invoke config.
//
// An event is accepted (the API answers 202) only once the log has
// stored it (Enqueue returns after JetStream's acknowledgement). Delivery
// acknowledges it only when it has a final outcome — success, retries
// exhausted, too old, or its function gone — so an Owl killed at any
// moment delivers what it had accepted after its restart, keeping each
// event's request id (a function can deduplicate on it).
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/diskspace"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/natsbus"
)

const (
	// streamName is the work queue of retries (and, from before the log
	// was the queue, of any event accepted then).
	streamName    = "OWL_EVENTS"
	subjectPrefix = "owl.events." // owl.events.<function>
	// MaxPayload is Lambda's limit on an asynchronous invocation's payload.
	MaxPayload = 1 << 20
)

// fullStore are the JetStream errors of a stream or store with no room:
// storing failed (a full stream with DiscardNew: "maximum bytes
// exceeded"), insufficient resources, insufficient storage.
var fullStore = map[jetstream.ErrorCode]bool{10077: true, 10023: true, 10047: true}

// Event is one accepted asynchronous invocation, as the work queue stores
// a retry of it (a new event is stored as its log record: eventlog.go).
type Event struct {
	// RequestID is the invocation's request id, the same on every delivery.
	RequestID string `json:"request_id"`
	Function  string `json:"function"`
	// Qualifier is the version or alias invoked ("" for $LATEST); an
	// alias is resolved, its weights drawn, at each delivery.
	Qualifier string          `json:"qualifier,omitempty"`
	Payload   json.RawMessage `json:"payload"`
	TraceID   string          `json:"trace_id,omitempty"`
	// Accepted is when the API accepted it; the event's age counts from it.
	Accepted time.Time `json:"accepted"`
	// Attempt is the delivery attempt this record is for: 1, then 2 and 3
	// for the retries of a function error (each a record of its own).
	Attempt int `json:"attempt"`
	// NotBefore delays a retry's delivery.
	NotBefore time.Time `json:"not_before,omitzero"`
	// Depth counts the hops from the event that began the chain (0: a
	// client's invocation, a trigger's firing, a replay); a destination
	// record or dead letter sent to a function is one hop further. Origin
	// is the request id of the chain's first event.
	Depth  int    `json:"depth,omitempty"`
	Origin string `json:"origin,omitempty"`
}

// Options configure the queue.
type Options struct {
	// MaxBytes bounds the work queue of retries, and the event log when
	// Log.MaxBytes is 0; when the log is full of events not yet
	// delivered, Enqueue fails (the API refuses the event) rather than
	// drop an accepted one.
	MaxBytes int64
	// Space refuses new events when the disk is below its reserve.
	Space *diskspace.Guard
	// Log bounds the event log (eventlog.go).
	Log LogOptions
	// WriteError reports whether JetStream stopped writing to the event
	// stream after a failed write (natsbus.Bus.StreamWriteError): a disk
	// filled to the last byte from under the reserve. Such a stream takes
	// no write until a restart, and JetStream does not answer the publish
	// that failed; Enqueue asks after a publish failed, then refuses at
	// once. Nil: never asked.
	WriteError func(stream string) error
	Logger     *slog.Logger
}

// Queue is the durable store of accepted events.
type Queue struct {
	js       jetstream.JetStream
	stream   jetstream.Stream
	log      jetstream.Stream     // the event log (eventlog.go)
	cursor   jetstream.Consumer   // delivery's consumer of the log
	space    *diskspace.Allowance // Options.Space, a MiB of checks at a time
	opts     Options
	accepted atomic.Int64 // clients' events stored by Enqueue
	// unrecorded counts the records Log could not write; replayed
	// counts the events replays stored.
	unrecorded, replayed atomic.Int64
	// logBroken: JetStream stopped writing to the event log; records are
	// skipped (and counted) until a restart.
	logBroken atomic.Bool
	// broken is the refusal of every store once JetStream stopped writing
	// to a stream of events (Options.WriteError), until a restart opens
	// it anew.
	broken atomic.Pointer[lambdaerr.Error]
	// trimming serializes trims of the log (trim); trimmedAt is when the
	// last one ended.
	trimming  sync.Mutex
	trimmedAt time.Time
}

// Open creates or updates the event log, its delivery cursor and the work
// queue of retries.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Queue, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        streamName,
		Description: "Owl's retries of asynchronous invocations, until delivered",
		Subjects:    []string{subjectPrefix + ">"},
		// A work queue: a record goes when delivery acknowledges it. It
		// never ages out and a full stream refuses new records, so nothing
		// accepted is dropped by the store.
		Retention:  jetstream.WorkQueuePolicy,
		Discard:    jetstream.DiscardNew,
		MaxBytes:   opts.MaxBytes,
		MaxMsgSize: MaxPayload + 64<<10,
		Storage:    jetstream.FileStorage,
		// Enqueue's message id (request id and attempt) makes a client's
		// or a retry's second publish of the same record a no-op.
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the event stream: %w", err)
	}
	if opts.Log.MaxBytes == 0 {
		opts.Log.MaxBytes = opts.MaxBytes
	}
	l, cursor, err := openLog(ctx, js, opts.Log)
	if err != nil {
		return nil, err
	}
	return &Queue{js: js, stream: s, log: l, cursor: cursor, opts: opts, space: opts.Space.NewAllowance()}, nil
}

// Enqueue stores ev, an event a client invoked, and returns once the
// event log has its record (which delivery reads). An error means the
// event was not accepted: a full disk or log is a 503 the client may
// retry.
func (q *Queue) Enqueue(ctx context.Context, ev Event) error {
	return q.enqueue(ctx, ev, &origin{typ: TypeInvoke, source: sourceAPI, fresh: true})
}

// EnqueueFrom is Enqueue for an event a trigger made: its log record
// says its type (TypeSchedule, …) and source (the trigger's ARN). The
// same request id stored twice within two minutes is stored once.
func (q *Queue) EnqueueFrom(ctx context.Context, ev Event, typ, source string) error {
	return q.enqueue(ctx, ev, &origin{typ: typ, source: source})
}

func (q *Queue) enqueue(ctx context.Context, ev Event, o *origin) error {
	if ev.Accepted.IsZero() {
		ev.Accepted = time.Now()
	}
	if err := q.store(ctx, ev, o); err != nil {
		return err
	}
	q.accepted.Add(1)
	return nil
}

// store stores ev: a new event (o set: a client's, a trigger's, a record
// for a destination function, a replayed one) as its record in the event
// log, one message that delivery reads from there; or a retry (o nil) in
// the work queue. It returns once JetStream acknowledged the message.
func (q *Queue) store(ctx context.Context, ev Event, o *origin) error {
	if ev.Attempt == 0 {
		ev.Attempt = 1
	}
	if ev.Accepted.IsZero() {
		ev.Accepted = time.Now()
	}
	if len(ev.Payload) > MaxPayload {
		return lambdaerr.New(lambdaerr.RequestTooLarge, "%d byte payload is too large for the Event invocation type (limit %d bytes)", len(ev.Payload), MaxPayload)
	}
	if err := q.space.Spend(int64(len(ev.Payload))); err != nil {
		if diskspace.IsLow(err) {
			return unavailable("Owl's storage is full: " + err.Error() + "; the event was not accepted")
		}
		return fmt.Errorf("checking free disk space: %w", err)
	}
	if broken := q.broken.Load(); broken != nil {
		return broken
	}
	stream, m, id, err := q.message(ev, o)
	if err != nil {
		return err
	}
	err = q.publish(ctx, m, id)
	if err != nil && o != nil && isFull(err) {
		// The log is full: trim what delivery is done with, then try
		// once more before refusing.
		if terr := q.trimRefused(ctx); terr != nil {
			q.opts.Logger.Warn("trimming the full event log", "err", terr)
		}
		err = q.publish(ctx, m, id)
	}
	if err == nil {
		return nil
	}
	return q.refusal(ctx, ev, stream, err)
}

// publishWait bounds how long a publish waits for JetStream's
// acknowledgement (a synchronous publish's own default).
const publishWait = 5 * time.Second

// publish stores m and returns once JetStream acknowledged it: an
// asynchronous publish whose acknowledgement is awaited, which costs
// JetStream's client less than a synchronous one (no request context and
// reply channel of its own). id, when set, makes a second publish of the
// same id within the stream's duplicate window a no-op. No answer within
// publishWait is context.DeadlineExceeded.
func (q *Queue) publish(ctx context.Context, m *nats.Msg, id string) error {
	var opts []jetstream.PublishOpt
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	f, err := q.js.PublishMsgAsync(m, opts...)
	if err != nil {
		return err
	}
	timer := time.NewTimer(publishWait)
	defer timer.Stop()
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		if natsbus.InProcess(err) {
			// Another node of a cluster stores the same id now (a
			// schedule's firing): publishing again waits for its outcome,
			// a duplicate's acknowledgement once it is stored.
			_, err = q.js.PublishMsg(ctx, m, opts...)
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return context.DeadlineExceeded
	}
}

// message is ev's message, the stream it goes to and its message id (a
// second publish of the same id is stored once; none for an event whose
// request id was made for it, which nothing stores twice).
func (q *Queue) message(ev Event, o *origin) (stream string, m *nats.Msg, id string, err error) {
	if o == nil {
		data, err := json.Marshal(ev)
		if err != nil {
			return "", nil, "", fmt.Errorf("encoding event %s: %w", ev.RequestID, err)
		}
		m := nats.NewMsg(subjectPrefix + ev.Function)
		m.Data = data
		return streamName, m, ev.RequestID + "/" + strconv.Itoa(ev.Attempt), nil
	}
	data, err := encodeRecord(ev, *o)
	if err != nil {
		return "", nil, "", err
	}
	if o.fresh {
		return logStreamName, logMsg(ev, data), "", nil
	}
	return logStreamName, logMsg(ev, data), ev.RequestID, nil
}

// isFull says whether err is JetStream's refusal of a stream or store
// with no room.
func isFull(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && fullStore[apiErr.ErrorCode]
}

// refusal is the error of an event stream refused to store (a publish
// to stream that failed with err).
func (q *Queue) refusal(ctx context.Context, ev Event, stream string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && fullStore[apiErr.ErrorCode] {
		return unavailable("the event queue is full (" + apiErr.Description + "); the event was not accepted")
	}
	if q.opts.WriteError != nil {
		if werr := q.opts.WriteError(stream); werr != nil {
			cause := "a write error"
			if strings.Contains(werr.Error(), "no space left") {
				cause = "no space left on device"
			}
			broken := unavailable("Owl's event store stopped writing after a failed write (" + cause +
				"): free disk space on the data directory, then restart owl serve; the event was not accepted")
			q.broken.CompareAndSwap(nil, broken)
			q.opts.Logger.Error("an event stream stopped taking writes; refusing events until a restart", "stream", stream, "err", werr)
			return q.broken.Load()
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// JetStream did not answer: the event may yet be stored (and
		// then run), but it was not confirmed, so it is not accepted.
		return unavailable("the event store did not confirm storing the event in time; the event was not accepted")
	}
	return fmt.Errorf("storing event %s: %w", ev.RequestID, err)
}

// Accepted is how many events clients invoked that Enqueue stored since
// Open (not retries, not records sent to destinations).
func (q *Queue) Accepted() int64 { return q.accepted.Load() }

// Pending is the number of events stored and not yet finished.
func (q *Queue) Pending(ctx context.Context) (uint64, error) {
	n, _, err := q.Backlog(ctx)
	return n, err
}

// Backlog is the number of events stored and not yet finished, and when
// the oldest of them was stored (zero when none is): the log's records
// past delivery's acknowledgement floor (pending or in delivery) and the
// work queue's retries.
func (q *Queue) Backlog(ctx context.Context) (n uint64, oldest time.Time, err error) {
	info, err := q.stream.Info(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("reading the event stream: %w", err)
	}
	if info.State.Msgs > 0 {
		n, oldest = info.State.Msgs, info.State.FirstTime
	}
	ci, err := q.cursor.Info(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("reading the event log's delivery cursor: %w", err)
	}
	waiting := ci.NumPending + uint64(ci.NumAckPending)
	// The consumer counts a record the log stored only once it has seen
	// it: under load, a moment after Enqueue returned. Records past what
	// it delivered count even before then (the cursor reads every record).
	li, err := q.log.Info(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("reading the event log: %w", err)
	}
	if last, seen := li.State.LastSeq, ci.Delivered.Stream+ci.NumPending; last > seen {
		waiting += last - seen
	}
	if waiting == 0 {
		return n, oldest, nil
	}
	// The first record past the floor is the oldest not finished.
	if m, err := q.log.GetMsg(ctx, ci.AckFloor.Stream+1); err == nil && (oldest.IsZero() || m.Time.Before(oldest)) {
		oldest = m.Time
	}
	return n + waiting, oldest, nil
}

func unavailable(msg string) *lambdaerr.Error {
	return &lambdaerr.Error{Code: lambdaerr.ServiceUnavailable, RetryAfter: 5, Message: msg}
}
