package runtimeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/testkit"
)

const apiBase = "/2018-06-01/runtime"

// checkGoroutines fails t if, once its other cleanups have run, more
// goroutines are alive than when it started. Call it first in a test.
func checkGoroutines(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		if testkit.Poll(10*time.Second, func() error {
			if runtime.NumGoroutine() > before {
				return errors.New("goroutines left")
			}
			return nil
		}) != nil {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Errorf("goroutines left behind: %d before the test, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
		}
	})
}

// eventually fails t unless cond becomes true within 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, what, cond)
}

// testCtx is a context that ends with the test, or after 60 s so a hang
// fails the test instead of the whole run.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// serverState reads the state machine, for tests that must wait for a
// state the API does not expose (a parked /next).
func serverState(s *Server) (parked bool, st invState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.parked, s.state
}

func isParked(s *Server) func() bool {
	return func() bool { p, _ := serverState(s); return p }
}

// startServer runs a Server on a fresh loopback listener and closes it when
// the test ends, checking that Serve returned nil.
func startServer(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln := testkit.Listen(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		// ErrClosed when the test closed s before Serve got going.
		if err := <-served; err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v, want nil", err)
		}
	})
	return s, ln.Addr().String()
}

// runtimeClient plays a function runtime over HTTP.
type runtimeClient struct {
	base string
	hc   *http.Client
}

// newTestEnv is the start of most tests: it checks that t leaks no
// goroutines, and starts a Server with cfg and a runtime's client of it.
func newTestEnv(t *testing.T, cfg Config) (*Server, *runtimeClient, context.Context) {
	t.Helper()
	checkGoroutines(t)
	s, addr := startServer(t, cfg)
	return s, newRuntimeClient(t, addr), testCtx(t)
}

func newRuntimeClient(t testing.TB, addr string) *runtimeClient {
	tr := &http.Transport{Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	return &runtimeClient{base: "http://" + addr, hc: &http.Client{Transport: tr}}
}

type reply struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// errorObject decodes the body as a Runtime API error object.
func (r reply) errorObject(t *testing.T) errorObject {
	t.Helper()
	var obj errorObject
	if err := json.Unmarshal(r.body, &obj); err != nil {
		t.Fatalf("body %q is not an error object: %v", r.body, err)
	}
	return obj
}

// chunked hides a reader's length so the client sends it chunked, as
// aws-lambda-go does.
type chunked struct{ io.Reader }

// request sends one request; body may be nil, trailer declares and sets
// trailers.
func (c *runtimeClient) request(ctx context.Context, method, path string, body io.Reader, header, trailer http.Header) reply {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return reply{err: err}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Trailer = trailer
	resp, err := c.hc.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func (c *runtimeClient) next(ctx context.Context) reply {
	return c.request(ctx, http.MethodGet, apiBase+"/invocation/next", nil, nil, nil)
}

// nextAsync starts a /next and returns where its reply will arrive.
func (c *runtimeClient) nextAsync(ctx context.Context) <-chan reply {
	ch := make(chan reply, 1)
	go func() { ch <- c.next(ctx) }()
	return ch
}

func (c *runtimeClient) post(ctx context.Context, id, action string, body []byte) reply {
	return c.request(ctx, http.MethodPost, apiBase+"/invocation/"+id+"/"+action, bytes.NewReader(body), nil, nil)
}

type invokeResult struct {
	out Outcome
	err error
}

// invokeAsync starts an Invoke and returns where its result will arrive.
func invokeAsync(ctx context.Context, s *Server, inv Invocation) <-chan invokeResult {
	ch := make(chan invokeResult, 1)
	go func() {
		out, err := s.Invoke(ctx, inv)
		ch <- invokeResult{out, err}
	}()
	return ch
}

// receive waits for a value on ch, failing t after 30 s.
func receive[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %T", *new(T))
		panic("unreachable")
	}
}

func testInvocation(id string, payload string) Invocation {
	return Invocation{
		RequestID:   id,
		Deadline:    time.Now().Add(time.Minute),
		FunctionARN: "arn:aws:lambda:us-east-1:123456789012:function:hello",
		Payload:     []byte(payload),
	}
}

// wantStatus fails t unless r has the status and, for refusals, the
// Runtime API errorType.
func wantStatus(t *testing.T, r reply, status int, errType string) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("request failed: %v", r.err)
	}
	if r.status != status {
		t.Fatalf("status %d (body %q), want %d", r.status, r.body, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if errType == "" {
		return
	}
	obj := r.errorObject(t)
	if obj.ErrorType != errType || obj.ErrorMessage == "" {
		t.Errorf("error object %+v, want errorType %q and a message", obj, errType)
	}
}

// respond posts body as the response to invocation id and checks that
// the Invoke whose result arrives on invCh returns it.
func (c *runtimeClient) respond(t *testing.T, ctx context.Context, invCh <-chan invokeResult, id, body string) {
	t.Helper()
	wantAccepted(t, c.post(ctx, id, "response", []byte(body)))
	wantResult(t, invCh, body)
}

// wantResult fails t unless the Invoke whose result arrives on invCh
// succeeded with payload.
func wantResult(t *testing.T, invCh <-chan invokeResult, payload string) {
	t.Helper()
	if res := receive(t, invCh); res.err != nil || res.out.IsError || res.out.ErrorType != "" || string(res.out.Payload) != payload {
		t.Fatalf("Invoke = %+v (%q), %v; want the payload %q", res.out, res.out.Payload, res.err, payload)
	}
}

func wantAccepted(t *testing.T, r reply) {
	t.Helper()
	wantStatus(t, r, http.StatusAccepted, "")
	if string(r.body) != `{"status":"OK"}` {
		t.Errorf("body %q, want {\"status\":\"OK\"}", r.body)
	}
}
