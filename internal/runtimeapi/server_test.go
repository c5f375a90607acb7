package runtimeapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/testkit"
)

func TestNextDeliversInvocation(t *testing.T) {
	deadline := time.UnixMilli(1_900_000_000_123)
	full := Invocation{
		RequestID:       "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
		Deadline:        deadline,
		FunctionARN:     "arn:aws:lambda:us-east-1:123456789012:function:hello:prod",
		TraceID:         "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
		ClientContext:   `{"custom":{"k":"v"}}`,
		CognitoIdentity: `{"cognitoIdentityId":"us-east-1:abc","cognitoIdentityPoolId":"us-east-1:pool"}`,
		Payload:         []byte(`{"name":"owl"}`),
	}
	minimal := Invocation{RequestID: "req-1", Deadline: deadline, FunctionARN: full.FunctionARN, Payload: []byte(`{}`)}
	large := minimal
	large.Payload = bytes.Repeat([]byte("x"), 1<<20)

	for _, tc := range []struct {
		name   string
		inv    Invocation
		parked bool // /next is parked before Invoke; else Invoke is queued first
	}{
		{"all headers, invoke queued first", full, false},
		{"all headers, next parked first", full, true},
		{"optional headers absent", minimal, true},
		{"1 MiB payload", large, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, ctx := newTestEnv(t, Config{})

			var nextCh <-chan reply
			var invCh <-chan invokeResult
			if tc.parked {
				nextCh = c.nextAsync(ctx)
				eventually(t, "/next to park", isParked(s))
				invCh = invokeAsync(ctx, s, tc.inv)
			} else {
				invCh = invokeAsync(ctx, s, tc.inv)
				eventually(t, "the invocation to queue", func() bool { _, st := serverState(s); return st == invQueued })
				nextCh = c.nextAsync(ctx)
			}
			if err := s.WaitReady(ctx); err != nil {
				t.Fatalf("WaitReady: %v", err)
			}
			r := receive(t, nextCh)
			wantStatus(t, r, http.StatusOK, "")
			if !bytes.Equal(r.body, tc.inv.Payload) {
				t.Errorf("body %.100q, want %.100q", r.body, tc.inv.Payload)
			}
			want := map[string]string{
				"Lambda-Runtime-Aws-Request-Id":       tc.inv.RequestID,
				"Lambda-Runtime-Deadline-Ms":          "1900000000123",
				"Lambda-Runtime-Invoked-Function-Arn": tc.inv.FunctionARN,
				"Lambda-Runtime-Trace-Id":             tc.inv.TraceID,
				"Lambda-Runtime-Client-Context":       tc.inv.ClientContext,
				"Lambda-Runtime-Cognito-Identity":     tc.inv.CognitoIdentity,
				"Content-Length":                      strconv.Itoa(len(tc.inv.Payload)),
			}
			for k, v := range want {
				got, present := r.header[k]
				switch {
				case v == "" && present:
					t.Errorf("header %s = %q, want it absent", k, got)
				case v != "" && (len(got) != 1 || got[0] != v):
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}

			c.respond(t, ctx, invCh, tc.inv.RequestID, `{"ok":1}`)
		})
	}
}

func TestWaitReady(t *testing.T) {
	s, c, ctx := newTestEnv(t, Config{})

	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.WaitReady(short); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitReady before the first /next = %v, want context.Canceled", err)
	}
	ready := make(chan error, 1)
	go func() { ready <- s.WaitReady(ctx) }()
	c.nextAsync(ctx)
	if err := receive(t, ready); err != nil {
		t.Fatalf("WaitReady = %v, want nil", err)
	}
	if err := s.WaitReady(short); err != nil { // init stays done, whatever ctx says
		t.Fatalf("WaitReady after init = %v, want nil", err)
	}
}

