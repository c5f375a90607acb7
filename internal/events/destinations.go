package events

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
)

// The conditions of a destination record (Lambda's).
const (
	conditionSuccess = "Success"
	conditionRetries = "RetriesExhausted"
	conditionAge     = "EventAgeExceeded"
	// conditionLoop is Owl's: the event was stopped as a recursive loop.
	conditionLoop = "RecursiveInvocationDetected"
)

// result is what the last attempt of an event returned.
type result struct {
	out     Outcome
	version string
}

// Record is what a destination receives about an event's outcome, in
// Lambda's format.
type Record struct {
	Version         string           `json:"version"`
	Timestamp       string           `json:"timestamp"`
	RequestContext  RequestContext   `json:"requestContext"`
	RequestPayload  json.RawMessage  `json:"requestPayload"`
	ResponseContext *ResponseContext `json:"responseContext,omitempty"`
	ResponsePayload json.RawMessage  `json:"responsePayload,omitempty"`
}

// RequestContext names the event a Record is about.
type RequestContext struct {
	RequestID   string `json:"requestId"`
	FunctionARN string `json:"functionArn"`
	// Condition is Success, RetriesExhausted or EventAgeExceeded.
	Condition              string `json:"condition"`
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

// ResponseContext is what the event's last invocation returned.
type ResponseContext struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError,omitempty"`
}

// record builds the destination record of ev; res is nil when the event
// never ran (its age passed first).
func record(ev Event, functionARN, condition string, res *result) Record {
	r := Record{
		Version:   "1.0",
		Timestamp: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		RequestContext: RequestContext{
			RequestID: ev.RequestID, FunctionARN: functionARN, Condition: condition,
			ApproximateInvokeCount: ev.Attempt,
		},
		RequestPayload: ev.Payload,
	}
	if res == nil {
		r.RequestContext.ApproximateInvokeCount = ev.Attempt - 1
		return r
	}
	r.ResponseContext = &ResponseContext{StatusCode: 200, ExecutedVersion: res.version}
	if res.out.FunctionError {
		r.ResponseContext.FunctionError = "Unhandled"
	}
	switch p := res.out.Payload; {
	case len(p) == 0:
	case json.Valid(p):
		r.ResponsePayload = p
	default: // not JSON: Lambda passes it as a string
		r.ResponsePayload, _ = json.Marshal(string(p))
	}
	return r
}

// destinationTries is how often a record is offered to a destination that
// refuses it before it is given up (logged and counted).
const destinationTries = 3

// toDestination sends rec to dest (a function ARN: as an asynchronous
// invocation of it; arn:owl:nats:::subject: published on the subject);
// "" is no destination.
func (d *Delivery) toDestination(ev Event, dest string, rec Record) {
	if dest == "" {
		return
	}
	data, err := json.Marshal(rec)
	if err != nil {
		d.offerFailed(ev, dest, "record", err)
		return
	}
	d.offer(ev, dest, "record", data)
}

// toDeadLetter sends the payload of an event given up to the function's
// dead-letter target, as Lambda sends it to a dead-letter queue; "" is
// none.
func (d *Delivery) toDeadLetter(ev Event, target string) {
	if target != "" {
		d.offer(ev, target, "dead letter", ev.Payload)
	}
}

// offer sends data to dest, trying a few times. A destination that keeps
// failing is logged and counted, never retried forever: other events
// must not wait on it.
func (d *Delivery) offer(ev Event, dest, what string, data []byte) {
	source := d.fns.ARN(ev.Function, ev.Qualifier) // the destination event came from its outcome
	var err error
	for try := range destinationTries {
		if err = d.send(ev, dest, source, data); err == nil {
			d.destined.Add(1)
			return
		}
		if try+1 < destinationTries {
			time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
		}
	}
	d.offerFailed(ev, dest, what, err)
}

func (d *Delivery) offerFailed(ev Event, dest, what string, err error) {
	d.destinationFailed.Add(1)
	d.log.Warn("a destination refused an asynchronous invocation's "+what, "request_id", ev.RequestID,
		"function", ev.Function, "destination", dest, "err", err)
}

func (d *Delivery) send(parent Event, dest, source string, data []byte) error {
	if subject, ok := registry.NATSSubject(dest); ok {
		if d.opts.Publish == nil {
			return fmt.Errorf("no NATS connection for %s", dest)
		}
		return d.opts.Publish(subject, data)
	}
	name, qualifier, err := registry.ParseName(dest)
	if err != nil {
		return fmt.Errorf("destination %s: %w", dest, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := Event{RequestID: lambdawire.NewRequestID(), Function: name, Qualifier: qualifier, Payload: data, Accepted: time.Now(),
		Depth: parent.Depth + 1, Origin: cmp.Or(parent.Origin, parent.RequestID)}
	return d.q.store(ctx, ev, &origin{typ: TypeDestination, source: source})
}
