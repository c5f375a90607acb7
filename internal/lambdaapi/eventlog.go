package lambdaapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	cloudevent "github.com/cloudevents/sdk-go/v2/event"

	"github.com/owl-project/owl/internal/events"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
)

// Owl's event log API (/owl/v1/events): list and show the records of the
// events Owl accepted, and replay a function's events of a time range
// (internal/events/eventlog.go, docs/events.md).

// EventLog reads and replays the event log.
type EventLog interface {
	List(ctx context.Context, f events.Filter) ([]events.Entry, bool, error)
	Get(ctx context.Context, id string) (cloudevent.Event, error)
	Replay(ctx context.Context, r events.ReplayRequest) ([]lambdawire.ReplayedEvent, error)
}

// maxEventPage bounds a page of GET /owl/v1/events.
const maxEventPage = 1000

func (a *API) eventLog() (EventLog, error) {
	if a.opts.EventLog == nil {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "The event log is not enabled on this node.")
	}
	return a.opts.EventLog, nil
}

// listEvents is GET /owl/v1/events?function=&since=&until=&limit=&marker=.
func (a *API) listEvents(w http.ResponseWriter, r *http.Request, _ []byte) error {
	log, err := a.eventLog()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := events.Filter{Function: q.Get("function"), Limit: 100}
	if f.Function != "" {
		if err := registry.ValidateName(f.Function); err != nil {
			return err
		}
	}
	if f.Since, err = timeParam(q.Get("since"), "since"); err != nil {
		return err
	}
	if f.Until, err = timeParam(q.Get("until"), "until"); err != nil {
		return err
	}
	if s := q.Get("limit"); s != "" {
		if f.Limit, err = strconv.Atoi(s); err != nil || f.Limit < 1 || f.Limit > maxEventPage {
			return lambdaerr.New(lambdaerr.InvalidParameterValue, "limit must be an integer from 1 to %d", maxEventPage)
		}
	}
	if s := q.Get("marker"); s != "" {
		if f.After, err = strconv.ParseUint(s, 10, 64); err != nil || f.After == 0 {
			return lambdaerr.New(lambdaerr.InvalidParameterValue, "marker %q is not one a listing returned", s)
		}
	}
	entries, more, err := log.List(r.Context(), f)
	if err != nil {
		return err
	}
	out := lambdawire.EventList{Events: make([]json.RawMessage, 0, len(entries))}
	for _, e := range entries {
		raw, err := json.Marshal(e.Event)
		if err != nil {
			return err
		}
		out.Events = append(out.Events, raw)
	}
	if more {
		out.NextMarker = strconv.FormatUint(entries[len(entries)-1].Position, 10)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getEvent is GET /owl/v1/events/{id}: one record, in CloudEvents' JSON
// format (structured mode).
func (a *API) getEvent(w http.ResponseWriter, r *http.Request, _ []byte) error {
	log, err := a.eventLog()
	if err != nil {
		return err
	}
	ce, err := log.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	raw, err := json.Marshal(ce)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/cloudevents+json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(raw)
	return nil
}

// replayEvents is POST /owl/v1/events/replay (lambdawire.ReplayInput).
func (a *API) replayEvents(w http.ResponseWriter, r *http.Request, body []byte) error {
	log, err := a.eventLog()
	if err != nil {
		return err
	}
	var in lambdawire.ReplayInput
	if err := decode(body, &in); err != nil {
		return err
	}
	req, err := a.replayRequest(r.Context(), in)
	if err != nil {
		return err
	}
	done, err := log.Replay(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lambdawire.ReplayOutput{Count: len(done), Replayed: append([]lambdawire.ReplayedEvent{}, done...)})
	return nil
}

// replayRequest checks a replay's input: the function and the time range
// are required and valid, and the target function exists.
func (a *API) replayRequest(ctx context.Context, in lambdawire.ReplayInput) (events.ReplayRequest, error) {
	var req events.ReplayRequest
	if in.Function == "" {
		return req, lambdaerr.New(lambdaerr.InvalidParameterValue, "Function is required: the function whose events are replayed.")
	}
	if err := registry.ValidateName(in.Function); err != nil {
		return req, err
	}
	if in.Since == "" {
		return req, lambdaerr.New(lambdaerr.InvalidParameterValue, "Since is required: the start of the time range to replay (RFC 3339).")
	}
	var err error
	if req.Since, err = timeParam(in.Since, "Since"); err != nil {
		return req, err
	}
	if req.Until, err = timeParam(in.Until, "Until"); err != nil {
		return req, err
	}
	if !req.Until.IsZero() && req.Until.Before(req.Since) {
		return req, lambdaerr.New(lambdaerr.InvalidParameterValue, "Until (%s) is before Since (%s).", in.Until, in.Since)
	}
	req.Function = in.Function
	target, q := in.Function, ""
	if in.To != "" {
		if target, q, err = registry.ParseName(in.To); err != nil {
			return req, err
		}
		req.Target, req.TargetQualifier = target, q
	}
	// The target must exist now (its versions and aliases are resolved
	// again at each delivery).
	if _, err := a.reg.ResolveForInvoke(ctx, target, q, 0); err != nil {
		return req, err
	}
	return req, nil
}

// timeParam parses an RFC 3339 time; "" is the zero time (unbounded).
func timeParam(s, name string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "%s %q is not an RFC 3339 time (e.g. 2026-12-06T08:00:00Z).", name, s)
	}
	return t, nil
}