func TestSequentialInvokes(t *testing.T) {
	s, c, ctx := newTestEnv(t, Config{})

	// A runtime loop over one keep-alive connection.
	loopDone := make(chan error, 1)
	go func() {
		for {
			r := c.next(ctx)
			if r.err != nil || r.status != http.StatusOK {
				loopDone <- r.err
				return
			}
			id := r.header.Get("Lambda-Runtime-Aws-Request-Id")
			action := "response"
			if bytes.HasPrefix(r.body, []byte("fail")) {
				action = "error"
			}
			if p := c.post(ctx, id, action, append([]byte("echo:"), r.body...)); p.status != http.StatusAccepted {
				loopDone <- errors.New("post refused: " + string(p.body))
				return
			}
		}
	}()
	for i := range 20 {
		payload := "event-" + strconv.Itoa(i)
		if i%5 == 4 {
			payload = "fail-" + strconv.Itoa(i)
		}
		out, err := s.Invoke(ctx, testInvocation("req-"+strconv.Itoa(i), payload))
		if err != nil {
			t.Fatalf("invoke %d: %v", i, err)
		}
		wantErr := i%5 == 4
		if string(out.Payload) != "echo:"+payload || out.IsError != wantErr || (wantErr && out.ErrorType != lambdaerr.FunctionUnhandled) {
			t.Fatalf("invoke %d = %+v (%q), want echo:%s, IsError %v", i, out, out.Payload, payload, wantErr)
		}
	}
	s.Close()
	receive(t, loopDone)
}

func TestSecondNextRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		active bool // an invocation is active; else a /next is parked
	}{
		{"while a next is parked", false},
		{"while an invocation is active", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, ctx := newTestEnv(t, Config{})

			first := c.nextAsync(ctx)
			eventually(t, "/next to park", isParked(s))
			var invCh <-chan invokeResult
			if tc.active {
				invCh = invokeAsync(ctx, s, testInvocation("req-1", "{}"))
				wantStatus(t, receive(t, first), http.StatusOK, "")
			}
			wantStatus(t, c.next(ctx), http.StatusForbidden, errInvalidStateTransition)

			// The refusal changed nothing: the first /next or invocation goes on.
			if !tc.active {
				invCh = invokeAsync(ctx, s, testInvocation("req-1", "{}"))
				wantStatus(t, receive(t, first), http.StatusOK, "")
			}
			c.respond(t, ctx, invCh, "req-1", "done")
		})
	}
}

func TestResultRules(t *testing.T) {
	type step struct {
		id, action string
		status     int
		errType    string
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  Outcome // the outcome of req-1
	}{
		{"response", []step{{"req-1", "response", 202, ""}}, Outcome{Payload: []byte("r")}},
		{"error", []step{{"req-1", "error", 202, ""}}, Outcome{Payload: []byte("e"), ErrorType: lambdaerr.FunctionUnhandled, IsError: true}},
		{"unknown id, then response", []step{
			{"req-0", "response", 400, errInvalidRequestID},
			{"req-2", "error", 400, errInvalidRequestID},
			{"req-1", "response", 202, ""},
		}, Outcome{Payload: []byte("r")}},
		{"double response", []step{
			{"req-1", "response", 202, ""},
			{"req-1", "response", 403, errInvalidStateTransition},
		}, Outcome{Payload: []byte("r")}},
		{"response after error", []step{
			{"req-1", "error", 202, ""},
			{"req-1", "response", 403, errInvalidStateTransition},
		}, Outcome{Payload: []byte("e"), ErrorType: lambdaerr.FunctionUnhandled, IsError: true}},
		{"error after response", []step{
			{"req-1", "response", 202, ""},
			{"req-1", "error", 403, errInvalidStateTransition},
		}, Outcome{Payload: []byte("r")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, ctx := newTestEnv(t, Config{})

			// Before anything is delivered every id is unknown.
			wantStatus(t, c.post(ctx, "req-1", "response", nil), http.StatusBadRequest, errInvalidRequestID)

			invCh := invokeAsync(ctx, s, testInvocation("req-1", "{}"))
			wantStatus(t, c.next(ctx), http.StatusOK, "")
			for i, st := range tc.steps {
				r := c.post(ctx, st.id, st.action, []byte(st.action[:1]))
				if st.status == http.StatusAccepted {
					wantAccepted(t, r)
				} else {
					wantStatus(t, r, st.status, st.errType)
				}
				if t.Failed() {
					t.Fatalf("step %d (%+v) failed", i, st)
				}
			}
			res := receive(t, invCh)
			if res.err != nil || !outcomeEqual(res.out, tc.want) {
				t.Fatalf("Invoke = %+v (%q), %v; want %+v (%q)", res.out, res.out.Payload, res.err, tc.want, tc.want.Payload)
			}
		})
	}
}

