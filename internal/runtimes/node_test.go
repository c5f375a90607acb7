package runtimes_test

// Tests of Owl's Node.js runtime (node/bootstrap.mjs): the real interpreter
// against the real Runtime API server, with handlers written to a temporary
// task root. Helpers are prefixed "node" (python_test.go lives alongside).

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
	"testing"
	"time"

	"github.com/owl-project/owl/internal/runtimeapi"

	"github.com/owl-project/owl/internal/testkit"

	"github.com/owl-project/owl/internal/lambdaerr"
)

const (
	nodeBin     = "/usr/bin/node"
	nodeFnARN   = "arn:aws:lambda:us-east-1:123456789012:function:hello"
	nodeTimeout = 20 * time.Second
)

// nodeProc is one runtime process and its Runtime API server.
type nodeProc struct {
	t       *testing.T
	srv     *runtimeapi.Server
	cmd     *exec.Cmd
	stdout  string // file holding the child's stdout; "" when it went to a writer
	stderr  string // file holding the child's stderr
	exited  chan struct{}
	waitErr error // valid once exited is closed
	seq     int
}

// nodeOptions tweak nodeStart.
type nodeOptions struct {
	env    []string  // added to (and overriding) the base environment
	stdout io.Writer // nil: a file (a snapshot can be read at any time)
}

// nodeRun starts the runtime for handler with task root root.
func nodeRun(t *testing.T, root, handler string, env ...string) *nodeProc {
	return nodeStart(t, root, handler, nodeOptions{env: env})
}

func nodeStart(t *testing.T, root, handler string, o nodeOptions) *nodeProc {
	t.Helper()
	if _, err := os.Stat(nodeBin); err != nil {
		testkit.Skipf(t, "Node.js runtime tests need %s: %v", nodeBin, err)
	}
	bootstrap, err := filepath.Abs(filepath.Join("node", "bootstrap.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := runtimeapi.New(runtimeapi.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()

	dir := t.TempDir()
	p := &nodeProc{t: t, srv: srv, stderr: filepath.Join(dir, "stderr"), exited: make(chan struct{})}
	cmd := exec.Command(nodeBin, bootstrap)
	cmd.Dir = root
	cmd.Env = nodeEnv(append([]string{
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"AWS_LAMBDA_RUNTIME_API=" + ln.Addr().String(),
		"_HANDLER=" + handler,
		"LAMBDA_TASK_ROOT=" + root,
		"AWS_LAMBDA_FUNCTION_NAME=hello",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/hello",
		"AWS_LAMBDA_LOG_STREAM_NAME=2024/01/01/[$LATEST]0123456789abcdef",
		"AWS_REGION=us-east-1",
		"NODE_PATH=/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules",
	}, o.env...))
	var files []*os.File
	if o.stdout != nil {
		cmd.Stdout = o.stdout
	} else {
		p.stdout = filepath.Join(dir, "stdout")
		f, err := os.Create(p.stdout)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		cmd.Stdout = f
	}
	ef, err := os.Create(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, ef)
	cmd.Stderr = ef
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close() // the child has its own copies
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() // an error only means it has exited already
		select {
		case <-p.exited:
		case <-time.After(nodeTimeout):
			t.Errorf("node (pid %d) did not exit after SIGKILL", cmd.Process.Pid)
		}
		srv.Close()
		<-served
		if testing.Verbose() {
			t.Logf("node output:\n%s", p.logs())
		}
	})
	return p
}

