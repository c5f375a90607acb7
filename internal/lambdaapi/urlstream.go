package lambdaapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	"github.com/owl-project/owl/internal/registry"
)

// Function URLs in InvokeMode RESPONSE_STREAM: the response goes to the
// client as the function writes it. A runtime that streams under the
// content type application/vnd.awslambda.http-integration-response (Node's
// awslambda.HttpResponseStream.from) starts its body with a prelude, the
// JSON {"statusCode", "headers", "cookies"} and then 8 NUL bytes, which
// gives the response's status and headers; any other streamed body is a
// 200 of the runtime's content type. A runtime that answers whole is
// answered as in BUFFERED mode, and so is a function error before the
// first byte (502); after it, the status is sent and the body just ends.

// httpIntegrationType is the content type of a streamed body with a prelude.
const httpIntegrationType = "application/vnd.awslambda.http-integration-response"

// maxPrelude bounds a prelude (status, headers and cookies) held before
// the delimiter shows up.
const maxPrelude = 64 << 10

// preludeEnd is the delimiter after the prelude.
var preludeEnd = make([]byte, 8)

// errBadPrelude is a prelude that is too long or not its JSON.
var errBadPrelude = errors.New("the streamed response's HTTP prelude is not valid")

// urlStream is the ResponseStream of one function URL request. Like
// eventStream, it refuses writes once closed, so the handler's
// ResponseWriter is never used after the handler returned.
type urlStream struct {
	r    *http.Request
	w    http.ResponseWriter
	rc   *http.ResponseController
	cors *registry.Cors

	mu      sync.Mutex
	began   bool   // guarded by mu: the status and headers are written
	closed  bool   // guarded by mu
	prelude bool   // guarded by mu: the body starts with a prelude not yet complete
	pending []byte // guarded by mu: the prelude so far
}

func newURLStream(r *http.Request, w http.ResponseWriter, c *registry.Cors) *urlStream {
	return &urlStream{r: r, w: w, rc: http.NewResponseController(w), cors: c}
}

// urlPrelude is the prelude's JSON.
type urlPrelude struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Cookies    []string          `json:"cookies"`
}

// Begin starts the answer, or waits for the prelude that will say how.
func (s *urlStream) Begin(contentType string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	if contentType == httpIntegrationType {
		s.prelude = true
		return nil
	}
	return s.startLocked(urlPrelude{StatusCode: http.StatusOK, Headers: map[string]string{"Content-Type": contentType}})
}

// Write sends p to the client, once the prelude (if any) is complete.
func (s *urlStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return 0, err
	}
	if s.prelude {
		s.pending = append(s.pending, p...)
		i := bytes.Index(s.pending, preludeEnd)
		if i < 0 {
			if len(s.pending) > maxPrelude {
				return 0, errBadPrelude
			}
			return len(p), nil
		}
		var pre urlPrelude
		if json.Unmarshal(s.pending[:i], &pre) != nil {
			return 0, errBadPrelude
		}
		rest := s.pending[i+len(preludeEnd):]
		s.prelude, s.pending = false, nil
		if err := s.startLocked(pre); err != nil {
			return 0, err
		}
		return len(p), s.writeLocked(rest)
	}
	return len(p), s.writeLocked(p)
}

// usableLocked is nil while the invocation runs and the client is there.
func (s *urlStream) usableLocked() error {
	if s.closed {
		return errStreamClosed
	}
	return s.r.Context().Err()
}

// startLocked writes the status and headers of pre.
func (s *urlStream) startLocked(pre urlPrelude) error {
	if pre.StatusCode == 0 {
		pre.StatusCode = http.StatusOK
	}
	if pre.StatusCode < 100 || pre.StatusCode > 599 {
		return errBadPrelude
	}
	s.began = true
	setResponseHeaders(s.w.Header(), pre.Headers, pre.Cookies, "application/octet-stream")
	cors(s.w, s.r, s.cors)
	s.w.WriteHeader(pre.StatusCode)
	return s.rc.Flush()
}

// writeLocked writes body bytes and flushes them to the client.
func (s *urlStream) writeLocked(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if _, err := s.w.Write(p); err != nil {
		return err
	}
	return s.rc.Flush()
}

// close ends the runtime's use of s once Invoke returned res and err, and
// reports whether the answer is written (begun, or ended here); false
// leaves it to the buffered path.
func (s *urlStream) close(res *InvokeResult, err error) (answered bool) {
	lockForEnd(&s.mu, s.rc)
	defer s.mu.Unlock()
	s.closed = true
	if s.began || err != nil || res == nil || !res.Streamed || res.FunctionError {
		return s.began
	}
	// A stream that ended inside its prelude: a status and headers alone,
	// when the prelude is whole.
	var pre urlPrelude
	if !s.prelude || json.Unmarshal(bytes.TrimRight(s.pending, "\x00"), &pre) != nil || s.startLocked(pre) != nil {
		urlMessage(s.w, http.StatusBadGateway, "Internal Server Error")
	}
	return true
}
