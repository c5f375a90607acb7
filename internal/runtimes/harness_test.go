package runtimes_test

// The one harness of the runtime tests: Owl's bootstrap of a runtime
// (python/bootstrap.py, node/bootstrap.mjs) run by the host's real
// interpreter against the real Runtime API server, with handlers written
// to a temporary task root. conformance_test.go runs the same cases
// against every runtime through it; python_test.go and node_test.go keep
// what only one runtime has (packages, callbacks, module formats...).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/runtimeapi"

	"github.com/owl-project/owl/internal/testkit"
)

// waitLimit bounds every wait of these tests.
const waitLimit = 20 * time.Second

// The function every test runs as.
const (
	fnName    = "hello"
	fnARN     = "arn:aws:lambda:eu-west-1:123456789012:function:hello"
	logGroup  = "/aws/lambda/hello"
	logStream = "2026/01/02/[$LATEST]0123456789abcdef"
	traceID   = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
)

// runtimeUnderTest is one of Owl's own runtimes as these tests start it.
type runtimeUnderTest struct {
	name      string   // "python" or "node": subtest names and case keys
	interp    string   // the host's interpreter
	flags     []string // the interpreter's arguments before the bootstrap
	bootstrap string   // the bootstrap, relative to this package
	env       []string // the runtime's own start-up variables (runtimes.go)
	// startInTaskRoot: the process starts with the task root as its working
	// directory, as in a sandbox. Python's bootstrap enters the task root by
	// itself, so it is started elsewhere to check that; Node's enters it only
	// when pre-warmed (a fresh sandbox start is already in /var/task).
	startInTaskRoot bool
	// errorKeys are the keys of the runtime's error object: Lambda's Python
	// runtime adds requestId and calls the trace stackTrace, Node's calls it
	// trace.
	errorKeys []string
	traceKey  string
}

var (
	pythonRuntime = &runtimeUnderTest{
		name: "python", interp: "/usr/bin/python3", flags: []string{"-u"}, bootstrap: "python/bootstrap.py",
		env:       []string{"AWS_EXECUTION_ENV=AWS_Lambda_python3.11", "PYTHONDONTWRITEBYTECODE=1"},
		errorKeys: []string{"errorMessage", "errorType", "requestId", "stackTrace"},
		traceKey:  "stackTrace",
	}
	nodeRuntime = &runtimeUnderTest{
		name: "node", interp: "/usr/bin/node", bootstrap: "node/bootstrap.mjs",
		env: []string{"AWS_EXECUTION_ENV=AWS_Lambda_nodejs20.x",
			"NODE_PATH=/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules"},
		startInTaskRoot: true,
		errorKeys:       []string{"errorType", "errorMessage", "trace"},
		traceKey:        "trace",
	}
	allRuntimes = []*runtimeUnderTest{pythonRuntime, nodeRuntime}
)

