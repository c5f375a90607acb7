package runtimeapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// Response streaming: a runtime that streams posts /response with a
// chunked body (Node's awslambda.streamifyResponse also says
// Lambda-Runtime-Function-Response-Mode: streaming; aws-lambda-go's
// io.Reader responses do not), and reports a failure after the first byte
// in the trailers Lambda-Runtime-Function-Error-Type and -Error-Body. When
// the invocation was given a Stream (Invocation.Stream), such a body goes
// to it as it arrives, as Lambda's own Runtime API streams whatever a
// streaming invocation's runtime posts; a body of known length (a
// buffered runtime's) is read whole and stays one payload. Without a
// Stream, a streamed body is read whole like any response, up to
// MaxResponseBytes, as Lambda buffers a streaming function invoked
// without streaming.

// DefaultMaxStreamBytes is Lambda's limit on a streamed response (200 MiB),
// and the default of Config.MaxStreamBytes.
const DefaultMaxStreamBytes = 200 << 20

// hdrResponseMode is the header a streaming runtime sets on /response.
const hdrResponseMode = "Lambda-Runtime-Function-Response-Mode"

// Stream receives the response of an invocation whose runtime streams it.
// Its methods are called from the Runtime API's connection goroutine, one
// at a time, never after Invoke returned the Outcome.
type Stream interface {
	// Begin is called once, before any Write, with the response's
	// Content-Type (application/octet-stream when the runtime set none;
	// application/vnd.awslambda.http-integration-response when the body
	// starts with an HTTP prelude). An error means the client is gone.
	Begin(contentType string) error
	// Write hands the client the next bytes of the response. An error
	// means the client is gone: the runtime's post is cut off.
	Write(p []byte) (int, error)
}

// ErrStreamBroken is the error of a streamed response that ended before
// the runtime finished it: the client stopped reading, or the runtime's
// post broke off. The environment is then in an unknown state.
var ErrStreamBroken = errors.New("runtimeapi: the streamed response ended early")

// streamResult serves a streamed POST /invocation/{id}/response on c (one
// that says so, or one of unknown length) when the invocation has a
// Stream, and reports whether it did; any other post is left to result,
// which reads it whole.
func (s *Server) streamResult(c *conn, w http.ResponseWriter, r *http.Request, id string) (handled bool) {
	if r.ContentLength >= 0 && !strings.EqualFold(r.Header.Get(hdrResponseMode), "streaming") {
		return false
	}
	s.mu.Lock()
	sink := s.stream
	if s.state != invDelivered || s.id != id || sink == nil {
		s.mu.Unlock()
		return false // result refuses it, or reads it whole
	}
	s.state = invReceiving
	s.stream = nil // used once: the invocation's caller owns it
	s.mu.Unlock()

	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	n, err := s.pump(sink, ct, r.Body)
	var out Outcome
	switch {
	case errors.Is(err, errStreamTooLarge):
		msg := "Response payload size exceeded maximum allowed payload size (" + strconv.FormatInt(s.maxStream, 10) + " bytes)."
		out = Outcome{Payload: lambdaerr.ErrorBody(lambdaerr.FunctionResponseSizeTooLarge, msg),
			ErrorType: lambdaerr.FunctionResponseSizeTooLarge, IsError: true, Streamed: true, Broken: ErrStreamBroken}
		s.finish(id, out)
		s.fail(w, r, http.StatusRequestEntityTooLarge, errRequestEntityTooLarge, msg)
		return true
	case err != nil:
		// The client is gone, or the runtime's post broke: either way the
		// runtime must not go on writing. Closing its connection makes its
		// next write fail; the caller recycles the environment.
		s.log.LogAttrs(logCtx, slog.LevelInfo, "streamed response cut off",
			slog.String("requestId", id), slog.Int64("bytes", n), slog.String("err", err.Error()))
		c.nc.Close()
		out = Outcome{Payload: lambdaerr.ErrorBody(lambdaerr.RuntimeUnknown, "The streamed response ended early: "+err.Error()),
			ErrorType: lambdaerr.RuntimeUnknown, IsError: true, Streamed: true, Broken: fmt.Errorf("%w: %w", ErrStreamBroken, err)}
		s.finish(id, out)
		return true
	}
	out = makeOutcome(r, nil, false) // the body went to sink; trailers may report an error
	out.Streamed = true
	if s.finish(id, out) {
		runtime.Gosched() // as in result: the caller first
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusAccepted)
	w.Write(statusOKBody)
	return true
}

// errStreamTooLarge is a streamed body above Config.MaxStreamBytes.
var errStreamTooLarge = errors.New("streamed response above the limit")

// pump copies body to sink as it arrives, after sink.Begin(contentType),
// and returns the bytes copied: errStreamTooLarge past s.maxStream, an
// error of sink (the client is gone) or of body (the runtime broke off).
func (s *Server) pump(sink Stream, contentType string, body io.Reader) (n int64, err error) {
	if err := sink.Begin(contentType); err != nil {
		return 0, fmt.Errorf("the client is gone: %w", err)
	}
	bp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(bp)
	buf := *bp
	for {
		k, rerr := body.Read(buf)
		if k > 0 {
			n += int64(k)
			if n > s.maxStream {
				return n, errStreamTooLarge
			}
			if _, err := sink.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("the client is gone: %w", err)
			}
		}
		switch {
		case rerr == io.EOF:
			return n, nil
		case rerr != nil:
			return n, fmt.Errorf("reading the runtime's stream: %w", rerr)
		}
	}
}