func outcomeEqual(a, b Outcome) bool {
	return bytes.Equal(a.Payload, b.Payload) && a.ErrorType == b.ErrorType && a.IsError == b.IsError
}

func TestResultOutcome(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	trailerBody := `{"errorMessage":"read failed","errorType":"streamBroken"}`
	for _, tc := range []struct {
		name            string
		action          string
		body            string
		chunked         bool
		header, trailer http.Header
		want            Outcome
	}{
		{"response", "response", `{"a":1}`, false, nil, nil,
			Outcome{Payload: []byte(`{"a":1}`)}},
		{"empty response", "response", ``, false, nil, nil,
			Outcome{Payload: []byte{}}},
		{"chunked response with declared empty trailers (aws-lambda-go)", "response", `"hi"`, true, nil,
			http.Header{hdrErrorType: nil, hdrErrorBody: nil},
			Outcome{Payload: []byte(`"hi"`)}},
		{"error type from header", "error", `{"errorMessage":"m","errorType":"FromBody"}`, false,
			http.Header{hdrErrorType: {"Function.FromHeader"}}, nil,
			Outcome{Payload: []byte(`{"errorMessage":"m","errorType":"FromBody"}`), ErrorType: "Function.FromHeader", IsError: true}},
		{"error type from body", "error", `{"errorMessage":"m","errorType":"errorString"}`, true, nil, nil,
			Outcome{Payload: []byte(`{"errorMessage":"m","errorType":"errorString"}`), ErrorType: "errorString", IsError: true}},
		{"error without a type", "error", `{"errorMessage":"m"}`, false, nil, nil,
			Outcome{Payload: []byte(`{"errorMessage":"m"}`), ErrorType: "Unhandled", IsError: true}},
		{"error body not JSON", "error", `oops`, false, nil, nil,
			Outcome{Payload: []byte(`oops`), ErrorType: "Unhandled", IsError: true}},
		{"error with trailers", "error", `{"errorMessage":"m","errorType":"FromBody"}`, true, nil,
			http.Header{hdrErrorType: {"streamBroken"}, hdrErrorBody: {b64([]byte(trailerBody))}},
			Outcome{Payload: []byte(trailerBody), ErrorType: "streamBroken", IsError: true}},
		{"response failed mid-stream (trailers)", "response", `{"partial":`, true, nil,
			http.Header{hdrErrorType: {"streamBroken"}, hdrErrorBody: {b64([]byte(trailerBody))}},
			Outcome{Payload: []byte(trailerBody), ErrorType: "streamBroken", IsError: true}},
		{"response failed mid-stream, trailer body not base64", "response", `{"partial":`, true, nil,
			http.Header{hdrErrorType: {"streamBroken"}, hdrErrorBody: {"%%%"}},
			Outcome{Payload: lambdaerr.ErrorBody("streamBroken", "The runtime reported streamBroken in a trailer."), ErrorType: "streamBroken", IsError: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, ctx := newTestEnv(t, Config{})

			invCh := invokeAsync(ctx, s, testInvocation("req-1", "{}"))
			wantStatus(t, c.next(ctx), http.StatusOK, "")
			var body io.Reader = bytes.NewReader([]byte(tc.body))
			if tc.chunked {
				body = chunked{body}
			}
			r := c.request(ctx, http.MethodPost, apiBase+"/invocation/req-1/"+tc.action, body, tc.header, tc.trailer)
			wantAccepted(t, r)
			res := receive(t, invCh)
			if res.err != nil || !outcomeEqual(res.out, tc.want) {
				t.Fatalf("Invoke = %+v (%q), %v; want %+v (%q)", res.out, res.out.Payload, res.err, tc.want, tc.want.Payload)
			}
		})
	}
}

