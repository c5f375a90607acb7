package runtimeapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Why not net/http's server: the Runtime API is one runtime per server,
// doing GET /next, POST /response, GET /next… on one keep-alive connection.
// net/http starts a background-read goroutine for every request (to cancel
// the request's context when the client hangs up) and stops it again when
// the response is written; on the warm path that was a goroutine creation,
// a thread wake-up, an extra read(2) and a read-deadline change per request,
// and a goroutine hand-off from Invoke to the parked /next handler. Here one
// goroutine per connection reads requests (http.ReadRequest: the same
// parser, bodies, chunking and trailers as net/http's server) and writes
// the answers; a parked /next keeps that goroutine reading, which is how a
// hang-up is noticed, and Invoke writes the event onto the connection itself.

// Limits and delays net/http's server applies too.
const (
	// maxHeaderBytes bounds a request's line and headers
	// (http.DefaultMaxHeaderBytes plus bufio slack, as net/http allows).
	maxHeaderBytes = http.DefaultMaxHeaderBytes + 4096
	// maxPostHandlerReadBytes is how much unread body is discarded after a
	// response to keep the connection; more and it is closed.
	maxPostHandlerReadBytes = 256 << 10
	// rstAvoidanceDelay is how long a connection closed with unread input
	// waits after its response, so the client reads the response before
	// the kernel's reset.
	rstAvoidanceDelay = 500 * time.Millisecond
)

// conn is one runtime connection.
type conn struct {
	s  *Server
	nc net.Conn
	lr io.LimitedReader // nc, limited to maxHeaderBytes while a header is read
	br *bufio.Reader    // over lr

	// wmu serialises writes: answers by the connection's goroutine and the
	// event Invoke writes for a /next parked here. Lock order: Server.mu,
	// then wmu.
	wmu sync.Mutex
	bw  *bufio.Writer // guarded by wmu
	// nextClose: the parked /next asked to close the connection after its
	// answer. Guarded by Server.mu.
	nextClose bool
	// guard counts a pending expireWrite of deliver (made once per
	// connection: expireWrite is a method value allocated with it).
	guard       sync.WaitGroup
	expireWrite func()

	resp respWriter // reused for each answer of the connection's goroutine
}

// Serve accepts runtime connections on ln until Close, then returns nil. It
// closes ln. It may be called before or after WaitReady/Invoke; calling it
// after Close returns ErrClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.isClosed {
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	s.serving++
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		ln.Close()
		s.mu.Lock()
		delete(s.listeners, ln)
		s.serving--
		s.idle.Broadcast()
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.isClosed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// Like net/http: wait and retry a transient failure.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("runtime API accept", "err", err, "retryIn", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := &conn{s: s, nc: nc}
		c.lr.R = nc
		c.br = bufio.NewReaderSize(&c.lr, 4096)
		c.bw = bufio.NewWriterSize(nc, 4096)
		c.resp.header = make(http.Header, 4)
		c.expireWrite = func() {
			_ = nc.SetWriteDeadline(time.Unix(1, 0)) // in the past: a blocked write fails now
			c.guard.Done()
		}
		s.mu.Lock()
		if s.isClosed {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.handlers++
		s.mu.Unlock()
		go c.serve()
	}
}

// serve reads and answers c's requests until the runtime hangs up, the
// connection fails or the server closes.
func (c *conn) serve() {
	s := c.s
	defer func() {
		c.nc.Close()
		s.mu.Lock()
		c.unparkLocked()
		delete(s.conns, c)
		s.mu.Unlock()
		s.ext.connGone(c)
		s.leave()
	}()
	for {
		c.lr.N = maxHeaderBytes
		r, err := http.ReadRequest(c.br)
		if err != nil {
			// io.EOF: the runtime hung up between requests, the usual end;
			// a network error or a request cut short: it hung up or the
			// server is closing. Anything else is not HTTP.
			var ne net.Error
			if c.lr.N <= 0 || !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &ne) {
				c.badRequest(err)
				c.closeWriteAndWait()
			}
			return
		}
		c.lr.N = math.MaxInt64 // bodies are bounded by their handlers
		s.mu.Lock()
		pipelined := s.parkedConn == c
		s.mu.Unlock()
		if pipelined {
			// A request before the parked /next was answered: HTTP/1.1
			// pipelining, which no runtime client does. Its answer would
			// have to wait for an event that may never come: hang up.
			s.log.Warn("runtime API request refused", "method", r.Method, "path", r.URL.Path,
				"reason", "sent while a /next on the same connection was unanswered")
			return
		}
		if strings.EqualFold(r.Header.Get("Expect"), "100-continue") && r.ContentLength != 0 {
			r.Body = &expectContinueReader{c: c, r: r.Body}
		}

		c.resp.reset()
		if s.handle(c, &c.resp, r) {
			// A /next, parked (Invoke answers it on c) or answered. A GET
			// has no body worth reading: a large one ends the connection.
			if n, err := io.CopyN(io.Discard, r.Body, maxPostHandlerReadBytes+1); err != io.EOF || n > maxPostHandlerReadBytes {
				return
			}
			continue
		}

		// Keep the connection only if the body is consumed, as net/http
		// does: discard a small unread rest, close after a large one.
		// A client waiting for 100 Continue that was never sent is not
		// sending its body: close rather than ask for it.
		closeAfter := r.Close
		if ec, ok := r.Body.(*expectContinueReader); ok && !ec.sent {
			closeAfter = true
		} else if n, err := io.CopyN(io.Discard, r.Body, maxPostHandlerReadBytes+1); err != io.EOF || n > maxPostHandlerReadBytes {
			closeAfter = true
		}
		if err := c.writeResponse(r, &c.resp, closeAfter); err != nil || closeAfter {
			if err == nil {
				c.closeWriteAndWait()
			}
			return
		}
	}
}

