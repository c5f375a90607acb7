package runtimeapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// The Extensions API (2020-01-01), served on the Runtime API's listener.
// Its rules and error types are those of Lambda's runtime interface
// emulator (rapi/handler): every refusal is a 403 with an Extension.* type.
const extPrefix = "/2020-01-01/extension/"

// Header names of the Extensions API, canonical.
const (
	hdrExtName       = "Lambda-Extension-Name"
	hdrExtID         = "Lambda-Extension-Identifier"
	hdrExtErrorType  = "Lambda-Extension-Function-Error-Type"
	hdrExtEventID    = "Lambda-Extension-Event-Identifier"
	hdrExtFeatures   = "Lambda-Extension-Accept-Feature"
	maxExtensions    = 10 // Lambda's limit per function
	eventInvoke      = "INVOKE"
	eventShutdown    = "SHUTDOWN"
	extStateTemplate = "State transition from %s to %s failed for extension %s. Error: %s"
)

// Error types of refused Extensions API requests, as Lambda names them.
const (
	errExtIDMissing      = "Extension.MissingExtensionIdentifier"
	errExtIDInvalid      = "Extension.InvalidExtensionIdentifier"
	errExtIDUnknown      = "Extension.UnknownExtensionIdentifier"
	errExtNameInvalid    = "Extension.InvalidExtensionName"
	errExtRegClosed      = "Extension.RegistrationClosed"
	errExtInvalidState   = "Extension.InvalidExtensionState"
	errExtMissingHeader  = "Extension.MissingHeader"
	errExtTooMany        = "Extension.TooManyExtensions"
	errExtInvalidEvent   = "Extension.InvalidEventType"
	errExtInvalidRequest = "InvalidRequestFormat"
)

// Shutdown reasons of a SHUTDOWN event, as Lambda sends them.
const (
	// ShutdownSpindown: the environment was collected (idle, evicted, retired).
	ShutdownSpindown = "spindown"
	// ShutdownTimeout: an invocation ran past its timeout.
	ShutdownTimeout = "timeout"
	// ShutdownFailure: the runtime or an extension failed.
	ShutdownFailure = "failure"
)

// ExtensionError is an extension's failure, which fails init or the
// invocation and ends the environment: Type is lambdaerr.ExtensionInitError,
// ExtensionExitError or ExtensionCrash.
type ExtensionError struct {
	Type      string
	Extension string // its name
	Message   string
}

func (e *ExtensionError) Error() string { return e.Type + ": " + e.Message }

// FunctionInfo is what a registration answers about the function.
type FunctionInfo struct {
	Name, Version, Handler, AccountID string
}

// extState is where one extension is in its life.
type extState uint8

const (
	extRegistered extState = iota // registered, no /event/next yet: in init
	extWaiting                    // its /event/next is parked, or will be answered from its queue
	extBusy                       // an event was delivered; it has not asked for the next
	extGone                       // exited, failed, or shut down
)

var extStateNames = [...]string{"Registered", "Ready", "Running", "Exited"}

// extension is one registered extension.
type extension struct {
	name, id         string
	external         bool
	invoke, shutdown bool // subscribed events
	state            extState
	shuttingDown     bool     // SHUTDOWN was delivered or queued
	queue            [][]byte // events not yet delivered, oldest first
	parked           *conn    // its /event/next waiting for an event, or nil
	parkedClose      bool     // that /next asked to close the connection
	// lastConn is the connection of its last request, kept alive by its
	// client (no Connection: close): the connection ending while the
	// extension works on an event is the process ending.
	lastConn *conn
}

// extensions is the Extensions API state of one environment. Its own
// lock, never held together with Server.mu.
type extensions struct {
	s        *Server
	expected []string // external extensions started with the environment
	fn       FunctionInfo
	alive    func(name string) bool // Config.ExtensionAlive
	exited   func(name string) bool // Config.ExtensionExited

	mu      sync.Mutex
	byID    map[string]*extension
	order   []*extension // registration order
	open    bool         // registration is open (init)
	failure *ExtensionError
	changed chan struct{} // closed and replaced on every change waiters care about
}