func TestResultTooLarge(t *testing.T) {
	const max = DefaultMaxResponseBytes
	tooLarge := Outcome{
		Payload:   []byte(`{"errorMessage":"Response payload size exceeded maximum allowed payload size (6291556 bytes).","errorType":"Function.ResponseSizeTooLarge"}`),
		ErrorType: "Function.ResponseSizeTooLarge",
		IsError:   true,
	}
	for _, tc := range []struct {
		name    string
		action  string
		size    int
		chunked bool
	}{
		{"response at the limit", "response", max, false},
		{"chunked response at the limit", "response", max, true},
		{"response one byte over", "response", max + 1, false},
		{"chunked response one byte over", "response", max + 1, true},
		{"chunked response far over", "response", 3 * max, true},
		{"error over", "error", max + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, ctx := newTestEnv(t, Config{})

			invCh := invokeAsync(ctx, s, testInvocation("req-1", "{}"))
			wantStatus(t, c.next(ctx), http.StatusOK, "")
			payload := bytes.Repeat([]byte("a"), tc.size)
			var body io.Reader = bytes.NewReader(payload)
			if tc.chunked {
				body = chunked{body}
			}
			r := c.request(ctx, http.MethodPost, apiBase+"/invocation/req-1/"+tc.action, body, nil, nil)
			res := receive(t, invCh)
			if tc.size <= max {
				wantAccepted(t, r)
				if res.err != nil || res.out.IsError || !bytes.Equal(res.out.Payload, payload) {
					t.Fatalf("Invoke = IsError %v, %d bytes, %v; want the %d bytes", res.out.IsError, len(res.out.Payload), res.err, tc.size)
				}
				return
			}
			if res.err != nil || !outcomeEqual(res.out, tooLarge) {
				t.Fatalf("Invoke = %+v (%q), %v; want %+v", res.out, res.out.Payload, res.err, tooLarge)
			}
			// The server answers before reading the whole body, so the
			// client may see the connection close instead of the 413.
			if r.err == nil {
				wantStatus(t, r, http.StatusRequestEntityTooLarge, errRequestEntityTooLarge)
				if msg := r.errorObject(t).ErrorMessage; !strings.Contains(msg, "(6291556 bytes)") {
					t.Errorf("message %q does not name the limit", msg)
				}
			}
			// The invocation is over: another result for it is refused.
			wantStatus(t, c.post(ctx, "req-1", "response", nil), http.StatusForbidden, errInvalidStateTransition)
		})
	}
}

func TestInitError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header http.Header
		body   string
		want   InitError
	}{
		{"type from header", http.Header{hdrErrorType: {"Runtime.ImportModuleError"}},
			`{"errorMessage":"No module named 'x'","errorType":"ModuleNotFoundError"}`,
			InitError{Type: "Runtime.ImportModuleError", Message: "No module named 'x'"}},
		{"type from body", nil, `{"errorMessage":"bad config","errorType":"ConfigError"}`,
			InitError{Type: "ConfigError", Message: "bad config"}},
		{"no type", nil, `not json`, InitError{Type: "Runtime.Unknown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, ctx := newTestEnv(t, Config{})

			queued := invokeAsync(ctx, s, testInvocation("req-1", "{}"))
			eventually(t, "the invocation to queue", func() bool { _, st := serverState(s); return st == invQueued })
			r := c.request(ctx, http.MethodPost, apiBase+"/init/error", chunked{strings.NewReader(tc.body)}, tc.header, nil)
			wantAccepted(t, r)

			var ie *InitError
			if err := s.WaitReady(ctx); !errors.As(err, &ie) {
				t.Fatalf("WaitReady = %v, want an *InitError", err)
			}
			if ie.Type != tc.want.Type || ie.Message != tc.want.Message || string(ie.Body) != tc.body {
				t.Errorf("InitError = %+v (%q), want %+v (%q)", ie, ie.Body, tc.want, tc.body)
			}
			if msg := ie.Error(); !strings.Contains(msg, tc.want.Type) || !strings.Contains(msg, tc.want.Message) {
				t.Errorf("InitError.Error() = %q, want it to name %q and %q", msg, tc.want.Type, tc.want.Message)
			}
			if res := receive(t, queued); res.err != ie {
				t.Errorf("queued Invoke = %v, want the InitError", res.err)
			}
			if _, err := s.Invoke(ctx, testInvocation("req-2", "{}")); err != ie {
				t.Errorf("Invoke after init failed = %v, want the InitError", err)
			}
			wantStatus(t, c.request(ctx, http.MethodPost, apiBase+"/init/error", strings.NewReader("{}"), nil, nil),
				http.StatusForbidden, errInvalidStateTransition)
			wantStatus(t, c.next(ctx), http.StatusForbidden, errInvalidStateTransition)
		})
	}

	t.Run("after init", func(t *testing.T) {
		s, c, ctx := newTestEnv(t, Config{})
		c.nextAsync(ctx)
		if err := s.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c.request(ctx, http.MethodPost, apiBase+"/init/error", strings.NewReader("{}"), nil, nil),
			http.StatusForbidden, errInvalidStateTransition)
		if err := s.WaitReady(ctx); err != nil {
			t.Fatalf("WaitReady = %v after a refused /init/error, want nil", err)
		}
	})
}