// nodeEnv dedups an environment list, later entries winning.
func nodeEnv(kvs []string) []string {
	idx := map[string]int{}
	var out []string
	for _, kv := range kvs {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// ctx is a context that ends at the test deadline or when the process exits.
func (p *nodeProc) ctx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	go func() {
		select {
		case <-p.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// logs is the process's output so far, for failure messages.
func (p *nodeProc) logs() string {
	var b strings.Builder
	if p.stdout != "" {
		out, _ := os.ReadFile(p.stdout)
		fmt.Fprintf(&b, "--- stdout ---\n%s", out)
	}
	errb, _ := os.ReadFile(p.stderr)
	fmt.Fprintf(&b, "--- stderr ---\n%s", errb)
	return b.String()
}

func (p *nodeProc) readStdout() string {
	p.t.Helper()
	b, err := os.ReadFile(p.stdout)
	if err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

func (p *nodeProc) readStderr() string {
	p.t.Helper()
	b, err := os.ReadFile(p.stderr)
	if err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

func (p *nodeProc) waitReady() {
	p.t.Helper()
	ctx, cancel := p.ctx()
	defer cancel()
	if err := p.srv.WaitReady(ctx); err != nil {
		p.t.Fatalf("WaitReady: %v\n%s", err, p.logs())
	}
}

// nextID is a fresh request id.
func (p *nodeProc) nextID() string {
	p.seq++
	return fmt.Sprintf("8f5b6e1c-2d3a-4b5c-9d8e-%012d", p.seq)
}

// invokeWith runs one invocation built from inv (RequestID, Deadline and
// FunctionARN filled in when empty) and returns its outcome.
func (p *nodeProc) invokeWith(inv runtimeapi.Invocation) runtimeapi.Outcome {
	p.t.Helper()
	if inv.RequestID == "" {
		inv.RequestID = p.nextID()
	}
	if inv.Deadline.IsZero() {
		inv.Deadline = time.Now().Add(nodeTimeout)
	}
	if inv.FunctionARN == "" {
		inv.FunctionARN = nodeFnARN
	}
	ctx, cancel := p.ctx()
	defer cancel()
	out, err := p.srv.Invoke(ctx, inv)
	if err != nil {
		p.t.Fatalf("Invoke %s: %v\n%s", inv.RequestID, err, p.logs())
	}
	return out
}

func (p *nodeProc) invoke(payload string) (runtimeapi.Outcome, string) {
	p.t.Helper()
	id := p.nextID()
	return p.invokeWith(runtimeapi.Invocation{RequestID: id, Payload: []byte(payload)}), id
}

// invokeOK invokes and requires success, returning the decoded result.
func (p *nodeProc) invokeOK(payload string) any {
	p.t.Helper()
	out, id := p.invoke(payload)
	if out.IsError {
		p.t.Fatalf("invocation %s failed: %s: %s\n%s", id, out.ErrorType, out.Payload, p.logs())
	}
	return nodeJSON(p.t, out.Payload)
}

// waitExit waits for the process to end and returns its exit code.
func (p *nodeProc) waitExit() int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(nodeTimeout):
		p.t.Fatalf("node did not exit\n%s", p.logs())
	}
	var ee *exec.ExitError
	switch {
	case p.waitErr == nil:
		return 0
	case errors.As(p.waitErr, &ee):
		return ee.ExitCode()
	}
	p.t.Fatalf("wait: %v", p.waitErr)
	return -1
}

// nodeTaskRoot writes files (path relative to the root → content) into a
// fresh directory and returns it.
func nodeTaskRoot(t *testing.T, files map[string]string) string {
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

func nodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v: %q", err, b)
	}
	return v
}

// nodeErrorBody is the error object of Lambda's Node.js runtime.
type nodeErrorBody struct {
	ErrorType    string    `json:"errorType"`
	ErrorMessage string    `json:"errorMessage"`
	Trace        *[]string `json:"trace"`
}

func nodeDecodeError(t *testing.T, b []byte) nodeErrorBody {
	t.Helper()
	var e nodeErrorBody
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %s: %v", b, err)
	}
	if e.Trace == nil {
		t.Fatalf("error body %s has no trace array", b)
	}
	return e
}

func nodeWantResult(t *testing.T, got any, wantJSON string) {
	t.Helper()
	want := nodeJSON(t, []byte(wantJSON))
	if !reflect.DeepEqual(got, want) {
		gb, _ := json.Marshal(got)
		t.Errorf("result = %s, want %s", gb, wantJSON)
	}
}

// nodeTimestamps matches the ISO time at the start of each log record.
var nodeTimestamps = regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t`)

// nodeNormalizeLog replaces each record's timestamp by "TS\t".
func nodeNormalizeLog(s string) string { return nodeTimestamps.ReplaceAllString(s, "TS\t") }

func TestNodeAsyncHandler(t *testing.T) {
	root := nodeTaskRoot(t, map[string]string{
		"app.js": `exports.handler = async (event) => ({ got: event, type: typeof event });
exports.nothing = async () => undefined;
`,
	})
	p := nodeRun(t, root, "app.handler")
	p.waitReady()
	nodeWantResult(t, p.invokeOK(`{"a":[1,2,3],"s":"é✓"}`), `{"got":{"a":[1,2,3],"s":"é✓"},"type":"object"}`)
	nodeWantResult(t, p.invokeOK(`"just a string"`), `{"got":"just a string","type":"string"}`)

	q := nodeRun(t, root, "app.nothing")
	out, _ := q.invoke(`{}`)
	if out.IsError || string(out.Payload) != "null" {
		t.Errorf("undefined result: %+v %s, want null", out, out.Payload)
	}
}

func TestNodeModuleFormats(t *testing.T) {
	layer := nodeTaskRoot(t, map[string]string{
		"nodejs/node_modules/layerlib/index.js": `exports.name = 'from-layer';`,
	})
	cases := []struct {
		name    string
		files   map[string]string
		handler string
		env     []string
		want    string
	}{
		{"commonjs .js", map[string]string{
			"app.js": `exports.handler = async () => 'cjs:' + typeof require;`,
		}, "app.handler", nil, `"cjs:function"`},
		{"commonjs .cjs", map[string]string{
			"app.cjs": `module.exports.handler = async () => 'cjs:' + typeof module;`,
		}, "app.handler", nil, `"cjs:object"`},
		{"ES module .mjs", map[string]string{
			"app.mjs": `export const handler = async () => 'esm:' + typeof require + ':' + import.meta.url.endsWith('/app.mjs');`,
		}, "app.handler", nil, `"esm:undefined:true"`},
		{"ES module .js with type module", map[string]string{
			"package.json": `{"name":"x","type":"module"}`,
			"app.js":       `export const handler = async () => 'esm:' + typeof require;`,
		}, "app.handler", nil, `"esm:undefined"`},
		{"type commonjs .js", map[string]string{
			"package.json": `{"name":"x","type":"commonjs"}`,
			"app.js":       `exports.handler = async () => 'cjs:' + typeof require;`,
		}, "app.handler", nil, `"cjs:function"`},
		{"subdirectory", map[string]string{
			"src/lib/app.js": `exports.handler = async () => __filename.endsWith('/src/lib/app.js');`,
		}, "src/lib/app.handler", nil, `true`},
		{"subdirectory with its own type module", map[string]string{
			"src/package.json": `{"type":"module"}`,
			"src/app.js":       `export async function handler() { return 'esm-sub:' + typeof require; }`,
		}, "src/app.handler", nil, `"esm-sub:undefined"`},
		{"nested export", map[string]string{
			"app.js": `exports.api = { v1: { handler: async () => 'nested' } };`,
		}, "app.api.v1.handler", nil, `"nested"`},
		{"default export", map[string]string{
			"app.mjs": `export default async function () { return 'default'; }`,
		}, "app.default", nil, `"default"`},
		{"ES module importing CommonJS", map[string]string{
			"app.mjs":    `import helper from './helper.cjs'; export const handler = async () => helper.word;`,
			"helper.cjs": `exports.word = 'mixed';`,
		}, "app.handler", nil, `"mixed"`},
		{"package in node_modules", map[string]string{
			"node_modules/mypkg/index.js": `exports.handler = async () => 'pkg';`,
		}, "mypkg.handler", nil, `"pkg"`},
		{"NODE_PATH (a layer)", map[string]string{
			"app.js": `const lib = require('layerlib'); exports.handler = async () => lib.name;`,
		}, "app.handler", []string{"NODE_PATH=" + filepath.Join(layer, "nodejs", "node_modules")}, `"from-layer"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := nodeRun(t, nodeTaskRoot(t, c.files), c.handler, c.env...)
			nodeWantResult(t, p.invokeOK(`{}`), c.want)
		})
	}
}

