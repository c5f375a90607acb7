package sources

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/events"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/tracing"
)

// Record is one message as the function gets it, in the batch's
// {"Records": [...]}.
type Record struct {
	EventSource    string            `json:"eventSource"` // "owl:nats", "owl:jetstream"
	EventSourceArn string            `json:"eventSourceArn"`
	Subject        string            `json:"subject"`
	MessageID      string            `json:"messageId"` // the stream's sequence
	Timestamp      string            `json:"timestamp"`
	Headers        map[string]string `json:"headers,omitempty"`
	// Body is the message, as text; a message that is not UTF-8 is in
	// base64 with IsBase64Encoded.
	Body            string `json:"body"`
	IsBase64Encoded bool   `json:"isBase64Encoded,omitempty"`
}

// counters are the mappings' statistics.
type counters struct {
	batches, filtered, failed, destined, loops atomic.Int64
}

// Stats count what the pollers did since the start.
type Stats struct {
	// Batches invoked, messages filtered out, messages given up (retries
	// exhausted; sent to OnFailure when set).
	Batches, Filtered, Failed int64
	// Loops counts batches stopped as recursive loops.
	Loops int64
}

// Stats reports the mappings' counts.
func (m *Mappings) Stats() Stats {
	return Stats{Batches: m.stats.batches.Load(), Filtered: m.stats.filtered.Load(), Failed: m.stats.failed.Load(),
		Loops: m.stats.loops.Load()}
}

// ackWait is how long JetStream waits before it redelivers a message a
// poller took; a batch being invoked reports progress every third of it.
const ackWait = 30 * time.Second

type poller struct {
	m       *Mappings
	mp      Mapping
	filters []*Pattern
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

func newPoller(m *Mappings, mp Mapping) *poller {
	p := &poller{m: m, mp: mp, done: make(chan struct{})}
	for _, f := range mp.Filters {
		if pat, err := ParsePattern(f); err == nil {
			p.filters = append(p.filters, pat)
		}
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

func (p *poller) stop() {
	p.once.Do(p.cancel)
	<-p.done
}

// run reads batches until stopped; a failure to read is retried.
func (p *poller) run() {
	defer close(p.done)
	var cons jetstream.Consumer
	for p.ctx.Err() == nil {
		if cons == nil {
			var err error
			if cons, err = p.consumer(); err != nil {
				if p.streamGone(err) {
					p.m.disable(p.mp.UUID, streamGone(p.mp))
					return
				}
				p.m.log.Warn("a mapping cannot read its subject; retrying", "uuid", p.mp.UUID, "subject", p.mp.Subject, "err", err)
				p.sleep(5 * time.Second)
				continue
			}
		}
		batch, err := p.next(cons)
		if err != nil {
			if p.ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
				p.m.log.Debug("reading a mapping's batch", "uuid", p.mp.UUID, "err", err)
				cons = nil
				p.sleep(time.Second)
			}
			continue
		}
		if len(batch) > 0 {
			p.process(batch)
		}
	}
}

// streamGone reports whether err says the user's stream p reads is not
// there, and stays so a moment later: a mapping whose stream went stops,
// saying so, instead of retrying into the void.
func (p *poller) streamGone(err error) bool {
	if p.mp.Stream == "" || !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false
	}
	p.sleep(time.Second)
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	_, err = p.m.js.Stream(ctx, p.mp.Stream)
	return p.ctx.Err() == nil && errors.Is(err, jetstream.ErrStreamNotFound)
}

func (p *poller) sleep(d time.Duration) {
	select {
	case <-p.ctx.Done():
	case <-time.After(d):
	}
}

func (p *poller) consumer() (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	return p.m.consumer(ctx, p.mp)
}

// consumer creates (or finds) mp's durable consumer. Create makes it
// before it returns, so that a message published after Create returns is
// the mapping's even with StartingPosition LATEST.
func (m *Mappings) consumer(ctx context.Context, mp Mapping) (jetstream.Consumer, error) {
	s, err := m.sourceStream(ctx, mp)
	if err != nil {
		return nil, err
	}
	deliver, start := jetstream.DeliverNewPolicy, (*time.Time)(nil)
	switch mp.StartingPosition {
	case "TRIM_HORIZON":
		deliver = jetstream.DeliverAllPolicy
	case "AT_TIMESTAMP":
		deliver, start = jetstream.DeliverByStartTimePolicy, &mp.StartingTimestamp
	}
	return s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       consumerName(mp.UUID),
		OptStartTime:  start,
		Description:   "event source mapping " + mp.UUID + " to " + mp.Function,
		FilterSubject: mp.Subject,
		DeliverPolicy: deliver,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: max(mp.BatchSize, 1) * 2,
	})
}

