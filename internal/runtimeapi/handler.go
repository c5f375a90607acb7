package runtimeapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
)

const pathPrefix = "/2018-06-01/runtime/"

// Header names of the Runtime API, in canonical form so they can index an
// http.Header directly.
const (
	hdrRequestID       = "Lambda-Runtime-Aws-Request-Id"
	hdrDeadlineMs      = "Lambda-Runtime-Deadline-Ms"
	hdrFunctionARN     = "Lambda-Runtime-Invoked-Function-Arn"
	hdrTraceID         = "Lambda-Runtime-Trace-Id"
	hdrClientContext   = "Lambda-Runtime-Client-Context"
	hdrCognitoIdentity = "Lambda-Runtime-Cognito-Identity"
	hdrErrorType       = "Lambda-Runtime-Function-Error-Type"
	hdrErrorBody       = "Lambda-Runtime-Function-Error-Body"
)

// Error types of refused Runtime API requests.
const (
	errInvalidStateTransition = "InvalidStateTransition"
	errInvalidRequestID       = "InvalidRequestID"
	errRequestEntityTooLarge  = "RequestEntityTooLarge"
	errInvalidRequest         = "InvalidRequest"
	errNotFound               = "NotFound"
	errMethodNotAllowed       = "MethodNotAllowed"
	// errContainer is a 500: "container error, the runtime should exit".
	errContainer = "ContainerError"
)

// Read-only header values shared by all responses; net/http never modifies
// header values it writes.
var (
	jsonContentType = []string{"application/json"}
	statusOKBody    = []byte(`{"status":"OK"}`)
)

// handle serves one request r of connection c, answering in w; parked
// reports a /next left unanswered for Invoke to answer on c.
func (s *Server) handle(c *conn, w http.ResponseWriter, r *http.Request) (parked bool) {
	s.mu.Lock()
	closed := s.isClosed
	s.mu.Unlock()
	if closed {
		s.fail(w, r, http.StatusInternalServerError, errContainer, "The execution environment is shutting down.")
		return false
	}

	rest, ok := strings.CutPrefix(r.URL.Path, pathPrefix)
	switch {
	case !ok && strings.HasPrefix(r.URL.Path, extPrefix):
		return s.ext.handle(c, w, r, r.URL.Path[len(extPrefix):])
	case !ok && strings.TrimSuffix(r.URL.Path, "/") == telemetryPath:
		if s.method(w, r, http.MethodPut) {
			s.tel.subscribe(w, r)
		}
	case !ok && s.extra != nil:
		s.extra.ServeHTTP(w, r)
	case !ok:
		s.notFound(w, r)
	case rest == "invocation/next":
		if s.method(w, r, http.MethodGet) {
			return s.next(c, w, r)
		}
	case rest == "init/error":
		if s.method(w, r, http.MethodPost) {
			s.initError(w, r)
		}
	default:
		id, isError, ok := parseResultPath(rest)
		if !ok {
			s.notFound(w, r)
			return false
		}
		if s.method(w, r, http.MethodPost) && (isError || !s.streamResult(c, w, r, id)) {
			s.result(w, r, id, isError)
		}
	}
	return false
}

// parseResultPath parses "invocation/{id}/response" and
// "invocation/{id}/error".
func parseResultPath(rest string) (id string, isError, ok bool) {
	rest, ok = strings.CutPrefix(rest, "invocation/")
	if !ok {
		return "", false, false
	}
	id, action, ok := strings.Cut(rest, "/")
	if !ok || id == "" {
		return "", false, false
	}
	switch action {
	case "response":
		return id, false, true
	case "error":
		return id, true, true
	}
	return "", false, false
}

// leave ends a connection goroutine started by Serve.
func (s *Server) leave() {
	s.mu.Lock()
	s.handlers--
	if s.isClosed && s.handlers == 0 {
		s.idle.Broadcast()
	}
	s.mu.Unlock()
}

// next serves GET /runtime/invocation/next. A queued event is written at
// once; otherwise the /next parks on c (parked is true) and Invoke writes
// the event there, while c's goroutine goes on reading c, which is how a
// runtime that hangs up is noticed.
func (s *Server) next(c *conn, w http.ResponseWriter, r *http.Request) (parked bool) {
	s.mu.Lock()
	var refusal string
	switch {
	case s.phase == phaseInitFailed:
		refusal = "The runtime reported an init error; no invocation will follow."
	case s.parked:
		refusal = "A /next request is already pending."
	case s.state == invDelivered || s.state == invReceiving:
		refusal = "Invocation " + s.id + " is still active: post its /response or /error first."
	}
	if refusal != "" {
		s.mu.Unlock()
		s.fail(w, r, http.StatusForbidden, errInvalidStateTransition, refusal)
		return false
	}
	if s.phase == phaseInit {
		s.phase = phaseReady
		close(s.initDone)
	}
	if s.state != invQueued {
		s.parked, s.parkedConn, c.nextClose = true, c, r.Close
		s.mu.Unlock()
		return true
	}
	inv := s.inv
	s.inv = Invocation{} // the runtime owns the event now: do not retain it
	s.state = invDelivered
	c.wmu.Lock() // before mu is released: see deliver
	s.mu.Unlock()
	s.deliver(context.Background(), c, &inv, r.Close)
	return true // answered; the connection goes on (or is closed) as after a parked /next
}