func (rt *runtimeUnderTest) bootstrapPath(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs(rt.bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (rt *runtimeUnderTest) need(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(rt.interp); err != nil {
		testkit.Skipf(t, "the %s runtime tests need %s (%v)", rt.name, rt.interp, err)
	}
}

// options say how to start a runtime; zero fields get defaults.
type options struct {
	files   map[string]string // task root files, by slash-separated path
	root    string            // an existing task root instead of files
	handler string
	env     []string // added to (and overriding) the default environment
	cfg     runtimeapi.Config
	argv    []string  // replaces the interpreter's arguments
	stdout  io.Writer // nil: a file, whose snapshot can be read at any time
}

// proc is one runtime process and its Runtime API server.
type proc struct {
	t        testing.TB
	rt       *runtimeUnderTest
	srv      *runtimeapi.Server
	ln       *countingListener
	cmd      *exec.Cmd
	taskRoot string
	stdout   *output
	stderr   *output
	exited   chan struct{} // closed when the process has been waited for
	seq      int
}

// countingListener counts the connections the runtime opens.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// output is a child's stdout or stderr, written straight into a file by
// the child: what is in it when a response has arrived is everything the
// runtime wrote before responding (no copying goroutine in between).
type output struct {
	t    testing.TB
	path string
}

func (o *output) String() string {
	b, err := os.ReadFile(o.path)
	if err != nil {
		o.t.Fatal(err)
	}
	return string(b)
}

// waitFor waits until ok holds for the output so far, and returns it.
func (o *output) waitFor(what string, ok func(string) bool) string {
	o.t.Helper()
	var s string
	err := testkit.Poll(waitLimit, func() error {
		if s = o.String(); ok(s) {
			return nil
		}
		return errors.New("not yet")
	})
	if err != nil {
		o.t.Fatalf("timed out waiting for %s; output so far:\n%s", what, s)
	}
	return s
}

// waitContains waits until the output contains sub.
func (o *output) waitContains(sub string) string {
	o.t.Helper()
	return o.waitFor(fmt.Sprintf("%q", sub), func(s string) bool { return strings.Contains(s, sub) })
}

// writeTree writes files (slash-separated path → content) into a fresh
// directory and returns it.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// start starts rt's bootstrap as Owl's sandbox does and returns once the
// process runs (not once init is over: see ready and initError).
func start(t testing.TB, rt *runtimeUnderTest, o options) *proc {
	t.Helper()
	rt.need(t)
	root := o.root
	if root == "" {
		root = writeTree(t, o.files)
	}
	srv, err := runtimeapi.New(o.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: testkit.Listen(t)}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-serveDone; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	env := []string{
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"AWS_LAMBDA_RUNTIME_API=" + ln.Addr().String(),
		"_HANDLER=" + o.handler,
		"LAMBDA_TASK_ROOT=" + root,
		"LAMBDA_RUNTIME_DIR=/var/runtime",
		"AWS_LAMBDA_FUNCTION_NAME=" + fnName,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_LAMBDA_LOG_GROUP_NAME=" + logGroup,
		"AWS_LAMBDA_LOG_STREAM_NAME=" + logStream,
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_REGION=eu-west-1",
		"AWS_DEFAULT_REGION=eu-west-1",
		"GREETING=hi", // a function's own variable
	}
	env = append(append(env, rt.env...), o.env...) // later entries win in exec

	dir := t.TempDir()
	p := &proc{
		t:        t,
		rt:       rt,
		srv:      srv,
		ln:       ln,
		taskRoot: root,
		stdout:   &output{t: t, path: filepath.Join(dir, "stdout")},
		stderr:   &output{t: t, path: filepath.Join(dir, "stderr")},
		exited:   make(chan struct{}),
	}
	argv := o.argv
	if argv == nil {
		argv = append(append([]string{}, rt.flags...), rt.bootstrapPath(t))
	}
	p.cmd = exec.Command(rt.interp, argv...)
	p.cmd.Env = env
	p.cmd.Dir = t.TempDir()
	if rt.startInTaskRoot {
		p.cmd.Dir = root
	}
	var files []*os.File
	for _, f := range []struct {
		path string
		dst  *io.Writer
	}{{p.stdout.path, &p.cmd.Stdout}, {p.stderr.path, &p.cmd.Stderr}} {
		fh, err := os.Create(f.path)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fh)
		*f.dst = fh
	}
	if o.stdout != nil {
		p.cmd.Stdout = o.stdout
		p.cmd.WaitDelay = waitLimit
	}
	err = p.cmd.Start()
	for _, f := range files {
		f.Close() // the child has its own copies
	}
	if err != nil {
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
			t.Logf("%s", p.logs())
		}
	})
	return p
}

// logs is the process's output so far, for failure messages.
func (p *proc) logs() string {
	out, _ := os.ReadFile(p.stdout.path)
	errb, _ := os.ReadFile(p.stderr.path)
	return fmt.Sprintf("--- %s stdout ---\n%s--- %s stderr ---\n%s", p.rt.name, out, p.rt.name, errb)
}

// ready waits for the end of a successful init.
func (p *proc) ready() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := p.srv.WaitReady(ctx); err != nil {
		p.t.Fatalf("WaitReady: %v\n%s", err, p.logs())
	}
}

// initError waits for the runtime's /init/error and for its exit.
func (p *proc) initError() *runtimeapi.InitError {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	err := p.srv.WaitReady(ctx)
	var ie *runtimeapi.InitError
	if !errors.As(err, &ie) {
		p.t.Fatalf("WaitReady = %v, want an *InitError\n%s", err, p.logs())
	}
	p.waitExit()
	return ie
}

// waitExit waits for the process to exit and returns its exit code.
func (p *proc) waitExit() int {
	p.t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		p.t.Fatalf("the runtime did not exit\n%s", p.logs())
	}
	return p.cmd.ProcessState.ExitCode()
}

// invocation is what a test hands to invoke; zero fields get defaults.
type invocation struct {
	payload         string
	functionARN     string
	clientContext   string
	cognitoIdentity string
	traceID         string
	timeout         time.Duration
}

// nextID is a fresh request id.
func (p *proc) nextID() string {
	p.seq++
	return fmt.Sprintf("3f1e9c2a-0000-4000-8000-%012d", p.seq)
}