func TestNodeHandlerStyles(t *testing.T) {
	root := nodeTaskRoot(t, map[string]string{"app.js": `
exports.cbOK = (event, context, callback) => { callback(null, { ok: event.x }); };
exports.cbErr = (event, context, callback) => { callback(new TypeError('bad input')); };
exports.cbString = (event, context, callback) => { callback('plain failure'); };
exports.cbFirstWins = (event, context, callback) => { callback(null, 'first'); callback(null, 'second'); context.succeed('third'); };
exports.cbWaits = (event, context, callback) => {
  callback(null, 'waited');
  setTimeout(() => console.log('timer after callback'), 20);
};
exports.cbNoWait = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  setTimeout(() => {}, 600000);
  callback(null, 'did not wait');
};
exports.cbNever = (event, context, callback) => { setTimeout(() => {}, 10); };
exports.asyncNoWait = async () => { setTimeout(() => {}, 600000); return 'async does not wait'; };
exports.asyncNeverSettles = async () => new Promise(() => {});
exports.promise = (event) => Promise.resolve(event.x + 1);
exports.sync = (event) => event.x * 2;
exports.legacySucceed = (event, context) => { setTimeout(() => context.succeed('legacy'), 5); };
exports.legacyFail = (event, context) => { context.fail(new Error('legacy failure')); };
exports.legacyDone = (event, context) => { context.done(null, { done: true }); };
exports.throwAfterCallback = (event, context, callback) => { callback(null, 'kept'); throw new Error('ignored'); };
exports.asyncWithCallback = async (event, context, callback) => { callback(null, 'callback wins'); return 'promise loses'; };
`})
	type want struct {
		result    string // JSON; "" when an error is expected
		errorType string
		message   string
		stdout    string // must be in stdout when the result arrives
	}
	cases := []struct {
		handler string
		want    want
	}{
		{"cbOK", want{result: `{"ok":21}`}},
		{"cbErr", want{errorType: "TypeError", message: "bad input"}},
		{"cbString", want{errorType: "string", message: "plain failure"}},
		{"cbFirstWins", want{result: `"first"`}},
		{"cbWaits", want{result: `"waited"`, stdout: "\tINFO\ttimer after callback\n"}},
		{"cbNoWait", want{result: `"did not wait"`}},
		{"cbNever", want{result: `null`}},
		{"asyncNoWait", want{result: `"async does not wait"`}},
		{"asyncNeverSettles", want{errorType: "Runtime.NodeJsExit", message: "The event loop emptied"}},
		{"promise", want{result: `22`}},
		{"sync", want{result: `42`}},
		{"legacySucceed", want{result: `"legacy"`}},
		{"legacyFail", want{errorType: "Error", message: "legacy failure"}},
		{"legacyDone", want{result: `{"done":true}`}},
		{"throwAfterCallback", want{result: `"kept"`}},
		{"asyncWithCallback", want{result: `"callback wins"`}},
	}
	for _, c := range cases {
		t.Run(c.handler, func(t *testing.T) {
			t.Parallel()
			p := nodeRun(t, root, "app."+c.handler)
			out, _ := p.invoke(`{"x":21}`)
			if c.want.errorType == "" {
				if out.IsError {
					t.Fatalf("failed: %s %s\n%s", out.ErrorType, out.Payload, p.logs())
				}
				nodeWantResult(t, nodeJSON(t, out.Payload), c.want.result)
			} else {
				if !out.IsError || out.ErrorType != c.want.errorType {
					t.Fatalf("outcome %+v (%s), want error %s", out, out.Payload, c.want.errorType)
				}
				e := nodeDecodeError(t, out.Payload)
				if e.ErrorType != c.want.errorType || !strings.HasPrefix(e.ErrorMessage, c.want.message) {
					t.Errorf("error body %s, want %s: %s", out.Payload, c.want.errorType, c.want.message)
				}
			}
			if c.want.stdout != "" && !strings.Contains(p.readStdout(), c.want.stdout) {
				t.Errorf("stdout lacks %q when the result arrived:\n%s", c.want.stdout, p.readStdout())
			}
			// The runtime goes on serving after every kind of completion.
			out2, _ := p.invoke(`{"x":1}`)
			if c.want.errorType == "" && out2.IsError {
				t.Errorf("second invocation failed: %s", out2.Payload)
			}
		})
	}
}