// deliver writes inv to c as the answer of its /next, the invocation being
// invDelivered. The caller holds c.wmu, taken while it held s.mu, so no
// later answer on c can overtake the event; deliver releases it. When the
// write fails the runtime never got the whole event: it goes back to the
// queue.
//
// ctx is Invoke's, which writes the event itself: if the runtime does not
// read (the write blocks once the socket's buffers are full), ctx's end
// must still end the write, or Invoke would outlive its deadline. A ctx
// that never ends (the connection's goroutine writing a queued event
// passes context.Background()) is not watched: Invoke is then free to
// return on its own.
func (s *Server) deliver(ctx context.Context, c *conn, inv *Invocation, closeAfter bool) {
	var err error
	if ctx.Done() == nil {
		err = c.writeEvent(inv, closeAfter)
	} else {
		c.guard.Add(1)
		stop := context.AfterFunc(ctx, c.expireWrite)
		err = c.writeEvent(inv, closeAfter)
		if stop() {
			c.guard.Done()
		} else {
			// expireWrite ran, maybe after the write succeeded: wait for
			// it, then clear its deadline.
			c.guard.Wait()
			_ = c.nc.SetWriteDeadline(time.Time{})
		}
	}
	c.wmu.Unlock()
	if err != nil {
		c.nc.Close() // c's goroutine leaves; the runtime is gone or going
		s.mu.Lock()
		if s.state == invDelivered && s.id == inv.RequestID {
			s.requeueLocked(*inv)
		}
		s.mu.Unlock()
	}
}

// requeueLocked puts back an event a hung-up /next never delivered, for
// the next /next, unless Invoke has given up on it already.
func (s *Server) requeueLocked(inv Invocation) {
	if s.abandoned || s.isClosed {
		s.state, s.id, s.abandoned = invNone, "", false
	} else {
		s.state, s.inv = invQueued, inv
	}
}

// result serves POST /runtime/invocation/{id}/response and /error.
func (s *Server) result(w http.ResponseWriter, r *http.Request, id string, isError bool) {
	s.mu.Lock()
	if s.state != invDelivered || s.id != id {
		resubmitted := id == s.lastID || (s.state == invReceiving && id == s.id)
		s.mu.Unlock()
		if resubmitted {
			s.fail(w, r, http.StatusForbidden, errInvalidStateTransition, "Invocation "+id+" already has a result.")
		} else {
			s.fail(w, r, http.StatusBadRequest, errInvalidRequestID, "Invalid request ID: "+id+" is not the active invocation.")
		}
		return
	}
	s.state = invReceiving
	s.mu.Unlock()

	body, tooLarge, err := readBody(r, s.maxBody)
	if err != nil {
		// Most likely the runtime died mid-request; whoever watches the
		// process will see it. Let a live runtime post again.
		s.mu.Lock()
		if s.state == invReceiving && s.id == id {
			s.state = invDelivered
		}
		s.mu.Unlock()
		s.fail(w, r, http.StatusBadRequest, errInvalidRequest, "Reading the request body: "+err.Error())
		return
	}
	if tooLarge {
		s.finish(id, Outcome{Payload: s.tooLargeBody, ErrorType: lambdaerr.FunctionResponseSizeTooLarge, IsError: true})
		s.fail(w, r, http.StatusRequestEntityTooLarge, errRequestEntityTooLarge, s.tooLargeMsg)
		return
	}
	if s.finish(id, makeOutcome(r, body, isError)) {
		// Invoke's goroutine is now runnable on this P. Let it run before
		// the HTTP bookkeeping below: the caller is on the critical path of
		// the invocation, the runtime's 202 is not. (Measured: p50 of an
		// in-process invoke 55 → 40 µs.)
		runtime.Gosched()
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusAccepted)
	w.Write(statusOKBody)
}

