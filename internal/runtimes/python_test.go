package runtimes_test

// Tests of Owl's Python runtime (python/bootstrap.py): the real interpreter
// against the real Runtime API server, with handlers written to a temporary
// task root. Helpers are prefixed "py" (node_test.go lives alongside).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/runtimeapi"

	"github.com/owl-project/owl/internal/testkit"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// pyInterpreter is the interpreter Owl's python3.x runtimes run in the sandbox.
const pyInterpreter = "/usr/bin/python3"

// pyWaitLimit bounds every wait of these tests (Lambda's init limit).
const pyWaitLimit = 10 * time.Second

// pyOutput collects a child's stdout or stderr and lets a test wait, without
// sleeping, until it contains what it expects.
type pyOutput struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced at every write
}

func newPyOutput() *pyOutput { return &pyOutput{changed: make(chan struct{})} }

func (o *pyOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

func (o *pyOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until ok holds for the output so far, and returns it.
func (o *pyOutput) waitFor(t testing.TB, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.NewTimer(pyWaitLimit)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		s, changed := o.buf.String(), o.changed
		o.mu.Unlock()
		if ok(s) {
			return s
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; output so far:\n%s", what, s)
		}
	}
}

// waitContains waits until the output contains sub.
func (o *pyOutput) waitContains(t testing.TB, sub string) string {
	t.Helper()
	return o.waitFor(t, fmt.Sprintf("%q", sub), func(s string) bool { return strings.Contains(s, sub) })
}

// pyProc is Owl's Python bootstrap running against a real Runtime API
// server, with a task root of test files.
type pyProc struct {
	srv      *runtimeapi.Server
	ln       *pyCountingListener
	cmd      *exec.Cmd
	taskRoot string
	stdout   *pyOutput
	stderr   *pyOutput
	exited   chan struct{} // closed when the process has been waited for
	seq      int
}

type pyOptions struct {
	files   map[string]string // task root files, by slash-separated path
	handler string
	env     []string // added to (and overriding) the default environment
	cfg     runtimeapi.Config
	// argv replaces the interpreter's arguments after python3 (default:
	// -u and the bootstrap's path).
	argv []string
}

// pyCountingListener counts the connections the runtime opens.
type pyCountingListener struct {
	net.Listener
	mu       sync.Mutex
	accepted int
}

func (l *pyCountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.accepted++
		l.mu.Unlock()
	}
	return c, err
}

func (l *pyCountingListener) connections() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted
}

func pyBootstrapPath(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("python", "bootstrap.py"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func pyNeedInterpreter(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(pyInterpreter); err != nil {
		testkit.Skipf(t, "skipping: the Python runtime tests need %s (%v)", pyInterpreter, err)
	}
}

// pyStart starts the bootstrap as Owl's sandbox does and returns once
// the process runs (not once init is over: see ready and initError).
func pyStart(t testing.TB, o pyOptions) *pyProc {
	t.Helper()
	pyNeedInterpreter(t)
	root := t.TempDir()
	for name, content := range o.files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	srv, err := runtimeapi.New(o.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &pyCountingListener{Listener: tcp}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-serveDone; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	env := []string{
		"AWS_LAMBDA_RUNTIME_API=" + ln.Addr().String(),
		"_HANDLER=" + o.handler,
		"LAMBDA_TASK_ROOT=" + root,
		"LAMBDA_RUNTIME_DIR=/var/runtime",
		"AWS_LAMBDA_FUNCTION_NAME=pyfn",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/pyfn",
		"AWS_LAMBDA_LOG_STREAM_NAME=2026/01/02/[$LATEST]0123456789abcdef",
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_REGION=eu-west-1",
		"AWS_DEFAULT_REGION=eu-west-1",
		"AWS_EXECUTION_ENV=AWS_Lambda_python3.11",
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"PYTHONDONTWRITEBYTECODE=1",
		"GREETING=hi", // a function's own variable
	}
	env = append(env, o.env...) // later entries win in exec

	p := &pyProc{
		srv:      srv,
		ln:       ln,
		taskRoot: root,
		stdout:   newPyOutput(),
		stderr:   newPyOutput(),
		exited:   make(chan struct{}),
	}
	argv := o.argv
	if argv == nil {
		argv = []string{"-u", pyBootstrapPath(t)}
	}
	p.cmd = exec.Command(pyInterpreter, argv...)
	p.cmd.Env = env
	p.cmd.Dir = t.TempDir() // not the task root: the bootstrap must find it by itself
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	p.cmd.WaitDelay = pyWaitLimit
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		// Closing the server makes an idle runtime exit by itself (its
		// /next fails), and a forked one too (TestPythonZygoteFork), so that
		// its parent reaps it; whatever is still running then is killed.
		srv.Close()
		timer := time.NewTimer(2 * time.Second)
		defer timer.Stop()
		select {
		case <-p.exited:
		case <-timer.C:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("runtime stdout:\n%s\nruntime stderr:\n%s", p.stdout, p.stderr)
		}
	})
	return p
}

// ready waits for the end of a successful init.
func (p *pyProc) ready(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pyWaitLimit)
	defer cancel()
	if err := p.srv.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v\nstderr:\n%s", err, p.stderr)
	}
}

