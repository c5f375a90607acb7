package runtimeapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// DefaultMaxResponseBytes is Lambda's limit on a synchronous response
// payload, and the default of Config.MaxResponseBytes.
const DefaultMaxResponseBytes = 6291556

var (
	// ErrClosed is returned by Invoke and WaitReady after Close.
	ErrClosed = errors.New("runtimeapi: server closed")
	// ErrBusy is returned by Invoke while another invocation is in progress,
	// or while an abandoned one is still running in the runtime.
	ErrBusy = errors.New("runtimeapi: an invocation is already in progress")
	// ErrWithdrawn is wrapped (with ctx's error) by Invoke when ctx ended
	// before the runtime took the event: the function never saw it, so the
	// caller may run it elsewhere without running it twice.
	ErrWithdrawn = errors.New("runtimeapi: invocation withdrawn before the runtime took it")
)

// Config is the configuration of one Server. The zero value is valid.
type Config struct {
	// MaxResponseBytes caps the body of /response, /error and /init/error
	// posts. Zero means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// MaxStreamBytes caps a streamed response (stream.go). Zero means
	// DefaultMaxStreamBytes.
	MaxStreamBytes int64
	// Extra, when set, serves the requests outside the Runtime API's
	// paths on the same listener: Owl's Lambda API subset for the
	// function's own calls (AWS_ENDPOINT_URL_LAMBDA). Nil: 404.
	Extra http.Handler
	// Extensions names the external extensions the environment started
	// (the executables of /opt/extensions): init waits for each to
	// register and ask for its first event (extensions.go).
	Extensions []string
	// ExtensionAlive, when set, reports whether the external extension
	// of that name still runs; it tells a crash from a closed connection.
	ExtensionAlive func(name string) bool
	// ExtensionExited, when set, reports whether the external extension
	// of that name has exited for good (it may not have started yet when
	// it says false): init fails if one exits before registering.
	ExtensionExited func(name string) bool
	// Function is what an extension's registration answers.
	Function FunctionInfo
	// Dial connects to addr on the environment's loopback, for telemetry
	// deliveries to an extension's listener. Nil: none is delivered.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// Validate reports a setting out of range.
func (c Config) Validate() error {
	if c.MaxResponseBytes < 0 {
		return fmt.Errorf("runtimeapi: MaxResponseBytes must be >= 0 (0 = %d), got %d", DefaultMaxResponseBytes, c.MaxResponseBytes)
	}
	if c.MaxStreamBytes < 0 {
		return fmt.Errorf("runtimeapi: MaxStreamBytes must be >= 0 (0 = %d), got %d", DefaultMaxStreamBytes, c.MaxStreamBytes)
	}
	return nil
}

// Invocation is one event handed to the runtime by Invoke.
type Invocation struct {
	// RequestID is the Lambda request id; it becomes a path segment, so it
	// must be non-empty printable ASCII without '/', '?', '#', '%' or space
	// (a UUID in practice).
	RequestID string
	// Deadline is sent as Lambda-Runtime-Deadline-Ms; it must be set.
	Deadline time.Time
	// FunctionARN is the invoked (possibly qualified) function ARN.
	FunctionARN string
	// TraceID is the X-Ray trace header; may be empty.
	TraceID string
	// ClientContext is the decoded client context JSON; may be empty.
	ClientContext string
	// CognitoIdentity is the Cognito identity JSON; may be empty.
	CognitoIdentity string
	// Payload is the event. Invoke takes it over: the caller must not
	// modify it afterwards (a runtime may post its result before it has
	// read the whole event). The Server never modifies it and drops its
	// reference once the event is written.
	Payload []byte
	// Stream, when set, receives a response the runtime streams as it
	// arrives (stream.go); the Outcome then says Streamed. Nil: a streamed
	// response is read whole like any other.
	Stream Stream
}

func (inv *Invocation) validate() error {
	id := inv.RequestID
	if id == "" {
		return errors.New("runtimeapi: invocation has no RequestID")
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '%' {
			return fmt.Errorf("runtimeapi: RequestID %q is not a valid path segment", id)
		}
	}
	if inv.Deadline.IsZero() {
		return fmt.Errorf("runtimeapi: invocation %s has no Deadline", id)
	}
	return nil
}

// Outcome is what the runtime posted for an invocation.
type Outcome struct {
	// Payload is the /response body or the error object of the invocation:
	// the /error body, the decoded Lambda-Runtime-Function-Error-Body
	// trailer, or one made by this package (ResponseSizeTooLarge). It is
	// owned by the caller.
	Payload []byte
	// ErrorType is empty on success. On error it is the
	// Lambda-Runtime-Function-Error-Type trailer, else the header of that
	// name, else the errorType field of the JSON body, else "Unhandled".
	ErrorType string
	// IsError is true when the invocation failed.
	IsError bool
	// Streamed is true when the response went to Invocation.Stream:
	// Payload is then empty, or the error object of a failure.
	Streamed bool
	// Broken, when set, wraps ErrStreamBroken: the streamed response
	// ended early (the client went away, the runtime broke off, or it
	// passed MaxStreamBytes), and the environment should be recycled.
	Broken error
}

// InitError is returned by WaitReady (and by Invoke) when the runtime posted
// /runtime/init/error.
type InitError struct {
	// Type is the Lambda-Runtime-Function-Error-Type header, else the
	// errorType of the body, else "Runtime.Unknown".
	Type string
	// Message is the errorMessage of the body, if any.
	Message string
	// Body is the body as posted.
	Body []byte
}

func (e *InitError) Error() string {
	if e.Message == "" {
		return "runtime init failed: " + e.Type
	}
	return "runtime init failed: " + e.Type + ": " + e.Message
}

// phase is the environment's init state.
type phase uint8

const (
	phaseInit       phase = iota // the runtime has not called /next yet
	phaseReady                   // it has: init is done
	phaseInitFailed              // it posted /init/error
)

// invState is the state of the current invocation. Allowed transitions,
// all under Server.mu:
//
//	invNone      → invQueued     Invoke, no /next parked
//	invNone      → invDelivered  Invoke writes the event to the parked /next
//	invQueued    → invDelivered  /next takes the queued event
//	invQueued    → invNone       Invoke's ctx ends, or init fails
//	invDelivered → invReceiving  /response or /error of the id starts
//	invReceiving → invDelivered  its body could not be read (the runtime may retry)
//	invReceiving → invNone       its body was read: the outcome is final
//	invDelivered → invQueued     writing the event to its /next failed (the runtime hung up)
type invState uint8

const (
	invNone invState = iota
	invQueued
	invDelivered
	invReceiving
)

// Server is the Runtime API server of one execution environment. Create it
// with New, run Serve on the environment's listener, and call Close when the
// environment is destroyed.
type Server struct {
	log          *slog.Logger
	extra        http.Handler // Config.Extra
	maxBody      int64
	maxStream    int64  // Config.MaxStreamBytes
	tooLargeBody []byte // the Outcome.Payload of lambdaerr.FunctionResponseSizeTooLarge
	tooLargeMsg  string

	// Channels are made by New and never replaced.
	closed     chan struct{} // closed by Close
	initDone   chan struct{} // closed at the first /next or at /init/error
	initFailed chan struct{} // closed at /init/error
	done       chan Outcome  // result handler → Invoke; cap 1, empty between invocations

	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	idle     sync.Cond  // on mu; signalled when handlers and serving drop to 0 after Close
	isClosed bool       // guarded by mu
	handlers int        // guarded by mu: running connection goroutines
	serving  int        // guarded by mu: running Serve calls
	phase    phase      // guarded by mu
	initErr  *InitError // guarded by mu; immutable once initFailed is closed
	parked   bool       // guarded by mu: a /next waits on parkedConn
	// parkedConn is the connection of the parked /next; Invoke writes the
	// event there. Guarded by mu.
	parkedConn *conn
	listeners  map[net.Listener]struct{} // guarded by mu: those of running Serve calls
	ext        *extensions               // the Extensions API (extensions.go); own lock
	tel        *telemetry                // the Telemetry API (telemetry.go); own lock
	conns      map[*conn]struct{}        // guarded by mu: open runtime connections
	state      invState                  // guarded by mu
	id         string                    // guarded by mu: request id of the current invocation (state != invNone)
	inv        Invocation                // guarded by mu: the queued event (state == invQueued)
	// abandoned is set when Invoke gave up on a delivered invocation: its
	// result is accepted and discarded. Guarded by mu.
	abandoned bool
	lastID    string // guarded by mu: id of the last finished invocation
	// stream is the current invocation's Invocation.Stream until a
	// streamed /response takes it. Guarded by mu.
	stream Stream
}

// New returns a Server. logger may be nil.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	maxBody := cfg.MaxResponseBytes
	if maxBody == 0 {
		maxBody = DefaultMaxResponseBytes
	}
	s := &Server{
		extra:      cfg.Extra,
		log:        logger,
		maxBody:    maxBody,
		maxStream:  cmp.Or(cfg.MaxStreamBytes, DefaultMaxStreamBytes),
		closed:     make(chan struct{}),
		initDone:   make(chan struct{}),
		initFailed: make(chan struct{}),
		done:       make(chan Outcome, 1),
		listeners:  map[net.Listener]struct{}{},
		conns:      map[*conn]struct{}{},
	}
	s.idle.L = &s.mu
	s.ext = newExtensions(s, &cfg)
	s.tel = &telemetry{s: s, dial: cfg.Dial}
	s.tooLargeMsg = "Response payload size exceeded maximum allowed payload size (" + strconv.FormatInt(maxBody, 10) + " bytes)."
	s.tooLargeBody = lambdaerr.ErrorBody(lambdaerr.FunctionResponseSizeTooLarge, s.tooLargeMsg)
	return s, nil
}

