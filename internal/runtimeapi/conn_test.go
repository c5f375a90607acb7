package runtimeapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// Tests of the HTTP connection handling itself (conn.go), over raw
// connections where a client library would hide the wire.

// dialRaw connects to addr and closes the connection when t ends.
func dialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	return nc, bufio.NewReader(nc)
}

func readRawResp(t *testing.T, br *bufio.Reader) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return resp
}

// wantClosed fails t unless the server closes the connection.
func wantClosed(t *testing.T, br *bufio.Reader) {
	t.Helper()
	if b, err := io.ReadAll(br); err != nil {
		t.Fatalf("reading to the end: %v", err)
	} else if len(b) != 0 {
		t.Fatalf("unexpected bytes before the close: %q", b)
	}
}

func TestConnUnreadableRequest(t *testing.T) {
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"garbage", "hello there\r\n\r\n", http.StatusBadRequest},
		{"header too large", "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\nX-Big: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			s, addr := startServer(t, Config{})
			nc, br := dialRaw(t, addr)
			go io.WriteString(nc, tc.req) // may fail once the server hangs up
			if resp := readRawResp(t, br); resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if isParked(s)() {
				t.Fatal("an unreadable request parked a /next")
			}
		})
	}
}

// A request sent behind a parked /next (pipelining) cannot be answered
// before the /next is: the server hangs up, and the /next is no longer
// parked.
func TestConnPipelinedBehindParkedNext(t *testing.T) {
	checkGoroutines(t)
	s, addr := startServer(t, Config{})
	nc, br := dialRaw(t, addr)
	const next = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\n\r\n"
	if _, err := io.WriteString(nc, next+next); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, br)
	eventually(t, "the /next to be unparked", func() bool { return !isParked(s)() })
	// The environment still works with a well-behaved runtime.
	ctx := testCtx(t)
	c := newRuntimeClient(t, addr)
	invCh := invokeAsync(ctx, s, testInvocation("req-1", "{}"))
	wantStatus(t, c.next(ctx), http.StatusOK, "")
	c.respond(t, ctx, invCh, "req-1", `"ok"`)
}

