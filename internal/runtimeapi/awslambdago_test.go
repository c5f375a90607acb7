package runtimeapi

// End-to-end tests against unmodified aws-lambda-go functions (testdata/*),
// built once per test run and run as plain child processes.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/testkit"

	"github.com/owl-project/owl/internal/lambdaerr"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveBuilds()
	os.Exit(code)
}

// functionBinary returns the path of testdata command name, built on
// first use.
func functionBinary(t testing.TB, name string) string {
	t.Helper()
	bin, err := testkit.Build("./testdata/" + name)
	if err != nil {
		t.Fatalf("building the test function: %v", err)
	}
	return bin
}

// function is a running testdata command.
type function struct {
	exited  chan struct{} // closed when the process has exited
	waitErr error         // cmd.Wait's result, set before exited is closed
	output  *testkit.Buffer
}

// exitCode waits for the process to exit and returns its exit status.
func (f *function) exitCode(t testing.TB) int {
	t.Helper()
	receive(t, (<-chan struct{})(f.exited))
	var ee *exec.ExitError
	if f.waitErr == nil {
		return 0
	}
	if !errors.As(f.waitErr, &ee) {
		t.Fatalf("wait: %v", f.waitErr)
	}
	return ee.ExitCode()
}

// startFunction runs testdata command name against the Runtime API at addr
// (empty: without AWS_LAMBDA_RUNTIME_API), with a Lambda-like environment,
// and kills it when the test ends.
func startFunction(t testing.TB, name, addr string) *function {
	t.Helper()
	cmd := exec.Command(functionBinary(t, name))
	// A fresh environment, as Lambda gives: in particular no
	// _LAMBDA_SERVER_PORT (aws-lambda-go would serve its RPC protocol) and
	// no AWS_LAMBDA_MAX_CONCURRENCY (one runtime loop).
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"_HANDLER=" + name,
		"AWS_LAMBDA_FUNCTION_NAME=" + name,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
	}
	if addr != "" {
		cmd.Env = append(cmd.Env, "AWS_LAMBDA_RUNTIME_API="+addr)
	}
	f := &function{exited: make(chan struct{}), output: &testkit.Buffer{}}
	cmd.Stdout, cmd.Stderr = f.output, f.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		f.waitErr = cmd.Wait()
		close(f.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-f.exited
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, f.output)
		}
	})
	return f
}

