package runtimeapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
)

const extBase = "/2020-01-01/extension"

// register registers an extension named name for events, as an extension
// does, and returns the reply.
func (c *runtimeClient) register(ctx context.Context, name, events string) reply {
	return c.request(ctx, http.MethodPost, extBase+"/register", strings.NewReader(`{"events":`+events+`}`),
		http.Header{hdrExtName: {name}}, nil)
}

// extRequest sends an Extensions API request as the extension id.
func (c *runtimeClient) extRequest(ctx context.Context, method, path, id string, header http.Header, body string) reply {
	h := http.Header{}
	for k, v := range header {
		h[k] = v
	}
	if id != "" {
		h.Set(hdrExtID, id)
	}
	return c.request(ctx, method, path, strings.NewReader(body), h, nil)
}

func (c *runtimeClient) extNextAsync(ctx context.Context, id string) <-chan reply {
	ch := make(chan reply, 1)
	go func() { ch <- c.extRequest(ctx, http.MethodGet, extBase+"/event/next", id, nil, "") }()
	return ch
}

// extEvent decodes an /event/next reply.
type extEvent struct {
	EventType, RequestID, InvokedFunctionArn, ShutdownReason string
	DeadlineMs                                               int64
}

func wantEvent(t *testing.T, r reply, typ string) extEvent {
	t.Helper()
	wantStatus(t, r, http.StatusOK, "")
	var ev extEvent
	if err := json.Unmarshal(r.body, &ev); err != nil || ev.EventType != typ || r.header.Get(hdrExtEventID) == "" {
		t.Fatalf("event %s (%v), want a %s with its identifier", r.body, err, typ)
	}
	return ev
}

// notYet fails t if ch already has a value: what it waits for must not
// have happened.
func notYet[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s already: %v", what, v)
	default:
	}
}

// TestExtensionsLifecycle follows an external extension through Lambda's
// lifecycle: init waits for it, INVOKE reaches it with the request id, the
// invocation ends only when it asks for its next event, and SHUTDOWN ends
// it.
func TestExtensionsLifecycle(t *testing.T) {
	s, c, ctx := newTestEnv(t, Config{Extensions: []string{"ext-a"}, Function: FunctionInfo{Name: "hello", Version: "$LATEST", Handler: "app.handler"}})
	ready := make(chan error, 1)
	go func() { ready <- s.WaitReady(ctx) }()
	runtimeNext := c.nextAsync(ctx)
	eventually(t, "the runtime's /next parked", isParked(s))
	notYet(t, ready, "init ended before the extension registered")

	r := c.register(ctx, "ext-a", `["INVOKE","SHUTDOWN"]`)
	wantStatus(t, r, http.StatusOK, "")
	id := r.header.Get(hdrExtID)
	if !isUUID(id) || string(r.body) != `{"functionName":"hello","functionVersion":"$LATEST","handler":"app.handler"}` {
		t.Fatalf("registration: id %q, body %s", id, r.body)
	}
	wantStatus(t, c.register(ctx, "ext-a", `["INVOKE"]`), http.StatusForbidden, errExtInvalidState)
	notYet(t, ready, "init ended before the extension's first /event/next")

	extNext := c.extNextAsync(ctx, id)
	if err := receive(t, ready); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	wantStatus(t, c.register(ctx, "late", `[]`), http.StatusForbidden, errExtRegClosed)

	inv := testInvocation("req-1", `{"n":1}`)
	s.ExtensionsInvoke(&inv)
	invCh := invokeAsync(ctx, s, inv)
	ev := wantEvent(t, receive(t, extNext), eventInvoke)
	if ev.RequestID != "req-1" || ev.InvokedFunctionArn != inv.FunctionARN || ev.DeadlineMs != inv.Deadline.UnixMilli() {
		t.Errorf("INVOKE %+v, want req-1 of %s", ev, inv.FunctionARN)
	}
	if r := receive(t, runtimeNext); r.header.Get(hdrRequestID) != "req-1" {
		t.Fatalf("the runtime got %v %q", r.err, r.header.Get(hdrRequestID))
	}
	c.respond(t, ctx, invCh, "req-1", `"done"`)
	done := make(chan error, 1)
	go func() { done <- s.AwaitExtensions(ctx) }()
	notYet(t, done, "the invocation ended while its extension worked on it")
	extNext = c.extNextAsync(ctx, id)
	if err := receive(t, done); err != nil {
		t.Fatalf("AwaitExtensions: %v", err)
	}

	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	shut := make(chan struct{})
	go func() { s.Shutdown(sctx, ShutdownSpindown); close(shut) }()
	ev = wantEvent(t, receive(t, extNext), eventShutdown)
	if ev.ShutdownReason != ShutdownSpindown || ev.DeadlineMs <= time.Now().UnixMilli() {
		t.Errorf("SHUTDOWN %+v, want spindown with a deadline ahead", ev)
	}
	extNext = c.extNextAsync(ctx, id) // done with SHUTDOWN
	receive(t, shut)
	if sctx.Err() != nil {
		t.Errorf("Shutdown waited for its whole budget; the extension was done before")
	}
	// The server closing (cleanup) answers the last /event/next.
	t.Cleanup(func() { <-extNext })
}