func newExtensions(s *Server, cfg *Config) *extensions {
	return &extensions{s: s, expected: cfg.Extensions, fn: cfg.Function, alive: cfg.ExtensionAlive, exited: cfg.ExtensionExited,
		byID: map[string]*extension{}, open: true, changed: make(chan struct{})}
}

// notifyLocked wakes every waiter.
func (x *extensions) notifyLocked() {
	close(x.changed)
	x.changed = make(chan struct{})
}

// failLocked records the first failure.
func (x *extensions) failLocked(e *extension, typ, msg string) {
	e.state, e.parked, e.queue = extGone, nil, nil
	if x.failure == nil {
		x.failure = &ExtensionError{Type: typ, Extension: e.name, Message: msg}
		x.s.log.LogAttrs(logCtx, slog.LevelWarn, "extension failed", slog.String("extension", e.name), slog.String("errorType", typ), slog.String("errorMessage", msg))
	}
	x.notifyLocked()
}

// handle serves a request under extPrefix; parked reports an
// /event/next left for an event to answer on c.
func (x *extensions) handle(c *conn, w http.ResponseWriter, r *http.Request, rest string) (parked bool) {
	switch rest {
	case "register":
		if x.s.method(w, r, http.MethodPost) {
			x.register(c, w, r)
		}
	case "event/next":
		if x.s.method(w, r, http.MethodGet) {
			return x.next(c, w, r)
		}
	case "init/error", "exit/error":
		if x.s.method(w, r, http.MethodPost) {
			x.reportError(w, r, rest == "init/error")
		}
	default:
		x.s.notFound(w, r)
	}
	return false
}

// registerRequest is the body of /extension/register.
type registerRequest struct {
	Events            []string `json:"events"`
	ConfigurationKeys []string `json:"configurationKeys"`
}