func TestNodeErrors(t *testing.T) {
	root := nodeTaskRoot(t, map[string]string{"app.js": `
class ValidationError extends Error {
  constructor(m) { super(m); this.name = 'ValidationError'; }
}
exports.handler = async (event) => {
  switch (event.kind) {
    case 'custom': throw new ValidationError('bad field');
    case 'string': throw 'plain string';
    case 'object': throw { code: 42 };
    case 'undefined': return Promise.reject(undefined);
    case 'unstringifiable': { const o = {}; o.self = o; return o; }
    default: return 'fine';
  }
};
exports.sync = (event) => { throw new RangeError('sync boom'); };
`})
	p := nodeRun(t, root, "app.handler")
	type want struct {
		errorType, message string
		traceHead          string // first trace line; "" for an empty trace
	}
	for _, c := range []struct {
		kind string
		want want
	}{
		{"custom", want{"ValidationError", "bad field", "ValidationError: bad field"}},
		{"string", want{"string", "plain string", ""}},
		{"object", want{"object", "[object Object]", ""}},
		{"undefined", want{"string", "handled", ""}},
		{"unstringifiable", want{"Error", "Unable to stringify response body", "Error: Unable to stringify response body"}},
	} {
		out, id := p.invoke(`{"kind":"` + c.kind + `"}`)
		if !out.IsError || out.ErrorType != c.want.errorType {
			t.Errorf("%s: outcome %+v (%s), want error %s", c.kind, out, out.Payload, c.want.errorType)
			continue
		}
		e := nodeDecodeError(t, out.Payload)
		if e.ErrorType != c.want.errorType || e.ErrorMessage != c.want.message {
			t.Errorf("%s: body %s, want %s: %s", c.kind, out.Payload, c.want.errorType, c.want.message)
		}
		switch tr := *e.Trace; {
		case c.want.traceHead == "" && len(tr) != 0:
			t.Errorf("%s: trace %q, want empty", c.kind, tr)
		case c.want.traceHead != "" && (len(tr) < 2 || tr[0] != c.want.traceHead || !strings.HasPrefix(strings.TrimSpace(tr[1]), "at ")):
			t.Errorf("%s: trace %q, want %q and stack frames", c.kind, tr, c.want.traceHead)
		}
		if c.kind == "custom" && !strings.Contains(strings.Join(*e.Trace, "\n"), filepath.Join(root, "app.js")) {
			t.Errorf("custom: trace %q does not point into app.js", *e.Trace)
		}
		// Lambda logs each failed invocation as an ERROR record.
		if rec := "\t" + id + "\tERROR\tInvoke Error \t{\"errorType\":"; !strings.Contains(p.readStdout(), rec) {
			t.Errorf("%s: stdout lacks %q:\n%s", c.kind, rec, p.readStdout())
		}
	}
	nodeWantResult(t, p.invokeOK(`{"kind":"none"}`), `"fine"`)

	q := nodeRun(t, root, "app.sync")
	out, _ := q.invoke(`{}`)
	e := nodeDecodeError(t, out.Payload)
	if out.ErrorType != "RangeError" || e.ErrorType != "RangeError" || e.ErrorMessage != "sync boom" || (*e.Trace)[0] != "RangeError: sync boom" {
		t.Errorf("sync throw: %+v %s", out, out.Payload)
	}
}

