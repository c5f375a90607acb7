package lambdaapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"

	"github.com/owl-project/owl/internal/events"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// maxClientContext is Lambda's limit on X-Amz-Client-Context (base64).
const maxClientContext = 3583

// logTailBytes is how much of an invocation's log X-Amz-Log-Result carries.
const logTailBytes = 4096

func (a *API) invoke(w http.ResponseWriter, r *http.Request, body []byte) (err error) {
	r, traceID, end := a.traceInvoke(r, "owl.api Invoke", r.PathValue("name"), w.Header().Get("x-amzn-RequestId"))
	defer func() { end(err) }()
	invType, logType, clientContext, err := invokeHeaders(r)
	if err != nil {
		return err
	}
	name, q, fn, body, err := a.resolveInvoke(r, body)
	if err != nil {
		return err
	}
	version := fn.Version
	if invType == "Event" {
		if err := a.accept(w, r, name, q, body, traceID); err != nil {
			return err
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	if invType == "DryRun" {
		w.Header().Set("X-Amz-Executed-Version", version)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}

	ch := chainOf(r.Context())
	res, err := a.invoker.Invoke(r.Context(), InvokeRequest{
		Function:      fn,
		RequestID:     w.Header().Get("x-amzn-RequestId"),
		Payload:       body,
		ClientContext: clientContext,
		TraceID:       traceID,
		InvokedARN:    a.reg.ARN(name, q),
		Depth:         ch.depth,
		Origin:        ch.origin,
	})
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("X-Amz-Executed-Version", version)
	if res.FunctionError {
		h.Set("X-Amz-Function-Error", "Unhandled")
	}
	if logType == "Tail" {
		h.Set("X-Amz-Log-Result", logTail(res.Log))
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(res.Payload)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Payload)
	return nil
}

// resolveInvoke is what Invoke and InvokeWithResponseStream do after
// their headers: the event as the function gets it (eventPayload), the
// function name and qualifier of the path, and the configuration they
// resolve to (a weighted alias draws its version).
func (a *API) resolveInvoke(r *http.Request, body []byte) (name, q string, fn registry.Function, event []byte, err error) {
	event, err = eventPayload(body)
	if err != nil {
		return "", "", fn, nil, err
	}
	name, q, err = qualified(r)
	if err != nil {
		return "", "", fn, nil, err
	}
	t, err := a.reg.ResolveForInvoke(r.Context(), name, q, rand.Float64())
	if err != nil {
		return "", "", fn, nil, err
	}
	return name, q, t.Function, event, nil
}

// logTail is X-Amz-Log-Result (and InvokeComplete's LogResult): the last
// 4 KB of an invocation's log, base64-encoded.
func logTail(log string) string {
	if len(log) > logTailBytes {
		log = log[len(log)-logTailBytes:]
	}
	return base64.StdEncoding.EncodeToString([]byte(log))
}

// invokeHeaders reads and checks Invoke's headers: the invocation type,
// the log type and the client context (decoded).
func invokeHeaders(r *http.Request) (invType, logType, clientContext string, err error) {
	invType = r.Header.Get("X-Amz-Invocation-Type")
	switch invType {
	case "", "RequestResponse", "DryRun", "Event":
	default:
		return "", "", "", lambdaerr.ValidationFailed(invType, "invocationType", "Member must satisfy enum value set: [Event, RequestResponse, DryRun]")
	}
	logType = r.Header.Get("X-Amz-Log-Type")
	switch logType {
	case "", "None", "Tail":
	default:
		return "", "", "", lambdaerr.ValidationFailed(logType, "logType", "Member must satisfy enum value set: [None, Tail]")
	}
	if cc := r.Header.Get("X-Amz-Client-Context"); cc != "" {
		if len(cc) > maxClientContext {
			return "", "", "", lambdaerr.New(lambdaerr.InvalidParameterValue, "Client context must be no larger than %d bytes.", maxClientContext)
		}
		raw, err := base64.StdEncoding.DecodeString(cc)
		if err != nil || !json.Valid(raw) {
			return "", "", "", lambdaerr.New(lambdaerr.InvalidParameterValue, "Client context must be a valid Base64-encoded JSON object.")
		}
		clientContext = string(raw)
	}
	return invType, logType, clientContext, nil
}

// accept stores an asynchronous invocation of name:q (already resolved,
// so an unknown function or qualifier was a 404); the caller answers 202
// once it returns nil. Delivery (internal/events) runs it later, with
// this response's request id and in the trace traceID (an X-Ray header).
func (a *API) accept(w http.ResponseWriter, r *http.Request, name, q string, body []byte, traceID string) error {
	if a.opts.Events == nil {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "Asynchronous invocation (InvocationType Event) is not enabled on this node.")
	}
	if len(body) > events.MaxPayload {
		return lambdaerr.New(lambdaerr.RequestTooLarge,
			"Request must be smaller than %d bytes for the Event invocation type.", events.MaxPayload)
	}
	h := chainOf(r.Context()) // a function's own call: a hop down its chain
	ev := events.Event{
		RequestID: w.Header().Get("x-amzn-RequestId"),
		Function:  name,
		Qualifier: q,
		Payload:   body,
		TraceID:   traceID,
		Depth:     h.depth,
		Origin:    h.origin,
	}
	if h.caller != "" {
		return a.opts.Events.EnqueueFrom(r.Context(), ev, events.TypeInvoke, a.reg.ARN(h.caller, ""))
	}
	return a.opts.Events.Enqueue(r.Context(), ev)
}

// invokeAsyncLegacy is Lambda's deprecated InvokeAsync
// (POST /2014-11-13/functions/NAME/invoke-async/): the same as an Event
// invocation of $LATEST, answered {"Status": 202}.
func (a *API) invokeAsyncLegacy(w http.ResponseWriter, r *http.Request, body []byte) (err error) {
	r, traceID, end := a.traceInvoke(r, "owl.api InvokeAsync", r.PathValue("name"), w.Header().Get("x-amzn-RequestId"))
	defer func() { end(err) }()
	body, err = eventPayload(body)
	if err != nil {
		return err
	}
	name, q, err := qualified(r)
	if err != nil {
		return err
	}
	if _, err := a.reg.ResolveForInvoke(r.Context(), name, q, 0); err != nil {
		return err
	}
	if err := a.accept(w, r, name, q, body, traceID); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"Status": http.StatusAccepted})
	return nil
}

// eventPayload is an invocation's body as the function gets it: JSON, and
// {} for an empty body.
func eventPayload(body []byte) ([]byte, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return []byte("{}"), nil
	}
	if !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v)
		return nil, lambdaerr.New(lambdaerr.InvalidRequestContent, "Could not parse request body into json: %v", err)
	}
	return body, nil
}