func (x *extensions) register(c *conn, w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(hdrExtName)
	if name == "" {
		x.s.fail(w, r, http.StatusForbidden, errExtNameInvalid, "Empty extension name")
		return
	}
	body, tooLarge, err := readBody(r, 64<<10)
	var req registerRequest
	switch {
	case err != nil:
		x.s.fail(w, r, http.StatusForbidden, errExtInvalidRequest, err.Error())
		return
	case tooLarge:
		x.s.fail(w, r, http.StatusForbidden, errExtInvalidRequest, "The request body is larger than 64 KiB.")
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		x.s.fail(w, r, http.StatusForbidden, errExtInvalidRequest, err.Error())
		return
	}
	if len(req.ConfigurationKeys) != 0 {
		x.s.fail(w, r, http.StatusForbidden, errExtInvalidRequest, "configurationKeys are deprecated; use environment variables instead")
		return
	}
	e := &extension{name: name, external: slices.Contains(x.expected, name)}
	for _, ev := range req.Events {
		switch {
		case ev == eventInvoke:
			e.invoke = true
		case ev == eventShutdown && e.external:
			e.shutdown = true
		case ev == eventShutdown:
			x.s.fail(w, r, http.StatusForbidden, errExtInvalidEvent, ev+": event is not supported for internal extensions")
			return
		default:
			x.s.fail(w, r, http.StatusForbidden, errExtInvalidEvent, fmt.Sprintf("%q: invalid event type (INVOKE, SHUTDOWN)", ev))
			return
		}
	}
	e.id = newUUID()
	if !r.Close {
		e.lastConn = c
	}

	x.mu.Lock()
	var refusal, errType string
	switch {
	case slices.ContainsFunc(x.order, func(o *extension) bool { return o.name == name }):
		errType, refusal = errExtInvalidState, fmt.Sprintf(extStateTemplate, "Registered", "Registered", name, "an extension of this name is already registered")
	case !x.open:
		errType, refusal = errExtRegClosed, "Extension registration closed already"
	case len(x.order) >= maxExtensions:
		errType, refusal = errExtTooMany, fmt.Sprintf("Extension limit (%d) reached", maxExtensions)
	}
	if refusal == "" {
		x.byID[e.id] = e
		x.order = append(x.order, e)
		x.notifyLocked()
	}
	x.mu.Unlock()
	if refusal != "" {
		x.s.fail(w, r, http.StatusForbidden, errType, refusal)
		return
	}
	x.s.log.LogAttrs(logCtx, slog.LevelDebug, "extension registered", slog.String("extension", name), slog.Bool("external", e.external), slog.Any("events", req.Events))

	resp := map[string]string{"functionName": x.fn.Name, "functionVersion": x.fn.Version, "handler": x.fn.Handler}
	if strings.Contains(r.Header.Get(hdrExtFeatures), "accountId") {
		resp["accountId"] = x.fn.AccountID
	}
	b, _ := json.Marshal(resp)
	w.Header()["Content-Type"] = jsonContentType
	w.Header().Set(hdrExtID, e.id)
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// lookup finds the extension a request names in its identifier header,
// answering the refusal itself when there is none. x.mu is held on success.
func (x *extensions) lookup(w http.ResponseWriter, r *http.Request) *extension {
	id := r.Header.Get(hdrExtID)
	switch {
	case id == "":
		x.s.fail(w, r, http.StatusForbidden, errExtIDMissing, "Missing Lambda-Extension-Identifier header")
		return nil
	case !isUUID(id):
		x.s.fail(w, r, http.StatusForbidden, errExtIDInvalid, "Invalid Lambda-Extension-Identifier")
		return nil
	}
	x.mu.Lock()
	e := x.byID[id]
	if e == nil {
		x.mu.Unlock()
		x.s.fail(w, r, http.StatusForbidden, errExtIDUnknown, "Unknown extension "+id)
		return nil
	}
	return e
}

// next serves GET /extension/event/next: the extension is done with its
// last event (or with init) and waits for the next one.
func (x *extensions) next(c *conn, w http.ResponseWriter, r *http.Request) (parked bool) {
	e := x.lookup(w, r)
	if e == nil {
		return false
	}
	if e.state == extGone || e.parked != nil {
		from := extStateNames[e.state]
		x.mu.Unlock()
		x.s.fail(w, r, http.StatusForbidden, errExtInvalidState, fmt.Sprintf(extStateTemplate, from, "Ready", e.id, "no event can follow"))
		return false
	}
	e.lastConn = nil
	if !r.Close {
		e.lastConn = c
	}
	e.state = extWaiting
	if len(e.queue) > 0 {
		ev := e.queue[0]
		e.queue = e.queue[1:]
		e.state = extBusy
		x.notifyLocked()
		x.mu.Unlock()
		writeEventTo(w, ev)
		return false
	}
	e.parked, e.parkedClose = c, r.Close
	x.notifyLocked()
	x.mu.Unlock()
	return true
}

// writeEventTo answers an /event/next in the connection goroutine.
func writeEventTo(w http.ResponseWriter, ev []byte) {
	w.Header()["Content-Type"] = jsonContentType
	w.Header().Set(hdrExtEventID, newUUID())
	w.WriteHeader(http.StatusOK)
	w.Write(ev)
}

// reportError serves POST /extension/init/error and /extension/exit/error.
func (x *extensions) reportError(w http.ResponseWriter, r *http.Request, initPhase bool) {
	typ := r.Header.Get(hdrExtErrorType)
	if typ == "" {
		x.s.fail(w, r, http.StatusForbidden, errExtMissingHeader, hdrExtErrorType+" not found")
		return
	}
	body, _, _ := readBody(r, 64<<10) // its content is only logged
	e := x.lookup(w, r)
	if e == nil {
		return
	}
	to, fatal := "ExitError", lambdaerr.ExtensionExitError
	if initPhase {
		to, fatal = "InitError", lambdaerr.ExtensionInitError
	}
	if e.state == extGone || initPhase && e.state != extRegistered {
		from := extStateNames[e.state]
		x.mu.Unlock()
		x.s.fail(w, r, http.StatusForbidden, errExtInvalidState, fmt.Sprintf(extStateTemplate, from, to, e.id, "not allowed now"))
		return
	}
	msg := fmt.Sprintf("Extension %s reported %s", e.name, typ)
	if obj := parseErrorObject(body); obj.ErrorMessage != "" {
		msg += ": " + obj.ErrorMessage
	}
	x.failLocked(e, fatal, msg)
	x.mu.Unlock()
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusAccepted)
	w.Write(statusOKBody)
}