// startEnvironment is a Server with function name running against it,
// initialised.
func startEnvironment(t testing.TB, name string) (*Server, *function) {
	t.Helper()
	s, addr := startServer(t, Config{})
	f := startFunction(t, name, addr)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go func() {
		select {
		case <-f.exited: // a crash during init is the caller's to notice
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	return s, f
}

// invokeWatching invokes like Owl's worker does: it cancels the invocation
// when the function process exits.
func invokeWatching(t testing.TB, s *Server, f *function, inv Invocation) (Outcome, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go func() {
		select {
		case <-f.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	return s.Invoke(ctx, inv)
}

func TestAWSLambdaGoHello(t *testing.T) {
	checkGoroutines(t)
	s, f := startEnvironment(t, "hello")
	type reply struct {
		Message           string            `json:"message"`
		RequestID         string            `json:"requestId"`
		FunctionARN       string            `json:"functionArn"`
		DeadlineMs        int64             `json:"deadlineMs"`
		TraceID           string            `json:"traceId"`
		ClientCustom      map[string]string `json:"clientCustom"`
		CognitoIdentityID string            `json:"cognitoIdentityId"`
	}
	for i, name := range []string{"owl", "lambda", "", "world"} {
		inv := testInvocation("8476a536-e9f4-11e8-9739-"+strconv.Itoa(100000000000+i), `{"name":"`+name+`"}`)
		want := reply{
			Message:     "hello " + name,
			RequestID:   inv.RequestID,
			FunctionARN: inv.FunctionARN,
			DeadlineMs:  inv.Deadline.UnixMilli(),
		}
		if i%2 == 1 { // every other invoke carries the optional context
			inv.TraceID = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
			inv.ClientContext = `{"client":{"installation_id":"i"},"custom":{"k":"v` + strconv.Itoa(i) + `"},"env":{}}`
			inv.CognitoIdentity = `{"cognitoIdentityId":"us-east-1:id","cognitoIdentityPoolId":"us-east-1:pool"}`
			want.TraceID = inv.TraceID
			want.ClientCustom = map[string]string{"k": "v" + strconv.Itoa(i)}
			want.CognitoIdentityID = "us-east-1:id"
		}
		out, err := invokeWatching(t, s, f, inv)
		if err != nil {
			t.Fatalf("invoke %d: %v", i, err)
		}
		var got reply
		if out.IsError || json.Unmarshal(out.Payload, &got) != nil {
			t.Fatalf("invoke %d = %+v (%s)", i, out, out.Payload)
		}
		if got.Message != want.Message || got.RequestID != want.RequestID || got.FunctionARN != want.FunctionARN ||
			got.DeadlineMs != want.DeadlineMs || got.TraceID != want.TraceID ||
			got.ClientCustom["k"] != want.ClientCustom["k"] || got.CognitoIdentityID != want.CognitoIdentityID {
			t.Errorf("invoke %d replied %+v, want %+v", i, got, want)
		}
	}
}

func TestAWSLambdaGoReturnedError(t *testing.T) {
	checkGoroutines(t)
	s, f := startEnvironment(t, "fail")
	out, err := invokeWatching(t, s, f, testInvocation("req-1", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	// aws-lambda-go names the error by its Go type: errors.New is *errorString.
	want := `{"errorMessage":"something went wrong","errorType":"errorString"}`
	if !out.IsError || out.ErrorType != "errorString" || string(out.Payload) != want {
		t.Fatalf("Invoke = %+v (%s), want errorString %s", out, out.Payload, want)
	}
	// A returned error does not end the runtime.
	out, err = invokeWatching(t, s, f, testInvocation("req-2", `{"ok":true}`))
	if err != nil || out.IsError || string(out.Payload) != `"fine"` {
		t.Fatalf("Invoke after an error = %+v (%s), %v; want \"fine\"", out, out.Payload, err)
	}
}

func TestAWSLambdaGoPanic(t *testing.T) {
	checkGoroutines(t)
	s, f := startEnvironment(t, "panic")
	out, err := invokeWatching(t, s, f, testInvocation("req-1", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
		StackTrace   []struct {
			Path  string `json:"path"`
			Line  int    `json:"line"`
			Label string `json:"label"`
		} `json:"stackTrace"`
	}
	if err := json.Unmarshal(out.Payload, &obj); err != nil {
		t.Fatalf("payload %s: %v", out.Payload, err)
	}
	// The panic value's Go type is the errorType: panic("boom") is a string.
	if !out.IsError || out.ErrorType != "string" || obj.ErrorType != "string" || obj.ErrorMessage != "boom" {
		t.Errorf("Invoke = %+v (%s), want a string panic \"boom\"", out, out.Payload)
	}
	found := false
	for _, fr := range obj.StackTrace {
		if fr.Label == "handle" && strings.HasSuffix(fr.Path, "main.go") && fr.Line > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("stackTrace %+v has no frame for main.handle", obj.StackTrace)
	}
	// After reporting a panic aws-lambda-go exits (log.Fatalf: status 1).
	if code := f.exitCode(t); code != 1 {
		t.Errorf("exit status %d after a panic, want 1", code)
	}
}

func TestAWSLambdaGoExitMidInvoke(t *testing.T) {
	checkGoroutines(t)
	s, f := startEnvironment(t, "exit")
	_, err := invokeWatching(t, s, f, testInvocation("req-1", `{}`))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Invoke = %v, want context.Canceled from the watcher", err)
	}
	if code := f.exitCode(t); code != 3 {
		t.Errorf("exit status %d, want 3", code)
	}
	if _, err := s.Invoke(testCtx(t), testInvocation("req-2", `{}`)); !errors.Is(err, ErrBusy) {
		t.Errorf("Invoke after the crash = %v, want ErrBusy (the environment is to be destroyed)", err)
	}
}

func TestAWSLambdaGoExitDuringInit(t *testing.T) {
	checkGoroutines(t)
	s, _ := startServer(t, Config{})
	// Without AWS_LAMBDA_RUNTIME_API aws-lambda-go exits before any /next.
	f := startFunction(t, "hello", "")
	ctx, cancel := context.WithCancel(testCtx(t))
	go func() {
		<-f.exited
		cancel()
	}()
	if err := s.WaitReady(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitReady = %v, want context.Canceled", err)
	}
	if code := f.exitCode(t); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
}

func TestAWSLambdaGoStream(t *testing.T) {
	for _, tc := range []struct {
		name      string
		event     string
		want      func(t *testing.T, out Outcome, err error)
		wantsExit bool // aws-lambda-go exits after the invocation
	}{
		{"chunked 1 MiB response", `{"size":1048576}`, func(t *testing.T, out Outcome, err error) {
			if err != nil || out.IsError || len(out.Payload) != 1<<20 || bytes.Count(out.Payload, []byte("a")) != 1<<20 {
				t.Fatalf("Invoke = IsError %v %s, %d bytes, %v", out.IsError, out.ErrorType, len(out.Payload), err)
			}
		}, false},
		{"response at the limit", `{"size":6291556}`, func(t *testing.T, out Outcome, err error) {
			if err != nil || out.IsError || len(out.Payload) != DefaultMaxResponseBytes {
				t.Fatalf("Invoke = IsError %v %s, %d bytes, %v", out.IsError, out.ErrorType, len(out.Payload), err)
			}
		}, false},
		{"response over the limit", `{"size":6291557}`, func(t *testing.T, out Outcome, err error) {
			if err != nil || !out.IsError || out.ErrorType != lambdaerr.FunctionResponseSizeTooLarge {
				t.Fatalf("Invoke = %+v (%.200s), %v; want ResponseSizeTooLarge", out, out.Payload, err)
			}
		}, true}, // aws-lambda-go dies of any status but 202
		{"error while streaming, in trailers", `{"fail":100}`, func(t *testing.T, out Outcome, err error) {
			want := `{"errorMessage":"` + strings.Repeat("x", 100) + `","errorType":"streamBroken"}`
			if err != nil || !out.IsError || out.ErrorType != "streamBroken" || string(out.Payload) != want {
				t.Fatalf("Invoke = %+v (%s), %v; want streamBroken %s", out, out.Payload, err, want)
			}
		}, false},
		{"error while streaming, trailer over net/http's 4 KiB", `{"fail":4000}`, func(t *testing.T, out Outcome, err error) {
			// net/http cannot read a trailer longer than its 4 KiB read
			// buffer; the post fails with 400, aws-lambda-go exits, and the
			// worker sees a crash.
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Invoke = %+v (%.200s), %v; want context.Canceled from the watcher", out, out.Payload, err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			s, f := startEnvironment(t, "stream")
			out, err := invokeWatching(t, s, f, testInvocation("req-1", tc.event))
			tc.want(t, out, err)
			if tc.wantsExit {
				if code := f.exitCode(t); code != 1 {
					t.Errorf("exit status %d, want 1", code)
				}
				return
			}
			// The runtime lives on.
			out, err = invokeWatching(t, s, f, testInvocation("req-2", `{"size":3}`))
			if err != nil || string(out.Payload) != "aaa" {
				t.Fatalf("next Invoke = %+v (%q), %v; want aaa", out, out.Payload, err)
			}
		})
	}
}

// TestAWSLambdaGoInvokeBeforeReady hands the first event over before the
// runtime has finished init, as a cold invoke does.
func TestAWSLambdaGoInvokeBeforeReady(t *testing.T) {
	checkGoroutines(t)
	s, addr := startServer(t, Config{})
	f := startFunction(t, "hello", addr)
	inv := testInvocation("req-cold", `{"name":"cold"}`)
	inv.Deadline = time.Now().Add(time.Minute)
	out, err := invokeWatching(t, s, f, inv)
	if err != nil || !bytes.Contains(out.Payload, []byte(`"message":"hello cold"`)) {
		t.Fatalf("Invoke = %+v (%s), %v", out, out.Payload, err)
	}
	if err := s.WaitReady(testCtx(t)); err != nil {
		t.Fatalf("WaitReady after the first invoke = %v", err)
	}
}