// Close closes the listener and all connections, makes pending and future
// Invoke and WaitReady calls return ErrClosed, and waits until Serve and
// every handler have returned. It is idempotent; every call returns the
// first call's error.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.isClosed = true
		close(s.closed)
		for ln := range s.listeners {
			if err := ln.Close(); err != nil && s.closeErr == nil && !errors.Is(err, net.ErrClosed) {
				s.closeErr = err
			}
		}
		// Connection goroutines leave when their connection is closed here.
		for c := range s.conns {
			c.nc.Close()
		}
		for s.handlers > 0 || s.serving > 0 {
			s.idle.Wait()
		}
		s.mu.Unlock()
		s.tel.close()
	})
	return s.closeErr
}

// WaitReady returns nil once the runtime has finished init, that is made its
// first /next request, and so has every extension (extensions.go); an
// *InitError if the runtime posted /runtime/init/error instead, an
// *ExtensionError if an extension failed; ctx.Err() if ctx ends first;
// ErrClosed after Close. A runtime that exits during init is the caller's
// to notice (Runtime.ExitError).
func (s *Server) WaitReady(ctx context.Context) error {
	if err := s.ext.await(ctx, s.initDone, nil, s.runtimeInitEnded); err != nil {
		return err
	}
	if err := s.initResult(); err != nil {
		return err
	}
	return s.ext.awaitInit(ctx)
}