// connGone is told of every runtime API connection that ended. An
// extension whose parked /event/next ends has exited: Extension.Crash,
// unless it was shutting down or the server is closing. When the process
// of an external extension can be looked up (Config.ExtensionAlive), the
// end of the connection of its last request while it works on an event
// is checked too, and one whose process still runs merely closed a
// connection; without that look-up only a parked /event/next tells, as an
// HTTP client may close an idle connection at any time.
func (x *extensions) connGone(c *conn) {
	x.s.mu.Lock()
	closing := x.s.isClosed
	x.s.mu.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range x.order {
		parked := e.parked == c
		last := e.lastConn == c && e.state != extWaiting
		if e.lastConn == c {
			e.lastConn = nil
		}
		if !parked && !last {
			continue
		}
		if parked {
			e.parked = nil
		}
		switch {
		case e.state == extGone:
			continue
		case closing || e.shuttingDown:
			e.state = extGone
			x.notifyLocked()
			continue
		case e.external && x.alive != nil:
			if x.alive(e.name) {
				continue
			}
		case !parked:
			continue
		}
		x.failLocked(e, lambdaerr.ExtensionCrash, "Extension "+e.name+" exited (its Extensions API connection closed) without being shut down")
	}
}

// deliverLocked hands ev to e: to its parked /event/next, else to its
// queue for the next one. x.mu is held.
func (x *extensions) deliverLocked(e *extension, ev []byte) {
	c := e.parked
	if c == nil {
		e.queue = append(e.queue, ev)
		return
	}
	e.parked, e.state = nil, extBusy
	w := &respWriter{header: make(http.Header, 3)}
	writeEventTo(w, ev)
	if err := c.writeResponse(&http.Request{Method: http.MethodGet}, w, e.parkedClose); err != nil {
		c.nc.Close() // its goroutine notices and calls connGone
	}
}

// invoke sends INVOKE for inv to every extension subscribed to it.
func (x *extensions) invoke(inv *Invocation) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var ev []byte
	for _, e := range x.order {
		if !e.invoke || e.state == extGone {
			continue
		}
		if ev == nil {
			ev = invokeEvent(inv)
		}
		x.deliverLocked(e, ev)
	}
}

func invokeEvent(inv *Invocation) []byte {
	type tracing struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	ev := struct {
		EventType          string   `json:"eventType"`
		DeadlineMs         int64    `json:"deadlineMs"`
		RequestID          string   `json:"requestId"`
		InvokedFunctionArn string   `json:"invokedFunctionArn"`
		Tracing            *tracing `json:"tracing,omitempty"`
	}{eventInvoke, inv.Deadline.UnixMilli(), inv.RequestID, inv.FunctionARN, nil}
	if inv.TraceID != "" {
		ev.Tracing = &tracing{"X-Amzn-Trace-Id", inv.TraceID}
	}
	b, _ := json.Marshal(ev)
	return b
}

// await waits until done holds (under x.mu) or an extension failed;
// ctx's end or the server's close end it too. wake, when not nil, is a
// channel whose closing may make done hold; done is also checked at each
// tick of poll (nil: never).
func (x *extensions) await(ctx context.Context, wake <-chan struct{}, poll <-chan time.Time, done func() bool) error {
	for {
		x.mu.Lock()
		if x.failure != nil {
			err := *x.failure
			x.mu.Unlock()
			return &err
		}
		if done() {
			x.mu.Unlock()
			return nil
		}
		ch := x.changed
		x.mu.Unlock()
		select {
		case <-ch:
		case <-wake:
			wake = nil // closed: done is checked once more
		case <-poll:
		case <-ctx.Done():
			return ctx.Err()
		case <-x.s.closed:
			return ErrClosed
		}
	}
}

