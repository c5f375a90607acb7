package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	cloudevent "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/natsbus"
)

// The event log keeps every event Owl accepted as an immutable CloudEvents
// 1.0 record (the SDK's envelope and JSON format), append-only in a
// JetStream stream of its own whose retention is bounded by age and size:
// the oldest records go first. The work queue (queue.go) forgets an event
// once it is delivered; the log keeps it for listing and replay.
const (
	logStreamName    = "OWL_EVENTLOG"
	logSubjectPrefix = "owl.eventlog." // owl.eventlog.<function>.<event id>
)

// The types of the events in the log.
const (
	// TypeInvoke is an asynchronous invocation a client made through the
	// API (Invoke with the Event type, or InvokeAsync).
	TypeInvoke = "owl.invoke"
	// TypeDestination is a record delivery sent to a function that is an
	// event invoke config's OnSuccess or OnFailure destination, or a
	// dead-letter target.
	TypeDestination = "owl.invoke.destination"
	// TypeReplay is an event re-delivered by a replay; its replayof
	// extension is the id of the event it replays.
	TypeReplay = "owl.invoke.replay"
	// TypeNATS is a message an event source mapping read from a NATS
	// subject (internal/sources); its source is the mapping's ARN.
	TypeNATS = "owl.nats"
	// TypeSchedule is a firing of a schedule (internal/triggers); its
	// source is the schedule's ARN.
	TypeSchedule = "owl.schedule"
)

// The log's extension attributes (CloudEvents names: lower-case letters
// and digits).
const (
	extQualifier = "owlqualifier" // the version or alias invoked
	extReplayOf  = "owlreplayof"  // a replay's original event id
	extDepth     = "owldepth"     // hops from the chain's first event
	extOrigin    = "owlorigin"    // the chain's first event id
)

// Sources of the events in the log, by how they came (a destination
// record's source is the ARN of the function whose outcome it carries).
const (
	sourceAPI    = "owl:api"
	sourceReplay = "owl:replay"
)

// LogOptions bound the event log.
type LogOptions struct {
	// MaxAge is how long a record is kept.
	MaxAge time.Duration
	// MaxBytes bounds the log's size; past it the oldest records go.
	MaxBytes int64
}

// origin is how an event came to be stored: its log record's type and
// source, and the event a replay replays.
type origin struct {
	typ, source, replayOf string
}

// openLog creates or updates the event log's stream.
func openLog(ctx context.Context, js jetstream.JetStream, opts LogOptions) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        logStreamName,
		Description: "Owl's event log: every accepted event, as CloudEvents, for listing and replay",
		Subjects:    []string{logSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      opts.MaxAge,
		MaxBytes:    opts.MaxBytes,
		MaxMsgSize:  MaxPayload + 64<<10,
		Storage:     jetstream.FileStorage,
		// One record per event id, however often a record is offered.
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the event log: %w", err)
	}
	return s, nil
}

// cloudEvent is ev's record in the log.
func cloudEvent(ev Event, o origin) (cloudevent.Event, error) {
	ce := cloudevent.New()
	ce.SetID(ev.RequestID)
	ce.SetType(o.typ)
	ce.SetSource(o.source)
	ce.SetSubject(ev.Function)
	ce.SetTime(ev.Accepted)
	if ev.Qualifier != "" {
		ce.SetExtension(extQualifier, ev.Qualifier)
	}
	if o.replayOf != "" {
		ce.SetExtension(extReplayOf, o.replayOf)
	}
	if ev.Depth > 0 {
		ce.SetExtension(extDepth, ev.Depth)
		ce.SetExtension(extOrigin, ev.Origin)
	}
	// RawMessage, not []byte: the SDK would carry bytes as data_base64.
	if err := ce.SetData(cloudevent.ApplicationJSON, json.RawMessage(ev.Payload)); err != nil {
		return ce, fmt.Errorf("event %s: %w", ev.RequestID, err)
	}
	if err := ce.Validate(); err != nil {
		return ce, fmt.Errorf("event %s: %w", ev.RequestID, err)
	}
	return ce, nil
}

// record sends ev's record to the log without waiting; recorded awaits
// it. A record that cannot be written is logged and counted, not
// returned: the event is delivered all the same.
func (q *Queue) record(ev Event, o origin) jetstream.PubAckFuture {
	if q.logBroken.Load() {
		q.unrecordedBecause(ev, errors.New("JetStream stopped writing to the event log after a failed write; restart owl serve once there is disk space"))
		return nil
	}
	ce, err := cloudEvent(ev, o)
	var data []byte
	if err == nil {
		data, err = json.Marshal(ce)
	}
	var f jetstream.PubAckFuture
	if err == nil {
		f, err = q.js.PublishAsync(logSubjectPrefix+ev.Function+"."+ev.RequestID, data, jetstream.WithMsgID(ev.RequestID))
	}
	if err != nil {
		q.unrecordedBecause(ev, err)
		return nil
	}
	return f
}