// TestExtensionsRefusals: requests that break the Extensions and Telemetry
// APIs' rules get Lambda's error types and change nothing.
func TestExtensionsRefusals(t *testing.T) {
	s, c, ctx := newTestEnv(t, Config{})
	id := c.register(ctx, "internal", `["INVOKE"]`).header.Get(hdrExtID)
	if id == "" {
		t.Fatal("no identifier")
	}
	errType := http.Header{hdrExtErrorType: {"Extension.Boom"}}
	for _, tc := range []struct {
		name, method, path, id string
		header                 http.Header
		body                   string
		status                 int
		errType                string
	}{
		{"no name", "POST", extBase + "/register", "", nil, `{"events":["INVOKE"]}`, 403, errExtNameInvalid},
		{"bad JSON", "POST", extBase + "/register", "", http.Header{hdrExtName: {"x"}}, `{"events":`, 403, errExtInvalidRequest},
		{"unknown event", "POST", extBase + "/register", "", http.Header{hdrExtName: {"x"}}, `{"events":["RESTORE"]}`, 403, errExtInvalidEvent},
		{"SHUTDOWN for an internal extension", "POST", extBase + "/register", "", http.Header{hdrExtName: {"x"}}, `{"events":["SHUTDOWN"]}`, 403, errExtInvalidEvent},
		{"twice", "POST", extBase + "/register", "", http.Header{hdrExtName: {"internal"}}, `{"events":[]}`, 403, errExtInvalidState},
		{"no identifier", "GET", extBase + "/event/next", "", nil, "", 403, errExtIDMissing},
		{"malformed identifier", "GET", extBase + "/event/next", "not-a-uuid", nil, "", 403, errExtIDInvalid},
		{"unknown identifier", "GET", extBase + "/event/next", newUUID(), nil, "", 403, errExtIDUnknown},
		{"init/error without its type", "POST", extBase + "/init/error", id, nil, "", 403, errExtMissingHeader},
		{"exit/error of an unknown one", "POST", extBase + "/exit/error", newUUID(), errType, "", 403, errExtIDUnknown},
		{"wrong method", "PUT", extBase + "/register", "", nil, "", 405, errMethodNotAllowed},
		{"telemetry without identifier", "PUT", telemetryPath, "", nil, `{}`, 403, errExtIDMissing},
		{"telemetry schema", "PUT", telemetryPath, id, nil, `{"schemaVersion":"2019-01-01","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1234"}}`, 400, errValidation},
		{"telemetry types", "PUT", telemetryPath, id, nil, `{"schemaVersion":"2022-12-13","types":["logs"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1234"}}`, 400, errValidation},
		{"telemetry TCP", "PUT", telemetryPath, id, nil, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"TCP","port":1234}}`, 400, errValidation},
		{"telemetry elsewhere", "PUT", telemetryPath, id, nil, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://example.com:1234"}}`, 400, errValidation},
		{"telemetry buffering", "PUT", telemetryPath, id, nil, `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1234"},"buffering":{"timeoutMs":5}}`, 400, errValidation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantStatus(t, c.extRequest(ctx, tc.method, tc.path, tc.id, tc.header, tc.body), tc.status, tc.errType)
		})
	}
	// Nothing was registered or subscribed by the refusals; the one
	// extension still works.
	s.ext.mu.Lock()
	n := len(s.ext.order)
	s.ext.mu.Unlock()
	s.tel.mu.Lock()
	subs := len(s.tel.subs)
	s.tel.mu.Unlock()
	if n != 1 || subs != 0 {
		t.Errorf("%d extensions, %d subscriptions after refusals; want 1, 0", n, subs)
	}
	next := c.extNextAsync(ctx, id)
	eventually(t, "its /event/next parked", func() bool {
		s.ext.mu.Lock()
		defer s.ext.mu.Unlock()
		return s.ext.order[0].parked != nil
	})
	t.Cleanup(func() { <-next })
}