// next waits for a message, then takes what else is there up to the
// batch size, waiting up to the batching window for more.
func (p *poller) next(cons jetstream.Consumer) ([]jetstream.Msg, error) {
	first, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second)) // short: Close waits for it
	if err != nil {
		return nil, err
	}
	var batch []jetstream.Msg
	for msg := range first.Messages() {
		batch = append(batch, msg)
	}
	if err := first.Error(); err != nil && len(batch) == 0 {
		return nil, err
	}
	if len(batch) == 0 || p.mp.BatchSize == 1 {
		return batch, nil
	}
	var rest jetstream.MessageBatch
	if p.mp.BatchWindow > 0 {
		rest, err = cons.Fetch(p.mp.BatchSize-1, jetstream.FetchMaxWait(time.Duration(p.mp.BatchWindow)*time.Second))
	} else {
		rest, err = cons.FetchNoWait(p.mp.BatchSize - 1)
	}
	if err != nil {
		return batch, nil
	}
	for msg := range rest.Messages() {
		batch = append(batch, msg)
	}
	return batch, nil
}

// process filters a batch and invokes the function with what is left.
func (p *poller) process(batch []jetstream.Msg) {
	var kept []jetstream.Msg
	var records []Record
	for _, msg := range batch {
		rec := p.record(msg)
		if !p.keep(rec) {
			p.m.stats.filtered.Add(1)
			_ = msg.Ack()
			continue
		}
		kept = append(kept, msg)
		records = append(records, rec)
		p.m.q.Log(p.ctx, events.Event{RequestID: p.mp.UUID[:8] + "-" + rec.MessageID, Function: p.mp.Function,
			Qualifier: p.mp.Qualifier, Payload: logPayload(rec)}, events.TypeNATS, p.m.arn(p.mp.UUID))
	}
	if len(kept) > 0 {
		p.invoke(kept, records)
	}
}