// awaitInit waits for the end of the extensions' init: every external
// extension registered and every registered one asked for its first
// event. Registration closes then. One that exits before registering
// (Config.ExtensionExited, looked at every 50 ms) fails init with
// Extension.Crash.
func (x *extensions) awaitInit(ctx context.Context) error {
	var poll <-chan time.Time
	if x.exited != nil && len(x.expected) > 0 {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		poll = t.C
	}
	return x.await(ctx, nil, poll, func() bool {
		for _, name := range x.expected {
			if slices.ContainsFunc(x.order, func(e *extension) bool { return e.name == name }) {
				continue
			}
			if x.exited != nil && x.exited(name) {
				x.failure = &ExtensionError{Type: lambdaerr.ExtensionCrash, Extension: name,
					Message: "Extension " + name + " exited before registering"}
				x.s.log.LogAttrs(logCtx, slog.LevelWarn, "extension failed", slog.String("extension", name), slog.String("errorType", lambdaerr.ExtensionCrash))
			}
			return false
		}
		for _, e := range x.order {
			if e.state == extRegistered {
				return false
			}
		}
		x.open = false
		return true
	})
}

// pending names the external extensions that have not finished init.
func (x *extensions) pending() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var names []string
	for _, name := range x.expected {
		i := slices.IndexFunc(x.order, func(e *extension) bool { return e.name == name })
		if i < 0 || x.order[i].state == extRegistered {
			names = append(names, name)
		}
	}
	return names
}

// idle reports whether every extension subscribed to the events sub
// selects is waiting for its next event with nothing queued, or gone.
func (x *extensions) idleLocked(sub func(*extension) bool) bool {
	for _, e := range x.order {
		if sub(e) && e.state != extGone && (e.state != extWaiting || len(e.queue) > 0) {
			return false
		}
	}
	return true
}

// shutdown sends SHUTDOWN (reason, deadline) to every extension subscribed
// to it and waits until each asked for its next event or went away, or ctx
// ends.
func (x *extensions) shutdown(ctx context.Context, reason string, deadline time.Time) {
	x.mu.Lock()
	ev, _ := json.Marshal(struct {
		EventType      string `json:"eventType"`
		DeadlineMs     int64  `json:"deadlineMs"`
		ShutdownReason string `json:"shutdownReason"`
	}{eventShutdown, deadline.UnixMilli(), reason})
	for _, e := range x.order {
		if e.shutdown && e.state != extGone && !e.shuttingDown {
			e.shuttingDown = true
			x.deliverLocked(e, ev)
		}
	}
	x.mu.Unlock()
	_ = x.await(ctx, nil, nil, func() bool { return x.idleLocked(func(e *extension) bool { return e.shuttingDown }) })
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// isUUID reports whether s has a UUID's form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// The worker's side of the Extensions API.

// ExtensionsInvoke sends INVOKE for inv to the extensions subscribed to
// it; call it as inv is handed to Invoke.
func (s *Server) ExtensionsInvoke(inv *Invocation) { s.ext.invoke(inv) }

// AwaitExtensions waits, after Invoke returned, until every extension
// subscribed to INVOKE asked for its next event: the end of the
// invocation. It returns an *ExtensionError if one failed (now or
// before), ctx.Err() when ctx ends first, ErrClosed after Close.
func (s *Server) AwaitExtensions(ctx context.Context) error {
	return s.ext.await(ctx, nil, nil, func() bool { return s.ext.idleLocked(func(e *extension) bool { return e.invoke }) })
}

// PendingExtensions names the external extensions that have not finished
// their init (not registered, or no first /event/next yet).
func (s *Server) PendingExtensions() []string { return s.ext.pending() }

// Shutdown sends SHUTDOWN with reason to the extensions subscribed to it,
// after sending them what telemetry is buffered, and waits until each is
// done (asked for its next event, or went away) or ctx ends; its deadline
// is the one the event announces. Extensions without SHUTDOWN, and the
// runtime, are not told: the caller destroys the environment next.
func (s *Server) Shutdown(ctx context.Context, reason string) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Second)
	}
	s.tel.flush(ctx)
	s.ext.shutdown(ctx, reason, deadline)
}

// HasExtensions reports whether any extension registered.
func (s *Server) HasExtensions() bool {
	s.ext.mu.Lock()
	defer s.ext.mu.Unlock()
	return len(s.ext.order) > 0
}