func TestNodeContext(t *testing.T) {
	root := nodeTaskRoot(t, map[string]string{"app.mjs": `
export const handler = async (event, context) => ({
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  invokedFunctionArn: context.invokedFunctionArn,
  memoryLimitInMB: context.memoryLimitInMB,
  awsRequestId: context.awsRequestId,
  logGroupName: context.logGroupName,
  logStreamName: context.logStreamName,
  identity: context.identity ?? 'absent',
  clientContext: context.clientContext ?? 'absent',
  remaining: context.getRemainingTimeInMillis(),
  waits: context.callbackWaitsForEmptyEventLoop,
  legacy: [typeof context.succeed, typeof context.fail, typeof context.done],
  traceId: process.env._X_AMZN_TRACE_ID ?? 'absent',
  userVar: process.env.MY_SETTING,
  region: process.env.AWS_REGION,
});
`})
	p := nodeRun(t, root, "app.handler", "MY_SETTING=from-config")
	id := p.nextID()
	deadline := time.Now().Add(5 * time.Second)
	out := p.invokeWith(runtimeapi.Invocation{
		RequestID:       id,
		Deadline:        deadline,
		FunctionARN:     nodeFnARN + ":prod",
		TraceID:         "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
		ClientContext:   `{"client":{"installation_id":"inst-1","app_title":"Owl"},"custom":{"k":"v"},"env":{"platform":"linux"}}`,
		CognitoIdentity: `{"cognitoIdentityId":"us-east-1:abc","cognitoIdentityPoolId":"us-east-1:pool"}`,
		Payload:         []byte(`{}`),
	})
	if out.IsError {
		t.Fatalf("failed: %s\n%s", out.Payload, p.logs())
	}
	got := nodeJSON(t, out.Payload).(map[string]any)
	remaining, _ := got["remaining"].(float64)
	if remaining <= 0 || remaining > 5000 {
		t.Errorf("getRemainingTimeInMillis() = %v, want in (0, 5000]", got["remaining"])
	}
	delete(got, "remaining")
	nodeWantResult(t, got, `{
		"functionName": "hello",
		"functionVersion": "$LATEST",
		"invokedFunctionArn": "`+nodeFnARN+`:prod",
		"memoryLimitInMB": "256",
		"awsRequestId": "`+id+`",
		"logGroupName": "/aws/lambda/hello",
		"logStreamName": "2024/01/01/[$LATEST]0123456789abcdef",
		"identity": {"cognitoIdentityId":"us-east-1:abc","cognitoIdentityPoolId":"us-east-1:pool"},
		"clientContext": {"client":{"installation_id":"inst-1","app_title":"Owl"},"custom":{"k":"v"},"env":{"platform":"linux"}},
		"waits": true,
		"legacy": ["function","function","function"],
		"traceId": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
		"userVar": "from-config",
		"region": "us-east-1"
	}`)

	// The next invocation has no client context, identity or trace id: none
	// leaks over from the previous one.
	got = p.invokeOK(`{}`).(map[string]any)
	for k, want := range map[string]any{"clientContext": "absent", "identity": "absent", "traceId": "absent", "invokedFunctionArn": nodeFnARN} {
		if got[k] != want {
			t.Errorf("second invocation: %s = %v, want %v", k, got[k], want)
		}
	}

	// A client context that is not JSON fails the invocation, as in Lambda.
	bad := p.invokeWith(runtimeapi.Invocation{ClientContext: `{not json`, Payload: []byte(`{}`)})
	if !bad.IsError || !strings.Contains(string(bad.Payload), "Cannot parse ClientContext as json") {
		t.Errorf("malformed client context: %+v %s", bad, bad.Payload)
	}
}