// initError waits for the runtime's /init/error and for its exit.
func (p *pyProc) initError(t testing.TB) *runtimeapi.InitError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pyWaitLimit)
	defer cancel()
	err := p.srv.WaitReady(ctx)
	var ie *runtimeapi.InitError
	if !errors.As(err, &ie) {
		t.Fatalf("WaitReady = %v, want an *InitError\nstderr:\n%s", err, p.stderr)
	}
	p.waitExit(t)
	return ie
}

// waitExit waits for the process to exit.
func (p *pyProc) waitExit(t testing.TB) {
	t.Helper()
	timer := time.NewTimer(pyWaitLimit)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		t.Fatal("the runtime did not exit")
	}
}

// pyInvocation is what a test hands to invoke; zero fields get defaults.
type pyInvocation struct {
	payload         string
	clientContext   string
	cognitoIdentity string
	traceID         string
	timeout         time.Duration
}

// invoke runs one invocation and returns its request id and outcome.
func (p *pyProc) invoke(t testing.TB, in pyInvocation) (string, runtimeapi.Outcome) {
	t.Helper()
	p.seq++
	id := fmt.Sprintf("3f1e9c2a-0000-4000-8000-%012d", p.seq)
	if in.timeout == 0 {
		in.timeout = pyWaitLimit
	}
	ctx, cancel := context.WithTimeout(context.Background(), in.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	out, err := p.srv.Invoke(ctx, runtimeapi.Invocation{
		RequestID:       id,
		Deadline:        deadline,
		FunctionARN:     "arn:aws:lambda:eu-west-1:123456789012:function:pyfn",
		TraceID:         in.traceID,
		ClientContext:   in.clientContext,
		CognitoIdentity: in.cognitoIdentity,
		Payload:         []byte(in.payload),
	})
	if err != nil {
		t.Fatalf("Invoke %s: %v\nstderr:\n%s", id, err, p.stderr)
	}
	return id, out
}

// invokeOK runs one invocation that must succeed and decodes its result.
func (p *pyProc) invokeOK(t testing.TB, in pyInvocation, result any) string {
	t.Helper()
	id, out := p.invoke(t, in)
	if out.IsError {
		t.Fatalf("invocation %s failed: %s: %s", id, out.ErrorType, out.Payload)
	}
	if err := json.Unmarshal(out.Payload, result); err != nil {
		t.Fatalf("result %q: %v", out.Payload, err)
	}
	return id
}

// pyErrorObject is the error object of Lambda's Python runtime.
type pyErrorObject struct {
	ErrorMessage string   `json:"errorMessage"`
	ErrorType    string   `json:"errorType"`
	RequestID    string   `json:"requestId"`
	StackTrace   []string `json:"stackTrace"`
}

func pyDecodeError(t testing.TB, body []byte) pyErrorObject {
	t.Helper()
	var e pyErrorObject
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error object %s: %v", body, err)
	}
	var raw map[string]json.RawMessage
	json.Unmarshal(body, &raw)
	for _, k := range []string{"errorMessage", "errorType", "requestId", "stackTrace"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("error object %s has no %q", body, k)
		}
	}
	if string(raw["stackTrace"]) == "null" {
		t.Errorf("stackTrace is null, want a list: %s", body)
	}
	return e
}