// unparkLocked forgets a /next parked on c, which is going away. Server.mu
// must be held.
func (c *conn) unparkLocked() {
	if c.s.parkedConn == c {
		c.s.parked, c.s.parkedConn = false, nil
	}
}

// badRequest answers a request that could not be parsed, as net/http does,
// before the connection is closed.
func (c *conn) badRequest(err error) {
	status, msg := http.StatusBadRequest, "400 Bad Request"
	if c.lr.N <= 0 {
		status, msg = http.StatusRequestHeaderFieldsTooLarge, "431 Request Header Fields Too Large"
	}
	c.s.log.Warn("runtime API request unreadable", "err", err, "status", status)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.bw.WriteString("HTTP/1.1 " + msg + "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" + msg)
	c.bw.Flush()
}

// closeWriteAndWait ends a connection that may have unread input: it sends
// FIN, then reads and drops what the client still sends, for at most
// rstAvoidanceDelay, so the client gets the answer rather than a reset.
func (c *conn) closeWriteAndWait() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(rstAvoidanceDelay))
	_, _ = io.Copy(io.Discard, c.nc)
}

// writeResponse writes w's answer to r.
func (c *conn) writeResponse(r *http.Request, w *respWriter, closeAfter bool) error {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.bw.AvailableBuffer()
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\n"...)
	for k, vs := range w.header {
		if k == "Content-Length" { // written below, once: a client may refuse two
			continue
		}
		for _, v := range vs {
			b = appendHeader(b, k, v)
		}
	}
	b = appendHeader(b, "Content-Length", strconv.Itoa(len(w.body)))
	if closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	if r.Method != http.MethodHead {
		b = append(b, w.body...)
	}
	if _, err := c.bw.Write(b); err != nil {
		return err
	}
	return c.bw.Flush()
}

// writeEvent answers the /next on c with inv. The caller holds c.wmu.
func (c *conn) writeEvent(inv *Invocation, closeAfter bool) error {
	b := c.bw.AvailableBuffer()
	b = append(b, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"...)
	b = appendHeader(b, hdrRequestID, inv.RequestID)
	b = append(b, hdrDeadlineMs+": "...)
	b = strconv.AppendInt(b, inv.Deadline.UnixMilli(), 10)
	b = append(b, "\r\n"...)
	b = appendHeader(b, hdrFunctionARN, inv.FunctionARN)
	if inv.TraceID != "" {
		b = appendHeader(b, hdrTraceID, inv.TraceID)
	}
	if inv.ClientContext != "" {
		b = appendHeader(b, hdrClientContext, inv.ClientContext)
	}
	if inv.CognitoIdentity != "" {
		b = appendHeader(b, hdrCognitoIdentity, inv.CognitoIdentity)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(inv.Payload)), 10)
	if closeAfter {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	if _, err := c.bw.Write(b); err != nil {
		return err
	}
	// bufio writes a large payload straight to the connection, uncopied.
	if _, err := c.bw.Write(inv.Payload); err != nil {
		return err
	}
	return c.bw.Flush()
}

// appendHeader appends "key: value\r\n". CR and LF in value become spaces,
// as net/http writes them: a value (a client context) must not end the
// header early.
func appendHeader(b []byte, key, value string) []byte {
	b = append(b, key...)
	b = append(b, ": "...)
	for i := 0; i < len(value); i++ {
		switch ch := value[i]; ch {
		case '\r', '\n':
			b = append(b, ' ')
		default:
			b = append(b, ch)
		}
	}
	return append(b, "\r\n"...)
}

// respWriter collects one answer of the connection's goroutine. It
// implements http.ResponseWriter so that handlers read like net/http ones.
type respWriter struct {
	header http.Header
	status int
	body   []byte
}

func (w *respWriter) reset() {
	clear(w.header)
	w.status = 0
	if cap(w.body) > 64<<10 {
		w.body = nil // not worth keeping for the connection's life
	}
	w.body = w.body[:0]
}

func (w *respWriter) Header() http.Header { return w.header }

func (w *respWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *respWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}

// expectContinueReader sends "100 Continue" before the first read of a
// body whose client waits for it (Expect: 100-continue).
type expectContinueReader struct {
	c    *conn
	r    io.ReadCloser
	sent bool
}

func (e *expectContinueReader) Read(p []byte) (int, error) {
	if !e.sent {
		e.sent = true
		e.c.wmu.Lock()
		_, err := e.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err == nil {
			err = e.c.bw.Flush()
		}
		e.c.wmu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	return e.r.Read(p)
}

func (e *expectContinueReader) Close() error { return e.r.Close() }

// logCtx is the context of this package's log records: requests have none
// of their own.
var logCtx = context.Background()