func (p *poller) record(msg jetstream.Msg) Record {
	rec := Record{EventSource: "owl:nats", EventSourceArn: p.mp.ARN(), Subject: msg.Subject()}
	if p.mp.Stream != "" {
		rec.EventSource = "owl:jetstream"
	}
	if meta, err := msg.Metadata(); err == nil {
		rec.MessageID = strconv.FormatUint(meta.Sequence.Stream, 10)
		rec.Timestamp = meta.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	if h := msg.Headers(); len(h) > 0 {
		rec.Headers = map[string]string{}
		for k := range h {
			rec.Headers[k] = h.Get(k)
		}
	}
	if data := msg.Data(); utf8.Valid(data) {
		rec.Body = string(data)
	} else {
		rec.Body, rec.IsBase64Encoded = base64.StdEncoding.EncodeToString(data), true
	}
	return rec
}

// keep applies the mapping's filters to a record: its body is matched as
// JSON when it is JSON (the "body" key), its subject and headers as they
// are. No filters: every record is kept.
func (p *poller) keep(rec Record) bool {
	if len(p.filters) == 0 {
		return true
	}
	view := map[string]any{"subject": rec.Subject, "body": rec.Body}
	if v, err := decodeJSON([]byte(rec.Body)); err == nil && !rec.IsBase64Encoded {
		view["body"] = v
	}
	if rec.Headers != nil {
		h := map[string]any{}
		for k, v := range rec.Headers {
			h[k] = v
		}
		view["headers"] = h
	}
	for _, f := range p.filters {
		if f.Match(view) {
			return true
		}
	}
	return false
}

// logPayload is a record as the event log keeps it (JSON: the record).
func logPayload(rec Record) json.RawMessage {
	b, _ := json.Marshal(rec)
	return b
}

// batchResponse is what a function with ReportBatchItemFailures answers.
type batchResponse struct {
	BatchItemFailures []struct {
		ItemIdentifier string `json:"itemIdentifier"`
	} `json:"batchItemFailures"`
}

// invoke runs the function on a batch and settles each message: acked on
// success, retried later on failure (bisected first when the mapping
// says so), given up to OnFailure past the retries. A batch whose
// messages a chain of calls and events published past its depth limit is
// a recursive loop: given up without running.
func (p *poller) invoke(msgs []jetstream.Msg, records []Record) {
	depth, origin := chainOf(records)
	if depth >= registry.MaxChainDepth && !p.m.fns.RecursionAllowed(p.mp.Function) {
		p.m.stats.loops.Add(1)
		p.m.log.Warn("a recursive loop stopped: messages published by a chain past its depth", "uuid", p.mp.UUID,
			"function", p.mp.Function, "depth", depth, "origin", origin)
		for i, msg := range msgs {
			if p.mp.OnFailure != "" {
				p.toFailure(records[i], 0, events.Outcome{}, "RecursiveInvocationDetected")
			}
			_ = msg.Term()
		}
		return
	}
	out, err := p.call(msgs, records, depth, origin)
	if err != nil { // not run: throttled, no capacity, the function gone
		for _, msg := range msgs {
			_ = msg.NakWithDelay(p.m.opts.RetryDelay)
		}
		if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
			// The function (or its alias) is gone: the mapping stops and
			// says so; its messages wait for it to be enabled again.
			go p.m.disable(p.mp.UUID, "PROBLEM: Function not found: "+err.Error())
			return
		}
		p.sleep(p.m.opts.RetryDelay)
		return
	}
	p.m.stats.batches.Add(1)
	failed := map[string]bool{}
	switch {
	case out.FunctionError && p.mp.Bisect && len(msgs) > 1:
		half := len(msgs) / 2
		p.invoke(msgs[:half], records[:half])
		p.invoke(msgs[half:], records[half:])
		return
	case out.FunctionError:
		for _, r := range records {
			failed[r.MessageID] = true
		}
	case p.mp.ReportItemFailures:
		failed = itemFailures(out.Payload, records)
	}
	for i, msg := range msgs {
		if !failed[records[i].MessageID] {
			_ = msg.Ack()
			continue
		}
		p.retryOrGiveUp(msg, records[i], out)
	}
}

// itemFailures reads a ReportBatchItemFailures answer as Lambda does: no
// answer, null or an empty list is a success; an answer that is not such
// a list, or names an item that is not in the batch (or none), fails the
// whole batch.
func itemFailures(payload []byte, records []Record) map[string]bool {
	all := func() map[string]bool {
		m := map[string]bool{}
		for _, r := range records {
			m[r.MessageID] = true
		}
		return m
	}
	if p := bytes.TrimSpace(payload); len(p) == 0 || string(p) == "null" || string(p) == "{}" {
		return nil
	}
	var resp batchResponse
	if err := json.Unmarshal(payload, &resp); err != nil {
		return all()
	}
	in := all()
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		if !in[f.ItemIdentifier] {
			return in
		}
		failed[f.ItemIdentifier] = true
	}
	return failed
}

// call invokes the function with records, telling JetStream the batch is
// in progress meanwhile.
func (p *poller) call(msgs []jetstream.Msg, records []Record, depth int, origin string) (events.Outcome, error) {
	t, err := p.m.fns.ResolveForInvoke(p.ctx, p.mp.Function, p.mp.Qualifier, rand.Float64())
	if err != nil {
		return events.Outcome{}, err
	}
	payload, err := json.Marshal(map[string][]Record{"Records": records})
	if err != nil {
		return events.Outcome{}, err
	}
	defer events.KeepInProgress(ackWait/3, msgs...)()
	id := lambdawire.NewRequestID()
	var queued time.Time // when the first message was stored: the queue's span
	if len(msgs) > 0 {
		if meta, err := msgs[0].Metadata(); err == nil {
			queued = meta.Timestamp
		}
	}
	return p.m.inv.Invoke(p.ctx, t.Function, events.Request{RequestID: id, Payload: payload, TraceID: traceOf(records),
		InvokedARN: p.m.fns.ARN(p.mp.Function, p.mp.Qualifier), Depth: depth, Origin: cmp.Or(origin, id), Queued: queued})
}