func TestNodeInitErrors(t *testing.T) {
	cases := []struct {
		name      string
		files     map[string]string
		handler   string
		errorType string
		message   string // prefix of errorMessage
	}{
		{"module not found", nil, "app.handler",
			"Runtime.ImportModuleError", "Error: Cannot find module 'app'"},
		{"dependency not found", map[string]string{"app.js": `require('not-installed'); exports.handler = async () => 1;`}, "app.handler",
			"Runtime.ImportModuleError", "Error: Cannot find module 'not-installed'"},
		{"ES module dependency not found", map[string]string{"app.mjs": `import x from 'not-installed'; export const handler = async () => x;`}, "app.handler",
			"Runtime.ImportModuleError", "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'not-installed' imported from "},
		{"syntax error", map[string]string{"app.js": "exports.handler = async () => {\n"}, "app.handler",
			"Runtime.UserCodeSyntaxError", "SyntaxError: "},
		{"ES module syntax error", map[string]string{"app.mjs": "export const handler = ;\n"}, "app.handler",
			"Runtime.UserCodeSyntaxError", "SyntaxError: "},
		{"export missing", map[string]string{"app.js": `exports.handler = async () => 1;`}, "app.nope",
			"Runtime.HandlerNotFound", "app.nope is undefined or not exported"},
		{"export not a function", map[string]string{"app.js": `exports.value = 42;`}, "app.value",
			"Runtime.HandlerNotFound", "app.value is not a function"},
		{"no export name", map[string]string{"app.js": `exports.handler = async () => 1;`}, "app",
			"Runtime.MalformedHandlerName", "Bad handler"},
		{"empty handler", nil, "",
			"Runtime.MalformedHandlerName", "Bad handler"},
		{"relative path", nil, "../app.handler",
			"Runtime.MalformedHandlerName", "'../app.handler' is not a valid handler name"},
		{"top-level throw", map[string]string{"app.js": `throw new RangeError('init boom');`}, "app.handler",
			"RangeError", "init boom"},
		{"top-level await never settles", map[string]string{"app.mjs": "await new Promise(() => {});\nexport const handler = async () => 1;\n"}, "app.handler",
			"Runtime.NodeJsExit", "The event loop emptied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := nodeRun(t, nodeTaskRoot(t, c.files), c.handler)
			ctx, cancel := p.ctx()
			defer cancel()
			err := p.srv.WaitReady(ctx)
			var ie *runtimeapi.InitError
			if !errors.As(err, &ie) {
				t.Fatalf("WaitReady = %v, want an InitError\n%s", err, p.logs())
			}
			if ie.Type != c.errorType || !strings.HasPrefix(ie.Message, c.message) {
				t.Errorf("InitError %s: %q, want %s: %q...", ie.Type, ie.Message, c.errorType, c.message)
			}
			e := nodeDecodeError(t, ie.Body)
			if e.ErrorType != c.errorType || len(*e.Trace) == 0 || !strings.HasPrefix((*e.Trace)[0], c.errorType+": ") {
				t.Errorf("init error body %s", ie.Body)
			}
			if code := p.waitExit(); code != 1 {
				t.Errorf("exit code %d, want 1\n%s", code, p.logs())
			}
			rec := "\tundefined\tERROR\tUncaught Exception \t{\"errorType\":\"" + c.errorType + "\""
			if stderr := p.readStderr(); !strings.Contains(stderr, rec) || !nodeTimestamps.MatchString(stderr) {
				t.Errorf("stderr lacks a record like %q:\n%s", rec, stderr)
			}
		})
	}
}