// makeOutcome builds the outcome of a fully read /response or /error post.
func makeOutcome(r *http.Request, body []byte, isError bool) Outcome {
	// aws-lambda-go reports a failure while streaming a body in trailers;
	// the body is then partial and not the result.
	if t := r.Trailer.Get(hdrErrorType); t != "" {
		payload, err := base64.StdEncoding.DecodeString(r.Trailer.Get(hdrErrorBody))
		if err != nil || len(payload) == 0 {
			if isError {
				payload = body
			} else {
				payload = lambdaerr.ErrorBody(t, "The runtime reported "+t+" in a trailer.")
			}
		}
		return Outcome{Payload: payload, ErrorType: t, IsError: true}
	}
	if !isError {
		return Outcome{Payload: body}
	}
	t := r.Header.Get(hdrErrorType)
	if t == "" {
		t = parseErrorObject(body).ErrorType
	}
	if t == "" {
		t = lambdaerr.FunctionUnhandled
	}
	return Outcome{Payload: body, ErrorType: t, IsError: true}
}

// initError serves POST /runtime/init/error.
func (s *Server) initError(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ph := s.phase
	s.mu.Unlock()
	if ph != phaseInit {
		s.fail(w, r, http.StatusForbidden, errInvalidStateTransition, "Init has already ended.")
		return
	}
	body, tooLarge, err := readBody(r, s.maxBody)
	switch {
	case err != nil:
		s.fail(w, r, http.StatusBadRequest, errInvalidRequest, "Reading the request body: "+err.Error())
		return
	case tooLarge:
		s.fail(w, r, http.StatusRequestEntityTooLarge, errRequestEntityTooLarge, s.tooLargeMsg)
		return
	}
	obj := parseErrorObject(body)
	ie := &InitError{Type: r.Header.Get(hdrErrorType), Message: obj.ErrorMessage, Body: body}
	if ie.Type == "" {
		ie.Type = obj.ErrorType
	}
	if ie.Type == "" {
		ie.Type = lambdaerr.RuntimeUnknown
	}

	s.mu.Lock()
	if s.phase != phaseInit { // a /next or another /init/error won the race
		s.mu.Unlock()
		s.fail(w, r, http.StatusForbidden, errInvalidStateTransition, "Init has already ended.")
		return
	}
	s.phase = phaseInitFailed
	s.initErr = ie
	close(s.initFailed)
	close(s.initDone)
	s.mu.Unlock()
	s.log.LogAttrs(logCtx, slog.LevelInfo, "runtime init failed", slog.String("errorType", ie.Type), slog.String("errorMessage", ie.Message))

	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusAccepted)
	w.Write(statusOKBody)
}

func (s *Server) method(w http.ResponseWriter, r *http.Request, want string) bool {
	if r.Method == want {
		return true
	}
	w.Header().Set("Allow", want)
	s.fail(w, r, http.StatusMethodNotAllowed, errMethodNotAllowed, "Method "+r.Method+" is not allowed on "+r.URL.Path+".")
	return false
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.fail(w, r, http.StatusNotFound, errNotFound, "No Runtime API resource at "+r.URL.Path+".")
}

// fail answers a refused request with Lambda's error object, and logs it:
// a refusal is a runtime bug worth seeing.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, errType, msg string) {
	s.log.LogAttrs(logCtx, slog.LevelWarn, "runtime API request refused",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", status), slog.String("errorType", errType), slog.String("errorMessage", msg))
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	w.Write(lambdaerr.ErrorBody(errType, msg))
}

type errorObject struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

// parseErrorObject extracts errorType and errorMessage from an error body;
// a body that is not such an object yields zero values.
func parseErrorObject(body []byte) errorObject {
	var obj errorObject
	_ = json.Unmarshal(body, &obj) // not JSON: the caller falls back to defaults
	return obj
}

// scratchSize is the capacity of pooled buffers for bodies of unknown length
// (aws-lambda-go always sends chunked bodies). Bodies that fit are copied out
// once; larger ones grow a buffer of their own.
const scratchSize = 32 << 10

var scratchPool = sync.Pool{New: func() any { b := make([]byte, scratchSize); return &b }}

// readBody reads r's body, up to limit bytes. tooLarge reports a body above
// limit, which is left unread. The returned slice is never nil on success.
func readBody(r *http.Request, limit int64) (body []byte, tooLarge bool, err error) {
	if r.ContentLength > limit {
		return nil, true, nil
	}
	if r.ContentLength >= 0 {
		body = make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, false, err
		}
		return body, false, nil
	}
	sp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(sp)
	buf := (*sp)[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		// Read at most one byte past the limit: enough to know it is exceeded.
		end := min(int64(cap(buf)), limit+1)
		n, err := r.Body.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, true, nil
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
	}
	if cap(buf) > scratchSize { // grown past the pooled buffer: it is ours
		return buf, false, nil
	}
	return append(make([]byte, 0, len(buf)), buf...), false, nil
}
