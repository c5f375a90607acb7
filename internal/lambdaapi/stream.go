package lambdaapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
)

// InvokeWithResponseStream
// (POST /2021-11-15/functions/NAME/response-streaming-invocations): the
// invocation's response comes back as it is written, in AWS's event stream
// framing (lambdawire/eventstream.go): PayloadChunk events with the bytes, then one
// InvokeComplete with ErrorCode, ErrorDetails and LogResult. A runtime that
// streams (runtimeapi's stream.go) is read as it writes; a runtime that
// answers whole gets its whole payload as one chunk, as on Lambda. A
// function error is InvokeComplete's ErrorCode (its errorType) and
// ErrorDetails (its errorMessage); platform errors before the first byte are
// answered like Invoke's, after it as InvokeComplete's ErrorCode.

// eventStreamContentType is the content type of the answer.
const eventStreamContentType = "application/vnd.amazon.eventstream"

// errStreamClosed is a write to an eventStream after its invocation ended.
var errStreamClosed = errors.New("the response stream is closed")

func (a *API) invokeWithResponseStream(w http.ResponseWriter, r *http.Request, body []byte) (err error) {
	requestID := w.Header().Get("x-amzn-RequestId")
	r, traceID, end := a.traceInvoke(r, "owl.api InvokeWithResponseStream", r.PathValue("name"), requestID)
	defer func() { end(err) }()
	invType, logType, clientContext, err := invokeHeaders(r)
	if err != nil {
		return err
	}
	if invType == "Event" {
		return lambdaerr.ValidationFailed(invType, "invocationType", "Member must satisfy enum value set: [RequestResponse, DryRun]")
	}
	name, q, fn, event, err := a.resolveInvoke(r, body)
	if err != nil {
		return err
	}
	if invType == "DryRun" {
		w.Header().Set("X-Amz-Executed-Version", fn.Version)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}

	ch := chainOf(r.Context())
	es := &eventStream{ctx: r.Context(), w: w, rc: http.NewResponseController(w), version: fn.Version}
	res, err := a.invoker.Invoke(r.Context(), InvokeRequest{
		Function:      fn,
		RequestID:     requestID,
		Payload:       event,
		ClientContext: clientContext,
		TraceID:       traceID,
		InvokedARN:    a.reg.ARN(name, q),
		Depth:         ch.depth,
		Origin:        ch.origin,
		Stream:        es,
	})
	if err != nil {
		// Before the first byte, answered as Invoke answers it; after,
		// the stream ends with it.
		if !es.close() {
			return err
		}
		code, msg := lambdaerr.Service, err.Error()
		var le *lambdaerr.Error
		if errors.As(err, &le) {
			code, msg = le.Code, le.Message
		}
		a.logger.Info("streamed invocation ended by a platform error", "requestId", requestID, "err", err)
		return es.complete(lambdawire.InvokeComplete{ErrorCode: code, ErrorDetails: msg})
	}
	es.close()
	done := lambdawire.InvokeComplete{}
	if logType == "Tail" {
		done.LogResult = logTail(res.Log)
	}
	switch {
	case res.FunctionError:
		var obj struct {
			ErrorMessage string `json:"errorMessage"`
		}
		done.ErrorCode, done.ErrorDetails = res.ErrorType, string(res.Payload)
		if json.Unmarshal(res.Payload, &obj) == nil && obj.ErrorMessage != "" {
			done.ErrorDetails = obj.ErrorMessage
		}
	case !res.Streamed:
		// A buffered runtime's whole payload is the one chunk.
		if err := es.chunk(res.Payload); err != nil {
			return nil // the client is gone: nothing to answer
		}
	}
	return es.complete(done)
}

// eventStream is the response of one InvokeWithResponseStream: the
// lambdaapi.ResponseStream the runtime's bytes are written to as
// PayloadChunk events. The Runtime API may write to it until the
// invocation ends, possibly (a timeout) after Invoke returned; close
// marks that end, after which writes fail, so the handler's
// ResponseWriter is never used after the handler returned.
type eventStream struct {
	ctx     context.Context // the request's: done when the client hangs up
	w       http.ResponseWriter
	rc      *http.ResponseController
	version string

	mu     sync.Mutex
	began  bool   // guarded by mu: the 200 and its headers are written
	closed bool   // guarded by mu: the invocation ended
	buf    []byte // guarded by mu: the message being written
}

// Begin starts the answer; the runtime's content type is not the
// answer's, which is always an event stream.
func (s *eventStream) Begin(string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStreamClosed
	}
	return s.beginLocked()
}

// Write sends p as one PayloadChunk event, flushed to the client.
func (s *eventStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errStreamClosed
	}
	if err := s.eventLocked("PayloadChunk", "application/octet-stream", p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// beginLocked writes the status and headers once.
func (s *eventStream) beginLocked() error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if s.began {
		return nil
	}
	s.began = true
	h := s.w.Header()
	h.Set("Content-Type", eventStreamContentType)
	h.Set("X-Amz-Executed-Version", s.version)
	s.w.WriteHeader(http.StatusOK)
	return s.rc.Flush()
}

// eventLocked writes one event and flushes it to the client.
func (s *eventStream) eventLocked(eventType, contentType string, payload []byte) error {
	if err := s.beginLocked(); err != nil {
		return err
	}
	s.buf = lambdawire.AppendEvent(s.buf[:0], eventType, contentType, payload)
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	if cap(s.buf) > 64<<10 {
		s.buf = nil // a large buffered payload: do not keep its copy
	}
	return s.rc.Flush()
}

// close ends the Runtime API's use of s, and reports whether the answer
// had begun.
func (s *eventStream) close() (began bool) {
	lockForEnd(&s.mu, s.rc)
	defer s.mu.Unlock()
	s.closed = true
	return s.began
}

// stallGrace is how long the end of a streamed answer waits for a write
// in progress before cutting it off: a client may stop reading without
// hanging up, and the Runtime API's write to it would otherwise hold the
// stream (and the environment's teardown) for as long as the client likes.
const stallGrace = 2 * time.Second

// lockForEnd takes mu, the lock of a streamed answer's writes, once the
// invocation is over. A write still in progress after stallGrace is cut
// off with a write deadline in the past, cleared again for the answer's
// last bytes (which then fail on a broken connection, and are dropped).
func lockForEnd(mu *sync.Mutex, rc *http.ResponseController) {
	if mu.TryLock() {
		return
	}
	fired := make(chan struct{})
	t := time.AfterFunc(stallGrace, func() {
		_ = rc.SetWriteDeadline(time.Unix(1, 0))
		close(fired)
	})
	mu.Lock()
	if !t.Stop() {
		<-fired
		_ = rc.SetWriteDeadline(time.Time{})
	}
}

// chunk writes a buffered payload as one PayloadChunk, after close. An
// empty payload is no chunk.
func (s *eventStream) chunk(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eventLocked("PayloadChunk", "application/octet-stream", p)
}

// complete writes the InvokeComplete event that ends the answer. A client
// already gone is not an error to answer: there is no one to answer.
func (s *eventStream) complete(done lambdawire.InvokeComplete) error {
	b, err := json.Marshal(done)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.eventLocked("InvokeComplete", "application/json", b)
	return nil
}