// recorded waits for ev's record; stored says whether the queue took ev
// (if not, the record goes: the log holds accepted events only).
func (q *Queue) recorded(ctx context.Context, ev Event, f jetstream.PubAckFuture, stored bool) {
	select {
	case ack := <-f.Ok():
		if !stored {
			if err := q.log.DeleteMsg(context.WithoutCancel(ctx), ack.Sequence); err != nil {
				q.opts.Logger.Warn("the event log keeps the record of an event that was not accepted",
					"request_id", ev.RequestID, "err", err)
			}
		}
	case err := <-f.Err():
		if natsbus.InProcess(err) {
			// Another node records the same event now (a schedule's
			// firing): publishing again waits for its outcome.
			if ack, err2 := q.js.PublishMsg(context.WithoutCancel(ctx), f.Msg()); err2 == nil {
				if !stored && !ack.Duplicate {
					_ = q.log.DeleteMsg(context.WithoutCancel(ctx), ack.Sequence)
				}
				return
			}
		}
		if stored {
			q.unrecordedBecause(ev, err)
		}
	case <-ctx.Done():
		if stored {
			q.unrecordedBecause(ev, ctx.Err())
		}
	case <-time.After(logWait):
		// JetStream does not answer a write to a stream it stopped
		// writing to (a full disk): say so once, then skip the log.
		if q.opts.WriteError != nil && q.opts.WriteError(logStreamName) != nil {
			q.logBroken.Store(true)
		}
		if stored {
			q.unrecordedBecause(ev, fmt.Errorf("the event log did not confirm the record within %v", logWait))
		}
	}
}

// logWait bounds how long an event waits for its log record (a publish's
// own timeout).
const logWait = 5 * time.Second

func (q *Queue) unrecordedBecause(ev Event, err error) {
	q.unrecorded.Add(1)
	q.opts.Logger.Warn("an accepted event is missing from the event log", "request_id", ev.RequestID,
		"function", ev.Function, "err", err)
}

// Log writes ev's record alone (an event that reaches its function
// another way than the queue: a message a subject's mapping read).
func (q *Queue) Log(ctx context.Context, ev Event, typ, source string) {
	if ev.Accepted.IsZero() {
		ev.Accepted = time.Now()
	}
	if f := q.record(ev, origin{typ: typ, source: source}); f != nil {
		q.recorded(ctx, ev, f, true)
	}
}

// Unrecorded counts accepted events whose log record could not be written.
func (q *Queue) Unrecorded() int64 { return q.unrecorded.Load() }

// Filter selects records of the log.
type Filter struct {
	// Function selects the events of one function; "" all.
	Function string
	// Since and Until bound the records' times (when they were stored),
	// both inclusive; zero: unbounded.
	Since, Until time.Time
	// After continues a listing after the record with this position
	// (Entry.Position); 0 starts at Since.
	After uint64
	// Limit bounds how many records are returned; 0: no bound.
	Limit int
}

// Entry is one record of the log and its position in it.
type Entry struct {
	Event    cloudevent.Event
	Position uint64
}

// List returns the records f selects, oldest first, and whether more
// follow past Limit (list again with After set to the last Position).
func (q *Queue) List(ctx context.Context, f Filter) (entries []Entry, more bool, err error) {
	err = q.scan(ctx, f, func(e Entry) bool {
		if f.Limit > 0 && len(entries) == f.Limit {
			more = true
			return false
		}
		entries = append(entries, e)
		return true
	})
	return entries, more, err
}

// Get returns the record of the event with id: ResourceNotFound when the
// log has none (never had, or it aged out).
func (q *Queue) Get(ctx context.Context, id string) (cloudevent.Event, error) {
	var ce cloudevent.Event
	if !validID(id) {
		return ce, lambdaerr.New(lambdaerr.InvalidParameterValue, "%q is not an event id", id)
	}
	m, err := q.log.GetLastMsgForSubject(ctx, logSubjectPrefix+"*."+id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return ce, lambdaerr.New(lambdaerr.ResourceNotFound, "Event not found: %s (never logged, or past the log's retention)", id)
	}
	if err != nil {
		return ce, fmt.Errorf("reading event %s: %w", id, err)
	}
	if err := json.Unmarshal(m.Data, &ce); err != nil {
		return ce, fmt.Errorf("decoding event %s: %w", id, err)
	}
	return ce, nil
}