// A client that sends Expect: 100-continue gets it before its body is read;
// one whose body is refused unread gets no 100 and a closed connection.
func TestConnExpectContinue(t *testing.T) {
	checkGoroutines(t)
	s, addr := startServer(t, Config{MaxResponseBytes: 10})
	ctx := testCtx(t)
	invCh := invokeAsync(ctx, s, testInvocation("req-1", "{}"))
	nc, br := dialRaw(t, addr)
	io.WriteString(nc, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\n\r\n")
	if resp := readRawResp(t, br); resp.StatusCode != http.StatusOK {
		t.Fatalf("/next: status %d", resp.StatusCode)
	}

	io.WriteString(nc, "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: rt\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	if resp := readRawResp(t, br); resp.StatusCode != http.StatusContinue {
		t.Fatalf("status %d, want 100 Continue", resp.StatusCode)
	}
	io.WriteString(nc, `"ok"`)
	if resp := readRawResp(t, br); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, want 202", resp.StatusCode)
	}
	wantResult(t, invCh, `"ok"`)

	invCh = invokeAsync(ctx, s, testInvocation("req-2", "{}"))
	io.WriteString(nc, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\n\r\n")
	if resp := readRawResp(t, br); resp.StatusCode != http.StatusOK {
		t.Fatalf("/next: status %d", resp.StatusCode)
	}
	io.WriteString(nc, "POST /2018-06-01/runtime/invocation/req-2/response HTTP/1.1\r\nHost: rt\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
	if resp := readRawResp(t, br); resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Fatalf("status %d, close %v; want 413 and a close", resp.StatusCode, resp.Close)
	}
	wantClosed(t, br)
	if res := receive(t, invCh); res.err != nil || res.out.ErrorType != lambdaerr.FunctionResponseSizeTooLarge {
		t.Fatalf("Invoke = %+v, %v", res.out, res.err)
	}
}

// Header values with CR or LF (a client context is JSON, which may hold
// line breaks) cannot end the header early: they become spaces.
func TestConnEventHeaderNewlines(t *testing.T) {
	checkGoroutines(t)
	s, addr := startServer(t, Config{})
	ctx := testCtx(t)
	inv := testInvocation("req-1", "{}")
	inv.ClientContext = "{\r\n\"k\":\n\"v\"}"
	invCh := invokeAsync(ctx, s, inv)
	c := newRuntimeClient(t, addr)
	r := c.next(ctx)
	wantStatus(t, r, http.StatusOK, "")
	if got, want := r.header.Get(hdrClientContext), `{  "k": "v"}`; got != want {
		t.Fatalf("client context %q, want %q", got, want)
	}
	if string(r.body) != "{}" {
		t.Fatalf("body %q", r.body)
	}
	wantAccepted(t, c.post(ctx, "req-1", "response", nil))
	receive(t, invCh)
}

// A /next that asks to close the connection gets its event with
// Connection: close.
func TestConnNextConnectionClose(t *testing.T) {
	checkGoroutines(t)
	s, addr := startServer(t, Config{})
	ctx := testCtx(t)
	nc, br := dialRaw(t, addr)
	io.WriteString(nc, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\nConnection: close\r\n\r\n")
	eventually(t, "/next to park", isParked(s))
	invCh := invokeAsync(ctx, s, testInvocation("req-1", "{}"))
	if resp := readRawResp(t, br); resp.StatusCode != http.StatusOK || !resp.Close {
		t.Fatalf("status %d, close %v; want 200 and a close", resp.StatusCode, resp.Close)
	}
	nc.Close()
	c := newRuntimeClient(t, addr)
	wantAccepted(t, c.post(ctx, "req-1", "response", nil))
	if res := receive(t, invCh); res.err != nil {
		t.Fatal(res.err)
	}
}

// Invoke writes the event onto the parked /next's connection itself; a
// runtime that does not read it cannot keep Invoke past its ctx.
func TestConnEventWriteEndsWithCtx(t *testing.T) {
	checkGoroutines(t)
	s, addr := startServer(t, Config{})
	nc, _ := dialRaw(t, addr)
	io.WriteString(nc, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\n\r\n")
	eventually(t, "/next to park", isParked(s))

	inv := testInvocation("req-1", "")
	inv.Payload = make([]byte, 64<<20) // more than the sockets buffer
	ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Invoke(ctx, inv)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Invoke = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Invoke returned after %v", d)
	}
	// The runtime never got the whole event: it was withdrawn, and the
	// environment takes another invocation.
	if !errors.Is(err, ErrWithdrawn) {
		t.Errorf("Invoke = %v, want ErrWithdrawn", err)
	}
	if _, st := serverState(s); st != invNone {
		t.Errorf("state %v after the withdrawal", st)
	}
}

// A handler of Config.Extra that sets Content-Length itself (Owl's
// Lambda API does) gets it on the wire once: urllib3, under boto3, joins
// two into "25, 25" and cannot read the answer.
func TestConnContentLengthOnce(t *testing.T) {
	_, addr := startServer(t, Config{Extra: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "2")
		_, _ = w.Write([]byte("{}"))
	})})
	nc, br := dialRaw(t, addr)
	if _, err := io.WriteString(nc, "GET /2015-03-31/functions HTTP/1.1\r\nHost: rt\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	var lengths []string // Go's ReadResponse would fold two equal ones
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		if k, v, _ := strings.Cut(line, ":"); strings.EqualFold(k, "Content-Length") {
			lengths = append(lengths, strings.TrimSpace(v))
		}
	}
	if len(lengths) != 1 || lengths[0] != "2" {
		t.Fatalf("Content-Length %q, want one, 2", lengths)
	}
}