// traceOf is the trace a batch is invoked in: the first record's whose
// message carries one (X-Amzn-Trace-Id or traceparent headers), else a
// new one.
func traceOf(records []Record) string {
	for _, r := range records {
		for k := range r.Headers {
			if strings.EqualFold(k, tracing.HeaderXRay) || strings.EqualFold(k, tracing.HeaderTraceparent) {
				return tracing.FromMap(r.Headers)
			}
		}
	}
	return tracing.NewHeader()
}

// retryOrGiveUp redelivers a failed message later, or past the
// mapping's retries sends its record to OnFailure and lets it go.
func (p *poller) retryOrGiveUp(msg jetstream.Msg, rec Record, out events.Outcome) {
	meta, err := msg.Metadata()
	attempts := 1
	if err == nil {
		attempts = int(meta.NumDelivered)
	}
	if p.mp.MaxRetries < 0 || attempts <= p.mp.MaxRetries {
		_ = msg.NakWithDelay(p.m.opts.RetryDelay << min(attempts-1, 8))
		return
	}
	p.m.stats.failed.Add(1)
	p.m.log.Warn("a message given up after its retries", "uuid", p.mp.UUID, "subject", rec.Subject, "message_id", rec.MessageID,
		"attempts", attempts, "error_type", out.ErrorType)
	if p.mp.OnFailure != "" {
		p.toFailure(rec, attempts, out, "RetryAttemptsExhausted")
	}
	_ = msg.Term()
}

// failureRecord is what OnFailure gets for a message given up: Lambda's
// invocation record, with the message itself (Owl's: a subject source
// has no batch info to look it up by).
type failureRecord struct {
	Version        string `json:"version"`
	Timestamp      string `json:"timestamp"`
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionArn            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	ResponseContext struct {
		StatusCode    int    `json:"statusCode"`
		FunctionError string `json:"functionError,omitempty"`
	} `json:"responseContext"`
	Record Record `json:"record"`
}

func (p *poller) toFailure(rec Record, attempts int, out events.Outcome, condition string) {
	var f failureRecord
	f.Version, f.Timestamp = "1.0", time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	f.RequestContext.RequestID = lambdawire.NewRequestID()
	f.RequestContext.FunctionArn = p.m.fns.ARN(p.mp.Function, p.mp.Qualifier)
	f.RequestContext.Condition = condition
	f.RequestContext.ApproximateInvokeCount = attempts
	f.ResponseContext.StatusCode = 200
	if out.FunctionError {
		f.ResponseContext.FunctionError = "Unhandled"
	}
	f.Record = rec
	data, err := json.Marshal(f)
	if err == nil {
		err = p.send(data)
	}
	if err != nil {
		p.m.log.Warn("a mapping's OnFailure destination refused a record", "uuid", p.mp.UUID, "destination", p.mp.OnFailure, "err", err)
		return
	}
	p.m.stats.destined.Add(1)
}

func (p *poller) send(data []byte) error {
	if subject, ok := registry.NATSSubject(p.mp.OnFailure); ok {
		return p.m.publish(subject, data)
	}
	name, q, err := registry.ParseName(p.mp.OnFailure)
	if err != nil {
		return fmt.Errorf("destination %s: %w", p.mp.OnFailure, err)
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	return p.m.q.EnqueueFrom(ctx, events.Event{RequestID: lambdawire.NewRequestID(), Function: name, Qualifier: q, Payload: data},
		events.TypeDestination, p.m.arn(p.mp.UUID))
}

// chainOf is the deepest chain the records' messages were published in
// (their chain headers) and its origin; 0 for messages from outside.
func chainOf(records []Record) (depth int, origin string) {
	for _, r := range records {
		if d, err := strconv.Atoi(r.Headers[HeaderDepth]); err == nil && d > depth {
			depth, origin = d, r.Headers[HeaderOrigin]
		}
	}
	return depth, origin
}