// runtimeInitEnded reports whether the runtime's init ended (its first
// /next or /init/error).
func (s *Server) runtimeInitEnded() bool {
	select {
	case <-s.initDone:
		return true
	default:
		return false
	}
}

// initResult is the outcome of init; call it only after initDone is closed.
func (s *Server) initResult() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.initErr != nil {
		return s.initErr
	}
	return nil
}

// Invoke hands inv to the runtime — to its parked /next request, or to the
// next one it makes (also before WaitReady returned) — and waits for the
// /response or /error posted for inv.RequestID.
//
// It returns the Outcome, nil; or ctx.Err() when ctx ends first (see the
// package documentation for the state it leaves); ErrBusy while another
// invocation is in progress; an *InitError if the runtime's init failed;
// ErrClosed after Close; or an error for an invalid inv.
func (s *Server) Invoke(ctx context.Context, inv Invocation) (Outcome, error) {
	if err := inv.validate(); err != nil {
		return Outcome{}, err
	}
	if err := ctx.Err(); err != nil {
		return Outcome{}, err
	}
	s.mu.Lock()
	switch {
	case s.isClosed:
		s.mu.Unlock()
		return Outcome{}, ErrClosed
	case s.phase == phaseInitFailed:
		err := s.initErr
		s.mu.Unlock()
		return Outcome{}, err
	case s.state != invNone:
		s.mu.Unlock()
		return Outcome{}, ErrBusy
	}
	s.id = inv.RequestID
	s.abandoned = false
	s.stream = inv.Stream
	if c := s.parkedConn; c != nil {
		// The event is written from this goroutine, with no hand-off to
		// the connection's.
		s.parked, s.parkedConn = false, nil
		s.state = invDelivered
		closeAfter := c.nextClose
		c.wmu.Lock() // before mu is released: see deliver
		s.mu.Unlock()
		s.deliver(ctx, c, &inv, closeAfter)
	} else {
		s.state = invQueued
		s.inv = inv
		s.mu.Unlock()
	}

	select {
	case out := <-s.done:
		return out, nil
	case <-ctx.Done():
		return s.abandon(ctx.Err())
	case <-s.initFailed:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.state == invQueued {
			s.state, s.inv, s.id = invNone, Invocation{}, ""
		}
		return Outcome{}, s.initErr
	case <-s.closed:
		return Outcome{}, ErrClosed
	}
}

// abandon is Invoke giving up on the current invocation because of err.
func (s *Server) abandon(err error) (Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The result may have been posted while we were waking up: the
	// invocation is complete, so report it rather than waste it.
	select {
	case out := <-s.done:
		return out, nil
	default:
	}
	switch s.state {
	case invQueued: // the runtime never saw it: withdraw it
		s.state, s.inv, s.id = invNone, Invocation{}, ""
		return Outcome{}, fmt.Errorf("%w: %w", ErrWithdrawn, err)
	case invDelivered, invReceiving:
		s.abandoned = true
	}
	return Outcome{}, err
}

// finish makes out the outcome of invocation id, which is in invReceiving,
// and reports whether it was handed to a waiting Invoke.
func (s *Server) finish(id string, out Outcome) (delivered bool) {
	s.mu.Lock()
	delivered = !s.abandoned
	if delivered {
		s.done <- out // never blocks: cap 1, drained by Invoke or abandon
	}
	s.state, s.id, s.abandoned, s.lastID = invNone, "", false, id
	s.stream = nil
	s.mu.Unlock()
	return delivered
}