func TestRouting(t *testing.T) {
	_, c, ctx := newTestEnv(t, Config{})
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/", 404, ""},
		{"GET", "/2018-06-01/runtime/invocation/", 404, ""},
		{"GET", "/2018-06-01/runtime/invocation/next/", 404, ""},
		{"GET", "/2018-06-01/runtime/invocation/req-1", 404, ""},
		{"POST", "/2018-06-01/runtime/invocation//response", 404, ""},
		{"POST", "/2018-06-01/runtime/invocation/req-1/result", 404, ""},
		{"POST", "/2018-06-01/runtime/invocation/req-1/response/x", 404, ""},
		{"POST", "/2018-06-01/runtime/req-1/response", 404, ""},
		{"GET", "/2018-06-01/runtime/init", 404, ""},
		{"POST", "/2020-01-01/extension/register", 403, ""},
		{"GET", "/2020-01-01/extension/event/next", 403, ""},
		{"POST", "/2020-01-01/extension/nope", 404, ""},
		{"POST", "/2018-06-01/runtime/invocation/next", 405, "GET"},
		{"HEAD", "/2018-06-01/runtime/invocation/next", 405, "GET"},
		{"GET", "/2018-06-01/runtime/invocation/req-1/response", 405, "POST"},
		{"PUT", "/2018-06-01/runtime/invocation/req-1/error", 405, "POST"},
		{"GET", "/2018-06-01/runtime/init/error", 405, "POST"},
		{"OPTIONS", "/2018-06-01/runtime/init/error", 405, "POST"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := c.request(ctx, tc.method, tc.path, nil, nil, nil)
			if tc.method == "HEAD" { // no body to check
				if r.err != nil || r.status != tc.status {
					t.Fatalf("status %d, %v; want %d", r.status, r.err, tc.status)
				}
			} else {
				wantStatus(t, r, tc.status, map[int]string{404: errNotFound, 405: errMethodNotAllowed}[tc.status])
			}
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestInvokeCancel(t *testing.T) {
	t.Run("queued invocation is withdrawn", func(t *testing.T) {
		s, c, ctx := newTestEnv(t, Config{})

		ictx, cancel := context.WithCancel(ctx)
		invCh := invokeAsync(ictx, s, testInvocation("req-1", "withdrawn"))
		eventually(t, "the invocation to queue", func() bool { _, st := serverState(s); return st == invQueued })
		cancel()
		if res := receive(t, invCh); !errors.Is(res.err, context.Canceled) {
			t.Fatalf("Invoke = %v, want context.Canceled", res.err)
		}
		// The runtime never sees req-1.
		nextCh := c.nextAsync(ctx)
		eventually(t, "/next to park", isParked(s))
		invCh = invokeAsync(ctx, s, testInvocation("req-2", "second"))
		r := receive(t, nextCh)
		if r.header.Get(hdrRequestID) != "req-2" || string(r.body) != "second" {
			t.Fatalf("/next delivered %q %q, want req-2", r.header.Get(hdrRequestID), r.body)
		}
		wantStatus(t, c.post(ctx, "req-1", "response", nil), http.StatusBadRequest, errInvalidRequestID)
		c.respond(t, ctx, invCh, "req-2", "ok")
	})

	t.Run("delivered invocation is abandoned", func(t *testing.T) {
		s, c, ctx := newTestEnv(t, Config{})

		ictx, cancel := context.WithCancel(ctx)
		invCh := invokeAsync(ictx, s, testInvocation("req-1", "slow"))
		wantStatus(t, c.next(ctx), http.StatusOK, "")
		cancel()
		if res := receive(t, invCh); !errors.Is(res.err, context.Canceled) {
			t.Fatalf("Invoke = %v, want context.Canceled", res.err)
		}
		if _, err := s.Invoke(ctx, testInvocation("req-2", "{}")); !errors.Is(err, ErrBusy) {
			t.Fatalf("Invoke while req-1 still runs = %v, want ErrBusy", err)
		}
		// The late result is accepted, so a live runtime carries on, and
		// dropped.
		wantAccepted(t, c.post(ctx, "req-1", "response", []byte("late")))
		invCh = invokeAsync(ctx, s, testInvocation("req-2", "{}"))
		wantStatus(t, c.next(ctx), http.StatusOK, "")
		c.respond(t, ctx, invCh, "req-2", "fresh")
	})

	t.Run("ctx already done", func(t *testing.T) {
		checkGoroutines(t)
		s, _ := startServer(t, Config{})
		ctx, cancel := context.WithCancel(testCtx(t))
		cancel()
		if _, err := s.Invoke(ctx, testInvocation("req-1", "{}")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Invoke = %v, want context.Canceled", err)
		}
		if _, st := serverState(s); st != invNone {
			t.Fatalf("state %d after a refused Invoke, want invNone", st)
		}
	})
}

func TestInvokeBusy(t *testing.T) {
	s, c, ctx := newTestEnv(t, Config{})

	invCh := invokeAsync(ctx, s, testInvocation("req-1", "{}"))
	eventually(t, "the invocation to queue", func() bool { _, st := serverState(s); return st == invQueued })
	if _, err := s.Invoke(ctx, testInvocation("req-2", "{}")); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Invoke = %v, want ErrBusy", err)
	}
	wantStatus(t, c.next(ctx), http.StatusOK, "")
	if _, err := s.Invoke(ctx, testInvocation("req-2", "{}")); !errors.Is(err, ErrBusy) {
		t.Fatalf("Invoke while req-1 is active = %v, want ErrBusy", err)
	}
	wantAccepted(t, c.post(ctx, "req-1", "response", nil))
	receive(t, invCh)
}

func TestInvokeValidation(t *testing.T) {
	s, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ok := testInvocation("req-1", "{}")
	for _, tc := range []struct {
		name   string
		mutate func(*Invocation)
	}{
		{"no request id", func(inv *Invocation) { inv.RequestID = "" }},
		{"slash in request id", func(inv *Invocation) { inv.RequestID = "a/b" }},
		{"query in request id", func(inv *Invocation) { inv.RequestID = "a?b" }},
		{"space in request id", func(inv *Invocation) { inv.RequestID = "a b" }},
		{"non-ASCII request id", func(inv *Invocation) { inv.RequestID = "é" }},
		{"no deadline", func(inv *Invocation) { inv.Deadline = time.Time{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := ok
			tc.mutate(&inv)
			if _, err := s.Invoke(t.Context(), inv); err == nil || errors.Is(err, ErrBusy) {
				t.Fatalf("Invoke = %v, want a validation error", err)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{MaxResponseBytes: -1}, nil); err == nil || !strings.Contains(err.Error(), "MaxResponseBytes") {
		t.Fatalf("New with a negative limit = %v, want an error naming MaxResponseBytes", err)
	}

	t.Run("custom limit", func(t *testing.T) {
		s, c, ctx := newTestEnv(t, Config{MaxResponseBytes: 10})
		invCh := invokeAsync(ctx, s, testInvocation("req-1", "{}"))
		wantStatus(t, c.next(ctx), http.StatusOK, "")
		r := c.request(ctx, http.MethodPost, apiBase+"/invocation/req-1/response", chunked{strings.NewReader("01234567890")}, nil, nil)
		wantStatus(t, r, http.StatusRequestEntityTooLarge, errRequestEntityTooLarge)
		res := receive(t, invCh)
		if res.out.ErrorType != lambdaerr.FunctionResponseSizeTooLarge || !bytes.Contains(res.out.Payload, []byte("(10 bytes)")) {
			t.Fatalf("Invoke = %+v (%q), want ResponseSizeTooLarge naming 10 bytes", res.out, res.out.Payload)
		}
	})

	t.Run("custom limit on init error", func(t *testing.T) {
		s, c, ctx := newTestEnv(t, Config{MaxResponseBytes: 10})
		r := c.request(ctx, http.MethodPost, apiBase+"/init/error", strings.NewReader("01234567890"), nil, nil)
		wantStatus(t, r, http.StatusRequestEntityTooLarge, errRequestEntityTooLarge)
		// Refused, so init has not ended: the runtime may still post a
		// smaller one, or call /next.
		wantAccepted(t, c.request(ctx, http.MethodPost, apiBase+"/init/error", strings.NewReader("{}"), nil, nil))
		var ie *InitError
		if err := s.WaitReady(ctx); !errors.As(err, &ie) || ie.Type != lambdaerr.RuntimeUnknown {
			t.Fatalf("WaitReady = %v, want a Runtime.Unknown InitError", err)
		}
	})
}

func TestParkedNextHangsUp(t *testing.T) {
	s, c, ctx := newTestEnv(t, Config{})

	nctx, hangUp := context.WithCancel(ctx)
	nextCh := c.nextAsync(nctx)
	eventually(t, "/next to park", isParked(s))
	hangUp()
	if r := receive(t, nextCh); r.err == nil {
		t.Fatalf("cancelled /next answered %d", r.status)
	}
	eventually(t, "the server to notice the hang-up", func() bool { return !isParked(s)() })

	// The event goes to the runtime's next /next, not to the dead one.
	invCh := invokeAsync(ctx, s, testInvocation("req-1", "event"))
	eventually(t, "the invocation to queue", func() bool { _, st := serverState(s); return st == invQueued })
	r := c.next(ctx)
	wantStatus(t, r, http.StatusOK, "")
	c.respond(t, ctx, invCh, "req-1", "ok")
}

func TestClose(t *testing.T) {
	s, c, ctx := newTestEnv(t, Config{})

	ready := make(chan error, 1)
	go func() { ready <- s.WaitReady(ctx) }()
	invCh := invokeAsync(ctx, s, testInvocation("req-1", "{}"))
	eventually(t, "the invocation to queue", func() bool { _, st := serverState(s); return st == invQueued })

	// A second environment whose runtime is parked in /next.
	s2, addr2 := startServer(t, Config{})
	c2 := newRuntimeClient(t, addr2)
	parked := c2.nextAsync(ctx)
	eventually(t, "/next to park", isParked(s2))

	for _, srv := range []*Server{s, s2, s} { // twice: idempotent
		if err := srv.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := receive(t, ready); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitReady = %v, want ErrClosed", err)
	}
	if res := receive(t, invCh); !errors.Is(res.err, ErrClosed) {
		t.Errorf("pending Invoke = %v, want ErrClosed", res.err)
	}
	if r := receive(t, parked); r.err == nil && r.status != http.StatusInternalServerError {
		t.Errorf("parked /next answered %d, want 500 or a closed connection", r.status)
	}
	if _, err := s.Invoke(ctx, testInvocation("req-2", "{}")); !errors.Is(err, ErrClosed) {
		t.Errorf("Invoke after Close = %v, want ErrClosed", err)
	}
	if r := c.next(ctx); r.err == nil {
		t.Errorf("/next after Close answered %d, want a refused connection", r.status)
	}
	ln := testkit.Listen(t)
	if err := s.Serve(ln); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close = %v, want ErrClosed", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Errorf("Serve after Close left its listener open")
	}
}