// Has says whether the log has a record of the event id of function fn
// (one lookup of an exact subject, unlike Get's by id alone).
func (q *Queue) Has(ctx context.Context, fn, id string) (bool, error) {
	if !validID(id) {
		return false, lambdaerr.New(lambdaerr.InvalidParameterValue, "%q is not an event id", id)
	}
	_, err := q.log.GetLastMsgForSubject(ctx, logSubjectPrefix+fn+"."+id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading event %s: %w", id, err)
	}
	return true, nil
}

// validID says whether id can be a token of the log's subjects (event ids
// are request ids: letters, digits and dashes).
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// scan calls fn with each record f selects (Limit aside), oldest first,
// until fn returns false. It reads what the log held when it began:
// records appended meanwhile (a replay's own) are not reached.
func (q *Queue) scan(ctx context.Context, f Filter, fn func(Entry) bool) error {
	subject := logSubjectPrefix + ">"
	if f.Function != "" {
		subject = logSubjectPrefix + f.Function + ".*"
	}
	info, err := q.log.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading the event log: %w", err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 || f.After >= last {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}}
	switch {
	case f.After > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f.After+1
	case !f.Since.IsZero():
		since := f.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := q.log.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("reading the event log: %w", err)
	}
	defer q.deleteConsumer(q.log, cons)
	for {
		msgs, batchErr := natsbus.FetchNoWait(cons, 256)
		n := 0
		for _, m := range msgs {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("reading the event log: %w", err)
			}
			if meta.Sequence.Stream > last || !f.Until.IsZero() && meta.Timestamp.After(f.Until) {
				return nil
			}
			var ce cloudevent.Event
			if err := json.Unmarshal(m.Data(), &ce); err != nil {
				q.opts.Logger.Warn("skipping an unreadable event log record", "position", meta.Sequence.Stream, "err", err)
			} else if !fn(Entry{Event: ce, Position: meta.Sequence.Stream}) {
				return nil
			}
			if meta.NumPending == 0 {
				return nil
			}
		}
		if err := batchErr; err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("reading the event log: %w", err)
		}
		if n == 0 {
			return nil // nothing past the start (a Since after the last record)
		}
	}
}

// deleteConsumer deletes a reader's consumer when its read is done, so
// clients polling the log cannot pile consumers up to JetStream's limit.
func (q *Queue) deleteConsumer(s jetstream.Stream, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.DeleteConsumer(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		q.opts.Logger.Debug("deleting an event log reader's consumer", "consumer", info.Name, "err", err)
	}
}

// ReplayRequest asks to re-deliver the events a function received in a
// time range, to it or to another function.
type ReplayRequest struct {
	// Function whose events are replayed; Since and Until bound them
	// (Until zero: up to now).
	Function     string
	Since, Until time.Time
	// Target and TargetQualifier are the function (and version or alias)
	// the events go to; Target "" is Function, each event with the
	// qualifier it was invoked with.
	Target, TargetQualifier string
}

// Replay re-delivers the events of r.Function in r's range as new
// asynchronous invocations (new request ids; their records say which
// event each replays), in the order they happened. Earlier replays in
// the range are not replayed again: a replay re-runs what happened. The
// events are delivered as any asynchronous invocation, within the
// target's concurrency. A queue that fills stops the replay: the error
// says how far it got, and the list has what it stored.
func (q *Queue) Replay(ctx context.Context, r ReplayRequest) ([]lambdawire.ReplayedEvent, error) {
	var done []lambdawire.ReplayedEvent
	var stop error
	f := Filter{Function: r.Function, Since: r.Since, Until: r.Until}
	err := q.scan(ctx, f, func(e Entry) bool {
		if e.Event.Type() == TypeReplay {
			return true
		}
		ev := Event{RequestID: lambdawire.NewRequestID(), Function: r.Target, Qualifier: r.TargetQualifier,
			Payload: json.RawMessage(e.Event.Data()), Accepted: time.Now()}
		if r.Target == "" {
			ev.Function = r.Function
			ev.Qualifier, _ = e.Event.Extensions()[extQualifier].(string)
		}
		if stop = q.store(ctx, ev, &origin{typ: TypeReplay, source: sourceReplay, replayOf: e.Event.ID()}); stop != nil {
			return false
		}
		done = append(done, lambdawire.ReplayedEvent{ID: ev.RequestID, ReplayOf: e.Event.ID()})
		return true
	})
	if err == nil && stop != nil {
		err = stop
		var le *lambdaerr.Error
		if errors.As(stop, &le) {
			err = &lambdaerr.Error{Code: le.Code, RetryAfter: le.RetryAfter,
				Message: fmt.Sprintf("%s; the replay stopped after %d events (replay again from the next one)", le.Message, len(done))}
		}
	}
	q.replayed.Add(int64(len(done)))
	return done, err
}