// TestExtensionsFailures: an extension's /init/error fails init, and one
// whose parked /event/next connection goes away (its process died) fails
// the invocation with Extension.Crash.
func TestExtensionsFailures(t *testing.T) {
	t.Run("init error", func(t *testing.T) {
		s, c, ctx := newTestEnv(t, Config{Extensions: []string{"ext"}})
		ready := make(chan error, 1)
		go func() { ready <- s.WaitReady(ctx) }()
		id := c.register(ctx, "ext", `["INVOKE"]`).header.Get(hdrExtID)
		wantAccepted(t, c.extRequest(ctx, "POST", extBase+"/init/error", id,
			http.Header{hdrExtErrorType: {"Extension.ConfigInvalid"}}, `{"errorMessage":"no key"}`))
		var xe *ExtensionError
		if err := receive(t, ready); !errors.As(err, &xe) || xe.Type != lambdaerr.ExtensionInitError || xe.Extension != "ext" ||
			!strings.Contains(xe.Message, "Extension.ConfigInvalid: no key") {
			t.Fatalf("WaitReady: %v, want Extension.InitError naming the posted type and message", err)
		}
		wantStatus(t, c.extRequest(ctx, "GET", extBase+"/event/next", id, nil, ""), http.StatusForbidden, errExtInvalidState)
	})
	t.Run("exited before registering", func(t *testing.T) {
		exited := make(chan struct{})
		s, c, ctx := newTestEnv(t, Config{Extensions: []string{"gone"}, ExtensionExited: func(name string) bool {
			select {
			case <-exited:
				return name == "gone"
			default:
				return false // not started yet, as far as anyone can tell
			}
		}})
		ready := make(chan error, 1)
		go func() { ready <- s.WaitReady(ctx) }()
		runtimeNext := c.nextAsync(ctx)
		eventually(t, "the runtime's /next parked", isParked(s))
		notYet(t, ready, "init failed before the extension exited")
		close(exited)
		var xe *ExtensionError
		if err := receive(t, ready); !errors.As(err, &xe) || xe.Type != lambdaerr.ExtensionCrash || xe.Extension != "gone" {
			t.Fatalf("WaitReady: %v, want Extension.Crash of gone", err)
		}
		t.Cleanup(func() { <-runtimeNext })
	})
	t.Run("crash", func(t *testing.T) {
		s, c, ctx := newTestEnv(t, Config{})
		id := c.register(ctx, "ext", `["INVOKE"]`).header.Get(hdrExtID)
		nctx, hangUp := context.WithCancel(ctx)
		next := c.extNextAsync(nctx, id)
		runtimeNext := c.nextAsync(ctx)
		if err := s.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		hangUp() // the client closes the connection, as a dying process does
		receive(t, next)
		eventually(t, "the server saw the hang-up", func() bool {
			s.ext.mu.Lock()
			defer s.ext.mu.Unlock()
			return s.ext.order[0].parked == nil
		})
		inv := testInvocation("req-1", `{}`)
		s.ExtensionsInvoke(&inv)
		invCh := invokeAsync(ctx, s, inv)
		receive(t, runtimeNext)
		c.respond(t, ctx, invCh, "req-1", `"ok"`)
		var xe *ExtensionError
		if err := s.AwaitExtensions(ctx); !errors.As(err, &xe) || xe.Type != lambdaerr.ExtensionCrash {
			t.Fatalf("AwaitExtensions: %v, want Extension.Crash", err)
		}
	})
}

// TestExtensionsLimit: Lambda's limit of 10 extensions per function; the
// eleventh is refused and the ten stay registered.
func TestExtensionsLimit(t *testing.T) {
	s, c, ctx := newTestEnv(t, Config{})
	for i := range maxExtensions {
		wantStatus(t, c.register(ctx, "ext-"+string(rune('a'+i)), `[]`), http.StatusOK, "")
	}
	wantStatus(t, c.register(ctx, "one-too-many", `[]`), http.StatusForbidden, errExtTooMany)
	if s.PendingExtensions() != nil || !s.HasExtensions() {
		t.Errorf("pending %v, registered %v", s.PendingExtensions(), s.HasExtensions())
	}
	s.ext.mu.Lock()
	defer s.ext.mu.Unlock()
	if len(s.ext.order) != maxExtensions {
		t.Errorf("%d registered, want %d", len(s.ext.order), maxExtensions)
	}
}
