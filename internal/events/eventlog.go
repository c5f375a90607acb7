package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	cloudevent "github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/natsbus"
)

// The event log keeps every event Owl accepted as an immutable CloudEvents
// 1.0 record (the SDK's envelope and JSON format), append-only in a
// JetStream stream of its own, and its record is also the event's place
// in the queue: delivery reads the log through a durable consumer
// (cursorName), so accepting an event stores one message, not two. Only
// retries wait in the work queue (queue.go), as records of their own.
//
// The log's retention cannot drop an event not yet delivered: the stream
// refuses new records when full (DiscardNew; the API answers 503) and has
// no age limit of its own; Owl trims it (trim), purging the oldest records
// past --event-log-age, or past three quarters of its bytes, but never
// past the delivery consumer's acknowledgement floor.
const (
	logStreamName    = "OWL_EVENTLOG"
	logSubjectPrefix = "owl.eventlog." // owl.eventlog.<function>.<event id>
	// cursorName is the durable consumer delivery reads the log with.
	cursorName = "owl-delivery"
	// logOnlyHeader marks a record that is not delivered from the log
	// (a message a subject's mapping read: it reaches its function
	// through the mapping).
	logOnlyHeader = "Owl-Log-Only"
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
	extTrace     = "owltrace"     // the trace header the event was invoked with
)

// Sources of the events in the log, by how they came (a destination
// record's source is the ARN of the function whose outcome it carries).
const (
	sourceAPI    = "owl:api"
	sourceReplay = "owl:replay"
)

// LogOptions bound the event log (trim: the record of an event not yet
// finished is kept past both).
type LogOptions struct {
	// MaxAge is how long the record of a finished event is kept.
	MaxAge time.Duration
	// MaxBytes bounds the log's size: past three quarters of it the
	// oldest finished records go; full, it refuses new records. 0: the
	// work queue's MaxBytes (Options).
	MaxBytes int64
}

// origin is how an event came to be stored: its log record's type and
// source, and the event a replay replays. fresh: its request id was made
// for this request (a client's Invoke), so nothing can store it twice.
type origin struct {
	typ, source, replayOf string
	fresh                 bool
}

// openLog creates or updates the event log's stream and the delivery
// consumer's cursor on it. The cursor starts after the records already
// there: a log written before the log was the queue holds events the
// work queue had too.
func openLog(ctx context.Context, js jetstream.JetStream, opts LogOptions) (jetstream.Stream, jetstream.Consumer, error) {
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        logStreamName,
		Description: "Owl's event log: every accepted event, as CloudEvents, for listing, replay and delivery",
		Subjects:    []string{logSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		// Full, it refuses: the oldest record may not be delivered yet.
		// Owl trims delivered records by age and size (trim).
		Discard:    jetstream.DiscardNew,
		MaxBytes:   opts.MaxBytes,
		MaxMsgSize: MaxPayload + 64<<10,
		Storage:    jetstream.FileStorage,
		// One record per event id, however often a record is offered.
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("opening the event log: %w", err)
	}
	c, err := s.CreateOrUpdateConsumer(ctx, cursorConfig(64))
	if err != nil {
		return nil, nil, fmt.Errorf("opening the event log's delivery cursor: %w", err)
	}
	return s, c, nil
}

// cursorConfig is the delivery consumer of the log, delivering up to
// pending events at once.
func cursorConfig(pending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       cursorName,
		Description:   "delivers accepted asynchronous invocations to their functions",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: pending,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	}
}

// cloudEvent is ev's record in the log.
func cloudEvent(ev Event, o origin) (cloudevent.Event, error) {
	ce := cloudevent.New()
	ce.SetID(ev.RequestID)
	ce.SetType(o.typ)
	if ec, ok := ce.Context.(*cloudevent.EventContextV1); ok && o.source == sourceAPI {
		ec.Source = apiSource // parsed once: most events are the API's
	} else {
		ce.SetSource(o.source)
	}
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
	if ev.TraceID != "" {
		ce.SetExtension(extTrace, ev.TraceID)
	}
	// The payload as it is, JSON (SetData would encode it again, and
	// carry bytes as data_base64).
	data := []byte(ev.Payload)
	if len(data) == 0 {
		data = []byte("null") // as SetData encodes none
	} else if !json.Valid(data) {
		return ce, fmt.Errorf("event %s: its payload is not JSON", ev.RequestID)
	}
	ce.SetDataContentType(cloudevent.ApplicationJSON)
	ce.DataEncoded = data
	if err := ce.Validate(); err != nil {
		return ce, fmt.Errorf("event %s: %w", ev.RequestID, err)
	}
	return ce, nil
}