func TestNodeConsoleLogging(t *testing.T) {
	root := nodeTaskRoot(t, map[string]string{"app.js": `
console.log('loading');
exports.handler = async (event) => {
  console.log('hello %s', event.name);
  console.info('info', 42);
  console.warn('warn', { a: 1 });
  console.error('error', new Error('shown').message);
  console.debug('debug');
  console.trace('trace');
  console.log('multi\nline');
  console.log();
  return 'ok';
};
`})
	p := nodeRun(t, root, "app.handler")
	p.waitReady()
	before := time.Now().UTC().Add(-time.Second)
	out, id := p.invoke(`{"name":"owl"}`)
	if out.IsError {
		t.Fatalf("failed: %s\n%s", out.Payload, p.logs())
	}
	// Read at once: every record must already be in stdout when the
	// response has arrived.
	stdout := p.readStdout()
	want := "TS\tundefined\tINFO\tloading\n" +
		"TS\t" + id + "\tINFO\thello owl\n" +
		"TS\t" + id + "\tINFO\tinfo 42\n" +
		"TS\t" + id + "\tWARN\twarn { a: 1 }\n" +
		"TS\t" + id + "\tERROR\terror shown\n" +
		"TS\t" + id + "\tDEBUG\tdebug\n" +
		"TS\t" + id + "\tTRACE\ttrace\n" +
		"TS\t" + id + "\tINFO\tmulti\nline\n" +
		"TS\t" + id + "\tINFO\t\n"
	if got := nodeNormalizeLog(stdout); got != want {
		t.Errorf("stdout when the response arrived:\n%q\nwant\n%q", got, want)
	}
	for _, ts := range nodeTimestamps.FindAllString(stdout, -1) {
		tm, err := time.Parse("2006-01-02T15:04:05.000Z", strings.TrimSuffix(ts, "\t"))
		if err != nil || tm.Before(before.Add(-time.Minute)) || tm.After(time.Now().Add(time.Second)) {
			t.Errorf("record time %q: %v", ts, err)
		}
	}

	// The next invocation's records carry its own id.
	_, id2 := p.invoke(`{"name":"again"}`)
	if s := p.readStdout(); !strings.Contains(s, "\t"+id2+"\tINFO\thello again\n") {
		t.Errorf("second invocation's records lack its id %s:\n%s", id2, s)
	}
	if s := p.readStderr(); s != "" {
		t.Errorf("stderr: %q", s)
	}
}

func TestNodeLogLevelFilter(t *testing.T) {
	root := nodeTaskRoot(t, map[string]string{"app.js": `
exports.handler = async () => { console.debug('hidden'); console.info('shown'); console.warn('also shown'); };
`})
	p := nodeRun(t, root, "app.handler", "AWS_LAMBDA_LOG_LEVEL=info")
	_, id := p.invoke(`{}`)
	want := "TS\t" + id + "\tINFO\tshown\nTS\t" + id + "\tWARN\talso shown\n"
	if got := nodeNormalizeLog(p.readStdout()); got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

// nodeWatchedBuffer is a writer that signals each write; exec copies the
// child's stdout pipe into it.
type nodeWatchedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{}
}