func pyReadExample(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "hello-python", "app.py"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPythonHello(t *testing.T) {
	p := pyStart(t, pyOptions{files: map[string]string{"app.py": pyReadExample(t)}, handler: "app.handler"})
	p.ready(t)
	for _, tc := range []struct{ payload, want string }{
		{`{"name":"Owl"}`, "Hello, Owl!"},
		{``, "Hello, world!"}, // an empty event is {}
		{`{}`, "Hello, world!"},
	} {
		var got struct{ Message string }
		p.invokeOK(t, pyInvocation{payload: tc.payload}, &got)
		if got.Message != tc.want {
			t.Errorf("payload %q: message %q, want %q", tc.payload, got.Message, tc.want)
		}
	}
}

const pyContextApp = `
import os, sys, time

def handler(event, context):
    r1 = context.get_remaining_time_in_millis()
    time.sleep(0.02)
    r2 = context.get_remaining_time_in_millis()
    cc = context.client_context
    ident = context.identity
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "memory_is_int": isinstance(context.memory_limit_in_mb, int),
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": [r1, r2],
        "identity": None if ident is None else [ident.cognito_identity_id, ident.cognito_identity_pool_id],
        "client_context": None if cc is None else {
            "custom": cc.custom,
            "env": cc.env,
            "client_installation_id": None if cc.client is None else cc.client.installation_id,
            "client_app_title": None if cc.client is None else cc.client.app_title,
        },
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "greeting": os.environ.get("GREETING"),
        "cwd": os.getcwd(),
        "sys_path": sys.path[:3],
        "event": event,
    }
`

type pyContextResult struct {
	FunctionName       string         `json:"function_name"`
	FunctionVersion    string         `json:"function_version"`
	InvokedFunctionARN string         `json:"invoked_function_arn"`
	MemoryLimitInMB    any            `json:"memory_limit_in_mb"`
	MemoryIsInt        bool           `json:"memory_is_int"`
	AWSRequestID       string         `json:"aws_request_id"`
	LogGroupName       string         `json:"log_group_name"`
	LogStreamName      string         `json:"log_stream_name"`
	Remaining          []int64        `json:"remaining"`
	Identity           []*string      `json:"identity"`
	ClientContext      map[string]any `json:"client_context"`
	TraceID            *string        `json:"trace_id"`
	Greeting           string         `json:"greeting"`
	Cwd                string         `json:"cwd"`
	SysPath            []string       `json:"sys_path"`
	Event              map[string]any `json:"event"`
}

func TestPythonContext(t *testing.T) {
	p := pyStart(t, pyOptions{files: map[string]string{"app.py": pyContextApp}, handler: "app.handler"})
	p.ready(t)

	var got pyContextResult
	id := p.invokeOK(t, pyInvocation{
		payload: `{"k":[1,2,{"n":null}]}`,
		clientContext: `{"client":{"installation_id":"inst-1","app_title":"Owl App"},` +
			`"custom":{"tenant":"acme","n":7},"env":{"platform":"Linux"}}`,
		cognitoIdentity: `{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}`,
		traceID:         "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
		timeout:         5 * time.Second,
	}, &got)

	checks := []struct {
		name      string
		got, want any
	}{
		{"function_name", got.FunctionName, "pyfn"},
		{"function_version", got.FunctionVersion, "$LATEST"},
		{"invoked_function_arn", got.InvokedFunctionARN, "arn:aws:lambda:eu-west-1:123456789012:function:pyfn"},
		{"memory_limit_in_mb", got.MemoryLimitInMB, float64(256)},
		{"memory_limit_in_mb is an int", got.MemoryIsInt, true},
		{"aws_request_id", got.AWSRequestID, id},
		{"log_group_name", got.LogGroupName, "/aws/lambda/pyfn"},
		{"log_stream_name", got.LogStreamName, "2026/01/02/[$LATEST]0123456789abcdef"},
		{"greeting", got.Greeting, "hi"},
		{"cwd", got.Cwd, p.taskRoot},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if got.TraceID == nil || !strings.HasPrefix(*got.TraceID, "Root=1-5759e988") {
		t.Errorf("_X_AMZN_TRACE_ID = %v, want the invocation's trace id", got.TraceID)
	}
	if len(got.Identity) != 2 || got.Identity[0] == nil || *got.Identity[0] != "id-1" || got.Identity[1] == nil || *got.Identity[1] != "pool-1" {
		t.Errorf("identity = %v, want [id-1 pool-1]", got.Identity)
	}
	cc := got.ClientContext
	custom, _ := cc["custom"].(map[string]any)
	envMap, _ := cc["env"].(map[string]any)
	if custom["tenant"] != "acme" || custom["n"] != float64(7) || envMap["platform"] != "Linux" ||
		cc["client_installation_id"] != "inst-1" || cc["client_app_title"] != "Owl App" {
		t.Errorf("client_context = %v", cc)
	}
	if len(got.Remaining) != 2 || got.Remaining[0] <= 0 || got.Remaining[1] <= 0 ||
		got.Remaining[1] >= got.Remaining[0] || got.Remaining[0] > 5000 {
		t.Errorf("remaining times %v: want positive, decreasing, at most the 5 s timeout", got.Remaining)
	}
	wantPath := []string{p.taskRoot, "/opt/python/lib/python3.", "/opt/python"}
	if len(got.SysPath) != 3 || got.SysPath[0] != wantPath[0] || !strings.HasPrefix(got.SysPath[1], wantPath[1]) ||
		!strings.HasSuffix(got.SysPath[1], "/site-packages") || got.SysPath[2] != wantPath[2] {
		t.Errorf("sys.path starts with %q, want %q", got.SysPath, wantPath)
	}
	if fmt.Sprint(got.Event) != "map[k:[1 2 map[n:<nil>]]]" {
		t.Errorf("event = %v", got.Event)
	}

	// Without a client context, identity or trace id.
	var bare pyContextResult
	p.invokeOK(t, pyInvocation{payload: `{}`}, &bare)
	if bare.ClientContext != nil {
		t.Errorf("client_context = %v, want None", bare.ClientContext)
	}
	if len(bare.Identity) != 2 || bare.Identity[0] != nil || bare.Identity[1] != nil {
		t.Errorf("identity = %v, want an object with None attributes", bare.Identity)
	}
	if bare.TraceID != nil {
		t.Errorf("_X_AMZN_TRACE_ID = %q survived into an invocation without one", *bare.TraceID)
	}
}

func TestPythonPackageHandler(t *testing.T) {
	p := pyStart(t, pyOptions{
		files: map[string]string{
			"helper.py":       "PREFIX = 'from helper'\n",
			"pkg/__init__.py": "",
			"pkg/mod.py":      "from helper import PREFIX\nfrom . import sibling\n\ndef fn(event, context):\n    return [PREFIX, sibling.NAME, __name__]\n",
			"pkg/sibling.py":  "NAME = 'sibling'\n",
		},
		handler: "pkg/mod.fn",
	})
	p.ready(t)
	var got []string
	p.invokeOK(t, pyInvocation{payload: `{}`}, &got)
	if want := []string{"from helper", "sibling", "pkg.mod"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pkg/mod.fn returned %q, want %q", got, want)
	}

	// A namespace package (no __init__.py), two levels down.
	p2 := pyStart(t, pyOptions{
		files:   map[string]string{"ns/deeper/plain.py": "def go(event, context):\n    return __name__\n"},
		handler: "ns/deeper/plain.go",
	})
	p2.ready(t)
	var name string
	p2.invokeOK(t, pyInvocation{payload: `{}`}, &name)
	if name != "ns.deeper.plain" {
		t.Errorf("ns/deeper/plain.go ran in module %q", name)
	}
}

const pyRaisingApp = `
def inner(event):
    raise ValueError("bad input: " + event["why"])

def handler(event, context):
    if event.get("ok"):
        return "fine"
    inner(event)
`

func TestPythonHandlerException(t *testing.T) {
	p := pyStart(t, pyOptions{files: map[string]string{"app.py": pyRaisingApp}, handler: "app.handler"})
	p.ready(t)
	id, out := p.invoke(t, pyInvocation{payload: `{"why":"nope"}`})
	if !out.IsError || out.ErrorType != "ValueError" {
		t.Fatalf("outcome = %+v, want a ValueError", out)
	}
	e := pyDecodeError(t, out.Payload)
	if e.ErrorType != "ValueError" || e.ErrorMessage != "bad input: nope" || e.RequestID != id {
		t.Errorf("error object = %+v", e)
	}
	appPy := filepath.Join(p.taskRoot, "app.py")
	want := []string{
		"  File \"" + appPy + "\", line 8, in handler\n    inner(event)\n",
		"  File \"" + appPy + "\", line 3, in inner\n    raise ValueError(\"bad input: \" + event[\"why\"])\n",
	}
	if fmt.Sprintf("%q", e.StackTrace) != fmt.Sprintf("%q", want) {
		t.Errorf("stackTrace = %q\nwant         %q", e.StackTrace, want)
	}
	// Logged as Lambda does: one record, lines separated by CR.
	p.stderr.waitContains(t, "[ERROR] ValueError: bad input: nope\rTraceback (most recent call last):\r")

	// The process survives a failed invocation.
	var s string
	p.invokeOK(t, pyInvocation{payload: `{"ok":true}`}, &s)
	if s != "fine" {
		t.Errorf("after an error: %q", s)
	}
}

const pyMarshalApp = `
import decimal

def handler(event, context):
    kind = event.get("kind")
    if kind == "set":
        return {1, 2}
    if kind == "decimal":
        return {"int": decimal.Decimal("3"), "frac": decimal.Decimal("1.5")}
    if kind == "unicode":
        return "h\u00e9llo \u2603"
    return None
`

func TestPythonMarshalling(t *testing.T) {
	p := pyStart(t, pyOptions{files: map[string]string{"app.py": pyMarshalApp}, handler: "app.handler"})
	p.ready(t)

	id, out := p.invoke(t, pyInvocation{payload: `{"kind":"set"}`})
	if !out.IsError || out.ErrorType != "Runtime.MarshalError" {
		t.Fatalf("set: outcome = %+v, want Runtime.MarshalError", out)
	}
	e := pyDecodeError(t, out.Payload)
	if e.ErrorMessage != "Unable to marshal response: Object of type set is not JSON serializable" ||
		e.ErrorType != "Runtime.MarshalError" || e.RequestID != id || len(e.StackTrace) != 0 {
		t.Errorf("set: error object = %+v", e)
	}

	_, out = p.invoke(t, pyInvocation{payload: `not json`})
	if !out.IsError || out.ErrorType != "Runtime.UnmarshalError" {
		t.Errorf("invalid event: outcome = %+v, want Runtime.UnmarshalError", out)
	}

	for _, tc := range []struct{ payload, want string }{
		{`{"kind":"decimal"}`, `{"int": 3, "frac": 1.5}`},
		{`{"kind":"unicode"}`, `"héllo ☃"`},
		{`{}`, `null`},
	} {
		_, out := p.invoke(t, pyInvocation{payload: tc.payload})
		if out.IsError || string(out.Payload) != tc.want {
			t.Errorf("%s: outcome %+v (%s), want %s", tc.payload, out, out.Payload, tc.want)
		}
	}
}

func TestPythonInitErrors(t *testing.T) {
	for _, tc := range []struct {
		name, handler string
		files         map[string]string
		errorType     string
		message       string // errorMessage must start with it
	}{
		{"missing module", "app.handler", nil,
			"Runtime.ImportModuleError", "Unable to import module 'app': No module named 'app'"},
		{"missing dependency", "app.handler", map[string]string{"app.py": "import owl_not_installed_xyz\n"},
			"Runtime.ImportModuleError", "Unable to import module 'app': No module named 'owl_not_installed_xyz'"},
		{"raises at import", "app.handler", map[string]string{"app.py": "x = 1\nraise RuntimeError('no config')\n"},
			"Runtime.ImportModuleError", "Unable to import module 'app': RuntimeError: no config"},
		{"syntax error", "app.handler", map[string]string{"app.py": "def handler(event, context:\n    return 1\n"},
			"Runtime.UserCodeSyntaxError", "Syntax error in module 'app': "},
		{"missing function", "app.nope", map[string]string{"app.py": "def handler(event, context):\n    return 1\n"},
			"Runtime.HandlerNotFound", "Handler 'nope' missing on module 'app'"},
		{"no dot", "app", map[string]string{"app.py": ""},
			"Runtime.MalformedHandlerName", "Bad handler 'app': "},
		{"empty function", "app.", map[string]string{"app.py": ""},
			"Runtime.MalformedHandlerName", "Bad handler 'app.': "},
		{"empty module path segment", "pkg//app.handler", map[string]string{"pkg/app.py": ""},
			"Runtime.MalformedHandlerName", "Bad handler 'pkg//app.handler': "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := pyStart(t, pyOptions{files: tc.files, handler: tc.handler})
			ie := p.initError(t)
			if ie.Type != tc.errorType || !strings.HasPrefix(ie.Message, tc.message) {
				t.Errorf("InitError = %s: %s, want %s: %s…", ie.Type, ie.Message, tc.errorType, tc.message)
			}
			e := pyDecodeError(t, ie.Body)
			if e.ErrorType != tc.errorType || e.ErrorMessage != ie.Message || e.RequestID != "" {
				t.Errorf("init error body = %s", ie.Body)
			}
			if code := p.cmd.ProcessState.ExitCode(); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if want := "[ERROR] " + tc.errorType + ": " + ie.Message + "\r"; !strings.Contains(p.stderr.String(), want) {
				t.Errorf("stderr %q does not contain %q", p.stderr, want)
			}
			switch tc.errorType {
			case "Runtime.UserCodeSyntaxError":
				if len(e.StackTrace) != 1 || !strings.Contains(e.StackTrace[0], "app.py\" Line 1") {
					t.Errorf("stackTrace = %q, want the file and line of the syntax error", e.StackTrace)
				}
			case "Runtime.ImportModuleError":
				if tc.name == "raises at import" &&
					(len(e.StackTrace) != 1 || !strings.Contains(e.StackTrace[0], "app.py\", line 2, in <module>")) {
					t.Errorf("stackTrace = %q, want the module's frame only", e.StackTrace)
				}
			}
		})
	}
}

const pyLoggingApp = `
import logging
logging.info("init line")
log = logging.getLogger("my.module")

def handler(event, context):
    print("print line", event["n"])
    logging.info("root info %d", event["n"])
    log.warning("child warning")
    logging.debug("debug line")
    context.log("context line\n")
    return event["n"]
`

func TestPythonLogging(t *testing.T) {
	p := pyStart(t, pyOptions{files: map[string]string{"app.py": pyLoggingApp}, handler: "app.handler"})
	p.ready(t)
	var n int
	id1 := p.invokeOK(t, pyInvocation{payload: `{"n":1}`}, &n)
	id2 := p.invokeOK(t, pyInvocation{payload: `{"n":2}`}, &n)

	const ts = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`
	want := []string{
		`\[INFO\]\t` + ts + `\t\tinit line`,
		`print line 1`,
		`\[INFO\]\t` + ts + `\t` + id1 + `\troot info 1`,
		`\[WARNING\]\t` + ts + `\t` + id1 + `\tchild warning`,
		`context line`,
		`print line 2`,
		`\[INFO\]\t` + ts + `\t` + id2 + `\troot info 2`,
		`\[WARNING\]\t` + ts + `\t` + id2 + `\tchild warning`,
		`context line`,
	}
	out := p.stdout.waitFor(t, "9 lines", func(s string) bool { return strings.Count(s, "\n") >= len(want) })
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("stdout has %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, re := range want {
		if !regexp.MustCompile(`^` + re + `$`).MatchString(lines[i]) {
			t.Errorf("stdout line %d = %q, want /%s/", i+1, lines[i], re)
		}
	}
	if s := p.stderr.String(); s != "" {
		t.Errorf("stderr = %q, want nothing", s)
	}

	// AWS_LAMBDA_LOG_LEVEL sets the root logger's level.
	p2 := pyStart(t, pyOptions{files: map[string]string{"app.py": pyLoggingApp}, handler: "app.handler",
		env: []string{"AWS_LAMBDA_LOG_LEVEL=DEBUG"}})
	p2.ready(t)
	id := p2.invokeOK(t, pyInvocation{payload: `{"n":3}`}, &n)
	p2.stdout.waitContains(t, "[DEBUG]\t")
	p2.stdout.waitFor(t, "the debug line", func(s string) bool {
		return regexp.MustCompile(`(?m)^\[DEBUG\]\t` + ts + `\t` + id + `\tdebug line$`).MatchString(s)
	})
	p3 := pyStart(t, pyOptions{files: map[string]string{"app.py": pyLoggingApp}, handler: "app.handler",
		env: []string{"AWS_LAMBDA_LOG_LEVEL=ERROR"}})
	p3.ready(t)
	p3.invokeOK(t, pyInvocation{payload: `{"n":4}`}, &n)
	out = p3.stdout.waitContains(t, "context line\n")
	if strings.Contains(out, "[INFO]") || strings.Contains(out, "[WARNING]") {
		t.Errorf("AWS_LAMBDA_LOG_LEVEL=ERROR let through:\n%s", out)
	}
}

const pyCounterApp = `
import os
count = 0

def handler(event, context):
    global count
    count += 1
    if event.get("fail"):
        raise KeyError("boom")
    return {"count": count, "pid": os.getpid(), "id": context.aws_request_id}
`

func TestPythonWarmReuse(t *testing.T) {
	p := pyStart(t, pyOptions{files: map[string]string{"app.py": pyCounterApp}, handler: "app.handler"})
	p.ready(t)
	pid := p.cmd.Process.Pid
	for i := 1; i <= 6; i++ {
		if i == 4 {
			_, out := p.invoke(t, pyInvocation{payload: `{"fail":true}`})
			if out.ErrorType != "KeyError" {
				t.Fatalf("invocation %d: %+v", i, out)
			}
			continue
		}
		var got struct {
			Count, PID int
			ID         string
		}
		id := p.invokeOK(t, pyInvocation{payload: `{}`}, &got)
		if got.Count != i || got.PID != pid || got.ID != id {
			t.Errorf("invocation %d (%s): %+v, want count %d in pid %d", i, id, got, i, pid)
		}
	}
	if n := p.ln.connections(); n != 1 {
		t.Errorf("the runtime opened %d connections to the Runtime API, want 1 kept alive", n)
	}
}

func TestPythonResponseTooLarge(t *testing.T) {
	p := pyStart(t, pyOptions{
		files:   map[string]string{"app.py": "def handler(event, context):\n    return 'x' * event['n']\n"},
		handler: "app.handler",
		cfg:     runtimeapi.Config{MaxResponseBytes: 64 << 10},
	})
	p.ready(t)
	_, out := p.invoke(t, pyInvocation{payload: `{"n":1000000}`})
	if out.ErrorType != lambdaerr.FunctionResponseSizeTooLarge {
		t.Fatalf("outcome = %+v, want %s", out, lambdaerr.FunctionResponseSizeTooLarge)
	}
	// The runtime carries on after the platform refused its response.
	var s string
	p.invokeOK(t, pyInvocation{payload: `{"n":3}`}, &s)
	if s != "xxx" {
		t.Errorf("after a refused response: %q", s)
	}
}

func TestPythonExitsWhenRuntimeAPIGoes(t *testing.T) {
	p := pyStart(t, pyOptions{files: map[string]string{"app.py": pyReadExample(t)}, handler: "app.handler"})
	p.ready(t)
	var got struct{ Message string }
	p.invokeOK(t, pyInvocation{payload: `{}`}, &got)
	p.srv.Close()
	p.waitExit(t)
	if code := p.cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	// Close may race the runtime's POST of the last response (its 202 can
	// be cut off) or come before its next GET: either call reports the loss.
	p.stderr.waitContains(t, "[ERROR] Runtime API: ")
}

// pyZygoteDriver imports the bootstrap as a module with none of the
// function's environment, checks that importing it did nothing
// function-specific, then forks; the child receives the environment and
// calls main(), as a pre-warming zygote would.
const pyZygoteDriver = `
import importlib.util, logging, os, sys

boot = sys.argv[1]
function_env = {k: os.environ.pop(k) for k in list(os.environ)
                if k.startswith("AWS_") or k in ("_HANDLER", "LAMBDA_TASK_ROOT")}

spec = importlib.util.spec_from_file_location("owl_bootstrap", boot)
bootstrap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bootstrap)
assert "app" not in sys.modules, "the handler was imported with the runtime"
assert not logging.getLogger().handlers, "logging was configured at import"

pid = os.fork()
if pid == 0:
    code = 0
    try:
        import ctypes, signal
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the zygote
        os.environ.update(function_env)
        bootstrap.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
`

func TestPythonZygoteFork(t *testing.T) {
	p := pyStart(t, pyOptions{
		files:   map[string]string{"app.py": pyCounterApp},
		handler: "app.handler",
		argv:    []string{"-u", "-c", pyZygoteDriver, pyBootstrapPath(t)},
	})
	p.ready(t)
	for i := 1; i <= 2; i++ {
		var got struct{ Count, PID int }
		p.invokeOK(t, pyInvocation{payload: `{}`}, &got)
		if got.Count != i || got.PID == p.cmd.Process.Pid {
			t.Errorf("invocation %d: %+v, want count %d in the forked child (the zygote is pid %d)", i, got, i, p.cmd.Process.Pid)
		}
	}
}

// BenchmarkPythonWarmInvoke measures one warm invocation of the hello
// example: the Runtime API round trip plus the bootstrap's own work.
func BenchmarkPythonWarmInvoke(b *testing.B) {
	p := pyStart(b, pyOptions{files: map[string]string{"app.py": pyReadExample(b)}, handler: "app.handler"})
	p.ready(b)
	b.ResetTimer()
	for b.Loop() {
		var got struct{ Message string }
		p.invokeOK(b, pyInvocation{payload: `{"name":"bench"}`}, &got)
	}
}

// BenchmarkPythonColdStart measures starting the interpreter and the
// bootstrap, loading the hello example and answering its first invocation.
func BenchmarkPythonColdStart(b *testing.B) {
	app := pyReadExample(b)
	for b.Loop() {
		p := pyStart(b, pyOptions{files: map[string]string{"app.py": app}, handler: "app.handler"})
		var got struct{ Message string }
		p.invokeOK(b, pyInvocation{payload: `{}`}, &got)
		p.srv.Close() // the runtime exits; its cleanup waits for it
	}
}