// invoke runs one invocation and returns its request id and outcome.
func (p *proc) invoke(in invocation) (string, runtimeapi.Outcome) {
	p.t.Helper()
	id := p.nextID()
	if in.timeout == 0 {
		in.timeout = waitLimit
	}
	if in.functionARN == "" {
		in.functionARN = fnARN
	}
	ctx, cancel := context.WithTimeout(context.Background(), in.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	out, err := p.srv.Invoke(ctx, runtimeapi.Invocation{
		RequestID:       id,
		Deadline:        deadline,
		FunctionARN:     in.functionARN,
		TraceID:         in.traceID,
		ClientContext:   in.clientContext,
		CognitoIdentity: in.cognitoIdentity,
		Payload:         []byte(in.payload),
	})
	if err != nil {
		p.t.Fatalf("Invoke %s: %v\n%s", id, err, p.logs())
	}
	return id, out
}

// invokeOK runs one invocation that must succeed and decodes its result
// into result.
func (p *proc) invokeOK(in invocation, result any) string {
	p.t.Helper()
	id, out := p.invoke(in)
	if out.IsError {
		p.t.Fatalf("invocation %s failed: %s: %s\n%s", id, out.ErrorType, out.Payload, p.logs())
	}
	if err := json.Unmarshal(out.Payload, result); err != nil {
		p.t.Fatalf("result %q: %v", out.Payload, err)
	}
	return id
}

// errorObject is a runtime's error object, whichever its keys.
type errorObject struct {
	Type, Message, RequestID string
	Trace                    []string
}

// decodeError decodes an error object and checks it has exactly the keys
// of the runtime's and a list (not null) as its trace.
func (p *proc) decodeError(body []byte) errorObject {
	p.t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		p.t.Fatalf("error object %s: %v", body, err)
	}
	var keys []string
	for k := range raw {
		keys = append(keys, k)
	}
	for _, k := range p.rt.errorKeys {
		if _, ok := raw[k]; !ok {
			p.t.Errorf("error object %s has no %q (want the keys %q)", body, k, p.rt.errorKeys)
		}
	}
	if len(raw) != len(p.rt.errorKeys) {
		p.t.Errorf("error object %s has the keys %q, want %q", body, keys, p.rt.errorKeys)
	}
	var e errorObject
	for k, dst := range map[string]any{"errorType": &e.Type, "errorMessage": &e.Message, "requestId": &e.RequestID, p.rt.traceKey: &e.Trace} {
		if v, ok := raw[k]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				p.t.Errorf("error object %s: %s: %v", body, k, err)
			}
		}
	}
	if e.Trace == nil {
		p.t.Errorf("error object %s: %s is not a list", body, p.rt.traceKey)
	}
	return e
}

// jsonValue decodes b, failing t if it is not JSON.
func jsonValue(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v: %q", err, b)
	}
	return v
}

// sameJSON reports whether got (a decoded value) is the JSON want.
func sameJSON(t testing.TB, got any, want string) bool {
	t.Helper()
	return reflect.DeepEqual(got, jsonValue(t, []byte(want)))
}

// wantResult fails t unless the decoded result got is the JSON want.
func wantResult(t testing.TB, got any, want string) {
	t.Helper()
	if !sameJSON(t, got, want) {
		gb, _ := json.Marshal(got)
		t.Errorf("result = %s, want %s", gb, want)
	}
}

// logTime matches the ISO time of a log record.
const logTime = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`

// nodeTimestamps matches the ISO time at the start of each Node.js log
// record.
var nodeTimestamps = regexp.MustCompile(`(?m)^` + logTime + `\t`)

// normalizeNodeLog replaces each Node.js record's timestamp by "TS\t".
func normalizeNodeLog(s string) string { return nodeTimestamps.ReplaceAllString(s, "TS\t") }

// watchedBuffer is a writer that signals each write, for output read
// through a pipe (exec copies the child's stdout pipe into it).
type watchedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{}
}

func newWatchedBuffer() *watchedBuffer { return &watchedBuffer{notify: make(chan struct{}, 1)} }

func (b *watchedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

// waitSuffix returns the contents once they end with suffix.
func (b *watchedBuffer) waitSuffix(t testing.TB, suffix string) string {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		b.mu.Lock()
		s := b.buf.String()
		b.mu.Unlock()
		if strings.HasSuffix(s, suffix) {
			return s
		}
		select {
		case <-b.notify:
		case <-deadline:
			t.Fatalf("stdout never ended with %q; it has %d bytes ending %q", suffix, len(s), s[max(0, len(s)-200):])
		}
	}
}

// examplePath is the absolute path of a directory of examples/.
func examplePath(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