// decodeEvent is the event msg holds: a record of the log (attempt 1) or
// a retry from the work queue.
func decodeEvent(msg jetstream.Msg) (Event, error) {
	var ev Event
	if !strings.HasPrefix(msg.Subject(), logSubjectPrefix) {
		err := json.Unmarshal(msg.Data(), &ev)
		return ev, err
	}
	var ce cloudevent.Event
	if err := ce.UnmarshalJSON(msg.Data()); err != nil {
		return ev, err
	}
	ev = Event{RequestID: ce.ID(), Function: ce.Subject(), Payload: json.RawMessage(ce.Data()), Accepted: ce.Time(), Attempt: 1}
	ext := ce.Extensions()
	ev.Qualifier, _ = ext[extQualifier].(string)
	ev.TraceID, _ = ext[extTrace].(string)
	ev.Origin, _ = ext[extOrigin].(string)
	if v, ok := ext[extDepth]; ok {
		depth, err := types.ToInteger(v)
		if err != nil {
			return ev, fmt.Errorf("the %s of event %s: %w", extDepth, ev.RequestID, err)
		}
		ev.Depth = int(depth)
	}
	return ev, nil
}

// apiSource is sourceAPI as a record's source.
var apiSource = func() types.URIRef {
	u, err := url.Parse(sourceAPI)
	if err != nil {
		panic(err)
	}
	return types.URIRef{URL: *u}
}()

// encodeRecord is ev's record in the log, in the CloudEvents JSON format.
func encodeRecord(ev Event, o origin) ([]byte, error) {
	ce, err := cloudEvent(ev, o)
	if err != nil {
		return nil, err
	}
	// The SDK's own writer (json.Marshal would compact its output again),
	// into a buffer with room for the record's attributes.
	var buf bytes.Buffer
	buf.Grow(len(ev.Payload) + 512)
	if err := cloudevent.WriteJson(&ce, &buf); err != nil {
		return nil, fmt.Errorf("encoding event %s: %w", ev.RequestID, err)
	}
	return buf.Bytes(), nil
}

// logMsg is the log's message of ev's record.
func logMsg(ev Event, data []byte) *nats.Msg {
	m := nats.NewMsg(logSubjectPrefix + ev.Function + "." + ev.RequestID)
	m.Data = data
	return m
}

// Log writes ev's record alone, marked not to be delivered (an event that
// reaches its function another way than the queue: a message a subject's
// mapping read). A record that cannot be written is logged and counted,
// not returned: the event reaches its function all the same.
func (q *Queue) Log(ctx context.Context, ev Event, typ, source string) {
	if ev.Accepted.IsZero() {
		ev.Accepted = time.Now()
	}
	if q.logBroken.Load() {
		q.unrecordedBecause(ev, errors.New("JetStream stopped writing to the event log after a failed write; restart owl serve once there is disk space"))
		return
	}
	data, err := encodeRecord(ev, origin{typ: typ, source: source})
	if err != nil {
		q.unrecordedBecause(ev, err)
		return
	}
	m := logMsg(ev, data)
	m.Header.Set(logOnlyHeader, "true")
	f, err := q.js.PublishMsgAsync(m, jetstream.WithMsgID(ev.RequestID))
	if err != nil {
		q.unrecordedBecause(ev, err)
		return
	}
	select {
	case <-f.Ok():
	case err := <-f.Err():
		q.unrecordedBecause(ev, err)
	case <-ctx.Done():
		q.unrecordedBecause(ev, ctx.Err())
	case <-time.After(logWait):
		// JetStream does not answer a write to a stream it stopped
		// writing to (a full disk): say so once, then skip the log.
		if q.opts.WriteError != nil && q.opts.WriteError(logStreamName) != nil {
			q.logBroken.Store(true)
		}
		q.unrecordedBecause(ev, fmt.Errorf("the event log did not confirm the record within %v", logWait))
	}
}

// logWait bounds how long a record of Log waits for its acknowledgement
// (a publish's own timeout).
const logWait = 5 * time.Second

func (q *Queue) unrecordedBecause(ev Event, err error) {
	q.unrecorded.Add(1)
	q.opts.Logger.Warn("an accepted event is missing from the event log", "request_id", ev.RequestID,
		"function", ev.Function, "err", err)
}

// Unrecorded counts the records Log could not write.
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