func (b *nodeWatchedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

// waitFor returns the contents once they end with suffix.
func (b *nodeWatchedBuffer) waitFor(t *testing.T, suffix string) string {
	t.Helper()
	deadline := time.After(nodeTimeout)
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

func TestNodeStdoutPipe(t *testing.T) {
	// Through a pipe (as in a sandbox): user writes queued on process.stdout
	// and the runtime's own records keep their order, and big records on a
	// non-blocking pipe arrive whole.
	root := nodeTaskRoot(t, map[string]string{"app.js": `
const line = 'x'.repeat(1023) + '\n';
exports.handler = async (event) => {
  if (event.step === 1) {
    process.stdout.write(line.repeat(1024)); // 1 MiB: far more than a pipe holds
    for (let i = 0; i < 100; i++) console.log('after', i);
  } else {
    console.log('y'.repeat(1 << 20));
    console.log('end');
  }
  return event.step;
};
`})
	w := &nodeWatchedBuffer{notify: make(chan struct{}, 1)}
	p := nodeStart(t, root, "app.handler", nodeOptions{stdout: w})
	_, id := p.invoke(`{"step":1}`)
	var want strings.Builder
	want.WriteString(strings.Repeat(strings.Repeat("x", 1023)+"\n", 1024))
	for i := range 100 {
		fmt.Fprintf(&want, "TS\t%s\tINFO\tafter %d\n", id, i)
	}
	got := w.waitFor(t, "\tafter 99\n")
	if nodeNormalizeLog(got) != want.String() {
		t.Errorf("step 1: stdout (%d bytes) is not the 1 MiB block followed by 100 records", len(got))
	}
	_, id2 := p.invoke(`{"step":2}`)
	want.WriteString("TS\t" + id2 + "\tINFO\t" + strings.Repeat("y", 1<<20) + "\nTS\t" + id2 + "\tINFO\tend\n")
	got = w.waitFor(t, "\tINFO\tend\n")
	if nodeNormalizeLog(got) != want.String() {
		t.Errorf("step 2: stdout (%d bytes) does not end with the 1 MiB record and 'end'", len(got))
	}
}

func TestNodeModuleStateReused(t *testing.T) {
	root := nodeTaskRoot(t, map[string]string{"app.js": `
let count = 0;
const loadedAt = process.hrtime.bigint().toString();
exports.handler = async () => ({ count: ++count, pid: process.pid, loadedAt });
`})
	p := nodeRun(t, root, "app.handler")
	first := p.invokeOK(`{}`).(map[string]any)
	for i := 2; i <= 4; i++ {
		got := p.invokeOK(`{}`).(map[string]any)
		if got["count"] != float64(i) || got["pid"] != first["pid"] || got["loadedAt"] != first["loadedAt"] {
			t.Errorf("invocation %d: %v (first %v)", i, got, first)
		}
	}
	if first["count"] != float64(1) {
		t.Errorf("first invocation: %v", first)
	}
}

func TestNodeUncaughtErrors(t *testing.T) {
	root := nodeTaskRoot(t, map[string]string{"app.js": `
exports.uncaught = (event, context, callback) => { setTimeout(() => { throw new Error('async boom'); }, 1); };
exports.rejection = async () => {
  Promise.reject(new Error('nobody catches'));
  await new Promise((resolve) => setTimeout(resolve, 600000));
};
`})
	for _, c := range []struct {
		handler, errorType, message string
		exit                        int
	}{
		{"uncaught", "Error", "async boom", 129},
		{"rejection", "Runtime.UnhandledPromiseRejection", "Error: nobody catches", 128},
	} {
		t.Run(c.handler, func(t *testing.T) {
			t.Parallel()
			p := nodeRun(t, root, "app."+c.handler)
			out, _ := p.invoke(`{}`)
			e := nodeDecodeError(t, out.Payload)
			if !out.IsError || out.ErrorType != c.errorType || e.ErrorMessage != c.message {
				t.Errorf("outcome %+v %s, want %s: %s", out, out.Payload, c.errorType, c.message)
			}
			if code := p.waitExit(); code != c.exit {
				t.Errorf("exit code %d, want %d\n%s", code, c.exit, p.logs())
			}
		})
	}
}

func TestNodeExitsWhenRuntimeAPIGoes(t *testing.T) {
	root := nodeTaskRoot(t, map[string]string{"app.js": `exports.handler = async () => 1;`})
	p := nodeRun(t, root, "app.handler")
	p.waitReady()
	p.srv.Close()
	if code := p.waitExit(); code != 1 {
		t.Errorf("exit code %d, want 1\n%s", code, p.logs())
	}
}

func TestNodeHelloExample(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", "examples", "hello-node"))
	if err != nil {
		t.Fatal(err)
	}
	p := nodeRun(t, root, "index.handler")
	nodeWantResult(t, p.invokeOK(`{"name":"Ada"}`), `{"message":"Hello, Ada!"}`)
	nodeWantResult(t, p.invokeOK(`{}`), `{"message":"Hello, world!"}`)
}

func TestNodeResponseTooLarge(t *testing.T) {
	root := nodeTaskRoot(t, map[string]string{"app.js": `
exports.handler = async (event) => event.big ? 'z'.repeat(7 << 20) : 'small';
`})
	p := nodeRun(t, root, "app.handler")
	out, _ := p.invoke(`{"big":true}`)
	if !out.IsError || out.ErrorType != lambdaerr.FunctionResponseSizeTooLarge {
		t.Errorf("7 MiB result: %+v, want %s", out, lambdaerr.FunctionResponseSizeTooLarge)
	}
	// The runtime survives the refusal and serves the next invocation.
	nodeWantResult(t, p.invokeOK(`{}`), `"small"`)
}
