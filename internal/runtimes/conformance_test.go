package runtimes_test

// The runtime conformance suite: one table of cases, each run against
// every runtime in allRuntimes (harness_test.go). A case holds the same
// function written in each runtime's language and what it must do; where
// Owl's runtimes genuinely differ (because Lambda's own Python and Node.js
// runtimes differ there), the case records each runtime's expectation in
// `differs`, with a comment saying why, instead of skipping a runtime.

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/runtimeapi"
)

// impl is a case's function in one runtime's language.
type impl struct {
	files   map[string]string
	example string // a directory of examples/ as the task root, instead of files
	handler string
}

// want is what an invocation (or an init) must end in.
type want struct {
	result    string // the result, as JSON (when errorType is empty)
	errorType string // or the error it fails with
	// message is the errorMessage, or its beginning when it ends in "…".
	message string
	// byPlatform: the error object is the platform's, not the runtime's.
	byPlatform bool
	// check, if set, checks more of the outcome.
	check func(t *testing.T, p *proc, id string, out runtimeapi.Outcome)
}

// step is one invocation of a case and its expected outcome.
type step struct {
	in      invocation
	want    want
	differs map[string]want // by runtime name: where that runtime differs
}

func (s step) wantFor(rt *runtimeUnderTest) want {
	if w, ok := s.differs[rt.name]; ok {
		return w
	}
	return s.want
}

// conformanceCase is one behaviour every runtime must have.
type conformanceCase struct {
	name string
	code map[string]impl // by runtime name
	env  []string
	cfg  runtimeapi.Config
	// initError, by runtime name, is the init failure expected instead of
	// steps (messages are the runtimes' own, so they are per runtime).
	initError map[string]want
	steps     []step
	// after, if set, runs last, with the runtime still up.
	after func(t *testing.T, p *proc)
}

// TestConformance runs every case of conformanceCases against every
// runtime.
func TestConformance(t *testing.T) {
	for _, c := range conformanceCases {
		for _, rt := range allRuntimes {
			t.Run(c.name+"/"+rt.name, func(t *testing.T) {
				t.Parallel()
				code, ok := c.code[rt.name]
				if !ok {
					t.Fatalf("case %q has no %s code", c.name, rt.name)
				}
				o := options{files: code.files, handler: code.handler, env: c.env, cfg: c.cfg}
				if code.example != "" {
					o.root = examplePath(t, code.example)
				}
				p := start(t, rt, o)
				if w, ok := c.initError[rt.name]; ok {
					checkInitError(t, p, w)
					return
				}
				p.ready()
				for i, s := range c.steps {
					id, out := p.invoke(s.in)
					checkOutcome(t, p, fmt.Sprintf("step %d (%.40s)", i+1, s.in.payload), id, out, s.wantFor(rt))
				}
				if c.after != nil {
					c.after(t, p)
				}
			})
		}
	}
}

func checkOutcome(t *testing.T, p *proc, what, id string, out runtimeapi.Outcome, w want) {
	t.Helper()
	if w.errorType == "" {
		if out.IsError {
			t.Errorf("%s: failed: %s: %s", what, out.ErrorType, out.Payload)
			return
		}
		if got := jsonValue(t, out.Payload); w.result != "" && !sameJSON(t, got, w.result) {
			t.Errorf("%s: result %.200s, want %.200s", what, out.Payload, w.result)
		}
	} else {
		if !out.IsError || out.ErrorType != w.errorType {
			t.Errorf("%s: outcome %+v (%.200s), want the error %s", what, out, out.Payload, w.errorType)
			return
		}
		if w.byPlatform {
			return
		}
		e := p.decodeError(out.Payload)
		if e.Type != w.errorType || !messageMatches(e.Message, w.message) {
			t.Errorf("%s: error object %s, want %s: %s", what, out.Payload, w.errorType, w.message)
		}
	}
	if w.check != nil {
		w.check(t, p, id, out)
	}
}

func messageMatches(got, want string) bool {
	if prefix, ok := strings.CutSuffix(want, "…"); ok {
		return strings.HasPrefix(got, prefix)
	}
	return got == want
}

// checkInitError checks an init failure: the error posted, the process's
// exit, and the record it logged.
func checkInitError(t *testing.T, p *proc, w want) {
	t.Helper()
	ie := p.initError()
	if ie.Type != w.errorType || !messageMatches(ie.Message, w.message) {
		t.Errorf("InitError = %s: %q, want %s: %q", ie.Type, ie.Message, w.errorType, w.message)
	}
	e := p.decodeError(ie.Body)
	if e.Type != w.errorType || e.Message != ie.Message || e.RequestID != "" {
		t.Errorf("init error body = %s", ie.Body)
	}
	// Owl's runtimes exit 1 after an init error (Lambda's Node.js runtime
	// exits 129: docs/runtimes.md).
	if code := p.waitExit(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	switch p.rt.name {
	case "python":
		// Lambda's Python runtime logs "[ERROR] type: message", the lines
		// of the record separated by CR.
		if rec := "[ERROR] " + ie.Type + ": " + ie.Message + "\r"; !strings.Contains(p.stderr.String(), rec) {
			t.Errorf("stderr lacks %q", rec)
		}
	case "node":
		// Lambda's Node.js runtime logs an "Uncaught Exception" record of
		// the error object, and the object's trace starts "type: ".
		rec := "\tundefined\tERROR\tUncaught Exception \t{\"errorType\":\"" + ie.Type + "\""
		if s := p.stderr.String(); !strings.Contains(s, rec) || !nodeTimestamps.MatchString(s) {
			t.Errorf("stderr lacks a record like %q", rec)
		}
		if len(e.Trace) == 0 || !strings.HasPrefix(e.Trace[0], ie.Type+": ") {
			t.Errorf("init error trace %q, want it to start with %q", e.Trace, ie.Type+": ")
		}
	}
	if w.check != nil {
		w.check(t, p, "", runtimeapi.Outcome{Payload: ie.Body, ErrorType: ie.Type, IsError: true})
	}
}

// py and js make a one-file impl.
func py(handler, code string) impl {
	return impl{files: map[string]string{"app.py": code}, handler: handler}
}

func js(handler, code string) impl {
	return impl{files: map[string]string{"app.js": code}, handler: handler}
}

// result and fails make a want.
func result(json string) want          { return want{result: json} }
func fails(errorType, msg string) want { return want{errorType: errorType, message: msg} }

// conformanceCases are all the cases (put together by init, below).
var conformanceCases []conformanceCase

// invocationCases are what a running runtime does with invocations.
var invocationCases = []conformanceCase{
	{
		name: "hello example",
		code: helloExamples,
		steps: []step{
			{in: invocation{payload: `{"name":"Owl"}`}, want: result(`{"message":"Hello, Owl!"}`)},
			{in: invocation{payload: `{}`}, want: result(`{"message":"Hello, world!"}`)},
			{in: invocation{payload: ``}, want: result(`{"message":"Hello, world!"}`), differs: emptyEventDiffers},
		},
	},
	{
		name: "events and results of every JSON type",
		code: map[string]impl{
			"python": py("app.handler", "def handler(event, context):\n    return event\n"),
			"node":   js("app.handler", "exports.handler = async (event) => event;\n"),
		},
		steps: []step{
			{in: invocation{payload: `{"a":[1,2,{"n":null}],"s":"é✓"}`}, want: result(`{"a":[1,2,{"n":null}],"s":"é✓"}`)},
			{in: invocation{payload: `[1,"two",3.5,false,null]`}, want: result(`[1,"two",3.5,false,null]`)},
			{in: invocation{payload: `"just a string"`}, want: result(`"just a string"`)},
			{in: invocation{payload: `"h\u00e9llo \u2603"`}, want: result(`"héllo ☃"`)},
			{in: invocation{payload: `42`}, want: result(`42`)},
			{in: invocation{payload: `-1.25`}, want: result(`-1.25`)},
			{in: invocation{payload: `true`}, want: result(`true`)},
			{in: invocation{payload: `false`}, want: result(`false`)},
			{in: invocation{payload: `null`}, want: result(`null`)},
			{in: invocation{payload: ``}, want: result(`{}`), differs: emptyEventDiffers},
		},
	},
	{
		name: "no return value is null",
		code: map[string]impl{
			"python": py("app.handler", "def handler(event, context):\n    pass\n"),
			"node":   js("app.handler", "exports.handler = async () => undefined;\n"),
		},
		steps: []step{{in: invocation{payload: `{}`}, want: result(`null`)}},
	},
	{
		name: "large event",
		code: map[string]impl{
			"python": py("app.handler", "def handler(event, context):\n    return [len(event['s']), event['s'][-3:]]\n"),
			"node":   js("app.handler", "exports.handler = async (event) => [event.s.length, event.s.slice(-3)];\n"),
		},
		steps: []step{{
			in:   invocation{payload: `{"s":"` + strings.Repeat("x", 5<<20) + `end"}`},
			want: result(fmt.Sprintf(`[%d,"end"]`, 5<<20+3)),
		}},
	},
	{
		name: "error raised",
		code: map[string]impl{
			"python": py("app.handler", raisingPy),
			"node":   js("app.handler", raisingJS),
		},
		steps: []step{
			{
				in:   invocation{payload: `{"why":"nope"}`},
				want: fails("ValidationError", "bad input: nope"),
				// The trace is each runtime's own: Python's a list of
				// traceback entries, Node's the error's stack lines.
				differs: map[string]want{
					"python": {errorType: "ValidationError", message: "bad input: nope", check: checkPythonRaise},
					"node":   {errorType: "ValidationError", message: "bad input: nope", check: checkNodeThrow},
				},
			},
			// The process survives a failed invocation.
			{in: invocation{payload: `{"ok":true}`}, want: result(`"fine"`)},
		},
	},
	{
		name: "result that is not JSON",
		code: map[string]impl{
			"python": py("app.handler", "def handler(event, context):\n    return {1, 2} if event.get('bad') else 'fine'\n"),
			"node":   js("app.handler", "exports.handler = async (event) => { if (!event.bad) return 'fine'; const o = {}; o.self = o; return o; };\n"),
		},
		steps: []step{
			{
				in: invocation{payload: `{"bad":true}`},
				// Each runtime reports it as Lambda's does: Python as
				// Runtime.MarshalError without a trace, Node as an Error.
				differs: map[string]want{
					"python": {errorType: "Runtime.MarshalError", message: "Unable to marshal response: Object of type set is not JSON serializable",
						check: wantTrace(0)},
					"node": {errorType: "Error", message: "Unable to stringify response body", check: wantTraceHead("Error: Unable to stringify response body")},
				},
			},
			{in: invocation{payload: `{}`}, want: result(`"fine"`)},
		},
	},
	{
		name: "event that is not JSON",
		code: map[string]impl{
			"python": py("app.handler", "def handler(event, context):\n    return event\n"),
			"node":   js("app.handler", "exports.handler = async (event) => event;\n"),
		},
		steps: []step{
			{
				in: invocation{payload: `not json`},
				differs: map[string]want{
					"python": {errorType: "Runtime.UnmarshalError", message: "Unable to unmarshal input: …"},
					// Lambda's Node.js runtime lets JSON.parse's SyntaxError through.
					"node": {errorType: "SyntaxError", message: "…"},
				},
			},
			{in: invocation{payload: `{}`}, want: result(`{}`)},
		},
	},
	{
		name: "context",
		code: map[string]impl{
			"python": py("app.handler", contextPy),
			"node":   {files: map[string]string{"app.mjs": contextJS}, handler: "app.handler"},
		},
		steps: []step{
			{
				in: invocation{
					payload:         `{}`,
					functionARN:     fnARN + ":prod",
					clientContext:   `{"client":{"installation_id":"inst-1","app_title":"Owl App"},"custom":{"tenant":"acme","n":7},"env":{"platform":"Linux"}}`,
					cognitoIdentity: `{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}`,
					traceID:         traceID,
					timeout:         5 * time.Second,
				},
				want: want{check: checkContext(map[string]string{
					"functionName":       `"` + fnName + `"`,
					"functionVersion":    `"$LATEST"`,
					"invokedFunctionArn": `"` + fnARN + `:prod"`,
					"logGroupName":       `"` + logGroup + `"`,
					"logStreamName":      `"` + logStream + `"`,
					"identity":           `{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}`,
					"clientContext":      `{"installation_id":"inst-1","app_title":"Owl App","custom":{"tenant":"acme","n":7},"env":{"platform":"Linux"}}`,
					"traceId":            `"` + traceID + `"`,
				})},
			},
			// Without a client context, identity or trace id: none leaks
			// over from the previous invocation.
			{
				in: invocation{payload: `{}`},
				want: want{check: checkContext(map[string]string{
					"invokedFunctionArn": `"` + fnARN + `"`,
					"clientContext":      `null`,
					"identity":           `null`,
					"traceId":            `null`,
				})},
				differs: map[string]want{
					// Lambda's Python runtime always has an identity object,
					// its attributes None; Node's context has none.
					"python": {check: checkContext(map[string]string{
						"invokedFunctionArn": `"` + fnARN + `"`,
						"clientContext":      `null`,
						"identity":           `{"cognitoIdentityId":null,"cognitoIdentityPoolId":null}`,
						"traceId":            `null`,
					})},
				},
			},
			{
				in: invocation{payload: `{}`, clientContext: `{not json`},
				differs: map[string]want{
					// Lambda's Node.js runtime fails an invocation whose
					// client context is not JSON with a plain Error, its
					// Python runtime with an error type of its own.
					"node":   fails("Error", "Cannot parse ClientContext as json…"),
					"python": fails("Runtime.LambdaContextUnmarshalError", "Unable to parse Client Context JSON: …"),
				},
			},
		},
	},
	{
		name: "environment",
		code: map[string]impl{
			"python": py("app.handler", "import os\ndef handler(event, context):\n    e = os.environ\n"+
				"    return [e.get('GREETING'), e.get('AWS_REGION'), e.get('_HANDLER'), e.get('SETTING'), os.getcwd()]\n"),
			"node": js("app.handler", "exports.handler = async () => { const e = process.env;\n"+
				"  return [e.GREETING, e.AWS_REGION, e._HANDLER, e.SETTING, process.cwd()]; };\n"),
		},
		env: []string{"SETTING=from-config"},
		steps: []step{{in: invocation{payload: `{}`}, want: want{check: func(t *testing.T, p *proc, id string, out runtimeapi.Outcome) {
			want := fmt.Sprintf(`["hi","eu-west-1","app.handler","from-config",%q]`, p.taskRoot)
			if !sameJSON(t, jsonValue(t, out.Payload), want) {
				t.Errorf("environment and working directory %s, want %s", out.Payload, want)
			}
		}}}},
	},
	{
		name: "logging",
		code: map[string]impl{
			"python": py("app.handler", "import logging, sys\nlogging.info('init line')\n"+
				"def handler(event, context):\n    print('plain line')\n    logging.info('info %d', event['n'])\n"+
				"    logging.warning('warned')\n    logging.debug('debug line')\n    sys.stderr.write('to stderr\\n')\n    return event['n']\n"),
			"node": js("app.handler", "console.log('init line');\n"+
				"exports.handler = async (event) => { process.stdout.write('plain line\\n'); console.info('info %d', event.n);\n"+
				"  console.warn('warned'); console.debug('debug line'); process.stderr.write('to stderr\\n'); return event.n; };\n"),
		},
		steps: []step{{in: invocation{payload: `{"n":7}`}, want: want{result: `7`, check: func(t *testing.T, p *proc, id string, out runtimeapi.Outcome) {
			// Both write plain lines as they are and log records with the
			// time, the request id (none at init) and the level, but each
			// in the order and with the level names of Lambda's runtime
			// of its language.
			records := map[string][]string{
				"python": {`\[INFO\]\t` + logTime + `\t\tinit line`, `plain line`,
					`\[INFO\]\t` + logTime + `\t` + id + `\tinfo 7`, `\[WARNING\]\t` + logTime + `\t` + id + `\twarned`},
				"node": {logTime + `\tundefined\tINFO\tinit line`, `plain line`,
					logTime + `\t` + id + `\tINFO\tinfo 7`, logTime + `\t` + id + `\tWARN\twarned`,
					logTime + `\t` + id + `\tDEBUG\tdebug line`},
			}[p.rt.name]
			wantLines(t, p.stdout.waitFor(fmt.Sprintf("%d lines", len(records)), func(s string) bool {
				return strings.Count(s, "\n") >= len(records)
			}), records)
			p.stderr.waitContains("to stderr\n")
		}}}},
	},
	{
		name: "warm reuse",
		code: map[string]impl{
			"python": py("app.handler", counterPy),
			"node":   js("app.handler", counterJS),
		},
		steps: warmReuseSteps(6),
		after: func(t *testing.T, p *proc) {
			if n := p.ln.accepted.Load(); n != 1 {
				t.Errorf("the runtime opened %d connections to the Runtime API, want 1 kept alive", n)
			}
		},
	},
	{
		name: "response too large",
		code: map[string]impl{
			"python": py("app.handler", "def handler(event, context):\n    return 'x' * event['n']\n"),
			"node":   js("app.handler", "exports.handler = async (event) => 'x'.repeat(event.n);\n"),
		},
		cfg: runtimeapi.Config{MaxResponseBytes: 64 << 10},
		steps: []step{
			{in: invocation{payload: `{"n":1000000}`}, want: want{errorType: lambdaerr.FunctionResponseSizeTooLarge, byPlatform: true}},
			// The runtime carries on after the platform refused its response.
			{in: invocation{payload: `{"n":3}`}, want: result(`"xxx"`)},
		},
	},
	{
		name: "exits when the Runtime API goes",
		code: map[string]impl{
			"python": py("app.handler", "def handler(event, context):\n    return 1\n"),
			"node":   js("app.handler", "exports.handler = async () => 1;\n"),
		},
		steps: []step{{in: invocation{payload: `{}`}, want: result(`1`)}},
		after: func(t *testing.T, p *proc) {
			p.srv.Close()
			if code := p.waitExit(); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			// Close may race the runtime's POST of the last response (its
			// 202 can be cut off) or come before its next GET: either call
			// reports the loss.
			p.stderr.waitContains(map[string]string{"python": "[ERROR] Runtime API: ", "node": "owl node runtime: "}[p.rt.name])
		},
	},
}

// emptyEventDiffers records how the runtimes take an empty event: Owl's
// Python runtime passes it to the handler as {}, its Node.js runtime
// parses it with JSON.parse and fails the invocation with its error.
var emptyEventDiffers = map[string]want{
	"node": fails("SyntaxError", "Unexpected end of JSON input"),
}

// wantLines fails t unless out's lines match the regular expressions re
// (whole lines), in order.
func wantLines(t *testing.T, out string, re []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(re) {
		t.Errorf("output has %d lines, want %d:\n%s", len(lines), len(re), out)
		return
	}
	for i, r := range re {
		if !regexp.MustCompile(`^` + r + `$`).MatchString(lines[i]) {
			t.Errorf("line %d = %q, want /%s/", i+1, lines[i], r)
		}
	}
}

// logLevelCode logs at three levels; AWS_LAMBDA_LOG_LEVEL sets the lowest
// one logged (the cases are added by init).
var logLevelCode = map[string]impl{
	"python": py("app.handler", "import logging\ndef handler(event, context):\n"+
		"    logging.debug('debug line')\n    logging.info('info line')\n    logging.error('error line')\n"),
	"node": js("app.handler", "exports.handler = async () => {\n"+
		"  console.debug('debug line'); console.info('info line'); console.error('error line'); };\n"),
}

// wantLogged checks that the lines of stdout name the levels levels, in
// order, once the error line is in.
func wantLogged(levels ...string) want {
	return want{result: `null`, check: func(t *testing.T, p *proc, id string, out runtimeapi.Outcome) {
		s := p.stdout.waitContains("error line\n")
		var got []string
		for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
			for _, level := range []string{"DEBUG", "INFO", "ERROR"} {
				if strings.Contains(l, level) {
					got = append(got, level)
				}
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(levels) {
			t.Errorf("logged %q, want the levels %q", s, levels)
		}
	}}
}

func init() {
	for _, c := range []struct {
		level  string
		logged []string
	}{
		{"DEBUG", []string{"DEBUG", "INFO", "ERROR"}},
		{"INFO", []string{"INFO", "ERROR"}},
		{"ERROR", []string{"ERROR"}},
	} {
		invocationCases = append(invocationCases, conformanceCase{
			name:  "log level " + c.level,
			code:  logLevelCode,
			env:   []string{"AWS_LAMBDA_LOG_LEVEL=" + c.level},
			steps: []step{{in: invocation{payload: `{}`}, want: wantLogged(c.logged...)}},
		})
	}
	conformanceCases = append(invocationCases, initErrorCases...)
}

const raisingPy = `
class ValidationError(Exception):
    pass

def inner(event):
    raise ValidationError("bad input: " + event["why"])

def handler(event, context):
    if event.get("ok"):
        return "fine"
    inner(event)
`

const raisingJS = `
class ValidationError extends Error {
  constructor(m) { super(m); this.name = 'ValidationError'; }
}
function inner(event) { throw new ValidationError('bad input: ' + event.why); }
exports.handler = async (event) => {
  if (event.ok) return 'fine';
  inner(event);
};
`

// checkPythonRaise: the stackTrace is the traceback's entries, the error
// object carries the request id, and the error is logged to stderr as one
// record, its lines separated by CR.
func checkPythonRaise(t *testing.T, p *proc, id string, out runtimeapi.Outcome) {
	e := p.decodeError(out.Payload)
	if e.RequestID != id {
		t.Errorf("requestId %q, want %q", e.RequestID, id)
	}
	appPy := filepath.Join(p.taskRoot, "app.py")
	want := []string{
		"  File \"" + appPy + "\", line 11, in handler\n    inner(event)\n",
		"  File \"" + appPy + "\", line 6, in inner\n    raise ValidationError(\"bad input: \" + event[\"why\"])\n",
	}
	if fmt.Sprintf("%q", e.Trace) != fmt.Sprintf("%q", want) {
		t.Errorf("stackTrace = %q\nwant         %q", e.Trace, want)
	}
	p.stderr.waitContains("[ERROR] ValidationError: bad input: nope\rTraceback (most recent call last):\r")
}

// checkNodeThrow: the trace is the error's stack, pointing into the
// handler's file, and the failure is logged as an "Invoke Error" record.
func checkNodeThrow(t *testing.T, p *proc, id string, out runtimeapi.Outcome) {
	e := p.decodeError(out.Payload)
	if len(e.Trace) < 2 || e.Trace[0] != "ValidationError: bad input: nope" || !strings.HasPrefix(strings.TrimSpace(e.Trace[1]), "at ") {
		t.Errorf("trace %q, want the message and stack frames", e.Trace)
	}
	if !strings.Contains(strings.Join(e.Trace, "\n"), filepath.Join(p.taskRoot, "app.js")) {
		t.Errorf("trace %q does not point into app.js", e.Trace)
	}
	p.stdout.waitContains("\t" + id + "\tERROR\tInvoke Error \t{\"errorType\":")
}

// wantTrace checks the error object's trace has n entries.
func wantTrace(n int) func(*testing.T, *proc, string, runtimeapi.Outcome) {
	return func(t *testing.T, p *proc, id string, out runtimeapi.Outcome) {
		if e := p.decodeError(out.Payload); len(e.Trace) != n {
			t.Errorf("trace %q, want %d entries", e.Trace, n)
		}
	}
}

// wantOneTraceEntry checks the error object's trace is one entry, which
// contains sub.
func wantOneTraceEntry(sub string) func(*testing.T, *proc, string, runtimeapi.Outcome) {
	return func(t *testing.T, p *proc, id string, out runtimeapi.Outcome) {
		if e := p.decodeError(out.Payload); len(e.Trace) != 1 || !strings.Contains(e.Trace[0], sub) {
			t.Errorf("trace %q, want one entry with %q", e.Trace, sub)
		}
	}
}

// wantTraceHead checks the error object's trace starts with head, then
// stack frames.
func wantTraceHead(head string) func(*testing.T, *proc, string, runtimeapi.Outcome) {
	return func(t *testing.T, p *proc, id string, out runtimeapi.Outcome) {
		e := p.decodeError(out.Payload)
		if len(e.Trace) < 2 || e.Trace[0] != head || !strings.HasPrefix(strings.TrimSpace(e.Trace[1]), "at ") {
			t.Errorf("trace %q, want %q and stack frames", e.Trace, head)
		}
	}
}

// contextPy and contextJS return the same view of the context object.
const contextPy = `
import os, sys, time

def handler(event, context):
    r1 = context.get_remaining_time_in_millis()
    time.sleep(0.02)
    r2 = context.get_remaining_time_in_millis()
    cc = context.client_context
    ident = context.identity
    return {
        "functionName": context.function_name,
        "functionVersion": context.function_version,
        "invokedFunctionArn": context.invoked_function_arn,
        "memoryLimitInMB": context.memory_limit_in_mb,
        "awsRequestId": context.aws_request_id,
        "logGroupName": context.log_group_name,
        "logStreamName": context.log_stream_name,
        "remaining": [r1, r2],
        "identity": None if ident is None else {
            "cognitoIdentityId": ident.cognito_identity_id,
            "cognitoIdentityPoolId": ident.cognito_identity_pool_id,
        },
        "clientContext": None if cc is None else {
            "custom": cc.custom,
            "env": cc.env,
            "installation_id": None if cc.client is None else cc.client.installation_id,
            "app_title": None if cc.client is None else cc.client.app_title,
        },
        "traceId": os.environ.get("_X_AMZN_TRACE_ID"),
        "sysPath": sys.path[:3],
    }
`

const contextJS = `
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const handler = async (event, context) => {
  const r1 = context.getRemainingTimeInMillis();
  await sleep(20);
  const r2 = context.getRemainingTimeInMillis();
  const cc = context.clientContext;
  return {
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    remaining: [r1, r2],
    identity: context.identity ?? null,
    clientContext: cc === undefined ? null : {
      custom: cc.custom, env: cc.env, installation_id: cc.client?.installation_id, app_title: cc.client?.app_title,
    },
    traceId: process.env._X_AMZN_TRACE_ID ?? null,
    waits: context.callbackWaitsForEmptyEventLoop,
    legacy: [typeof context.succeed, typeof context.fail, typeof context.done],
  };
};
`

// checkContext checks the context a handler of contextPy or contextJS saw:
// the fields named in fields (as JSON), and those every invocation has.
func checkContext(fields map[string]string) func(*testing.T, *proc, string, runtimeapi.Outcome) {
	return func(t *testing.T, p *proc, id string, out runtimeapi.Outcome) {
		got, _ := jsonValue(t, out.Payload).(map[string]any)
		for k, want := range fields {
			if !sameJSON(t, got[k], want) {
				t.Errorf("%s = %v, want %s", k, got[k], want)
			}
		}
		if got["awsRequestId"] != id {
			t.Errorf("awsRequestId = %v, want %s", got["awsRequestId"], id)
		}
		// Lambda's Python runtime has the memory size as an int, its
		// Node.js runtime as a string.
		if want := map[string]any{"python": float64(256), "node": "256"}[p.rt.name]; got["memoryLimitInMB"] != want {
			t.Errorf("memoryLimitInMB = %#v, want %#v", got["memoryLimitInMB"], want)
		}
		var r []float64
		if rs, ok := got["remaining"].([]any); ok && len(rs) == 2 {
			r0, _ := rs[0].(float64)
			r1, _ := rs[1].(float64)
			r = []float64{r0, r1}
		}
		if len(r) != 2 || r[0] <= 0 || r[1] <= 0 || r[1] >= r[0] || r[0] > waitLimit.Seconds()*1000 {
			t.Errorf("remaining times %v: want positive, decreasing, at most the timeout", got["remaining"])
		}
		switch p.rt.name {
		case "python":
			// sys.path starts with the task root, then the layers'.
			sp, _ := got["sysPath"].([]any)
			if len(sp) != 3 || sp[0] != p.taskRoot || !strings.HasPrefix(fmt.Sprint(sp[1]), "/opt/python/lib/python3.") ||
				!strings.HasSuffix(fmt.Sprint(sp[1]), "/site-packages") || sp[2] != "/opt/python" {
				t.Errorf("sys.path starts with %q", sp)
			}
		case "node":
			// Node's context also has the callback-era members.
			if !sameJSON(t, got["waits"], `true`) || !sameJSON(t, got["legacy"], `["function","function","function"]`) {
				t.Errorf("callbackWaitsForEmptyEventLoop %v, succeed/fail/done %v", got["waits"], got["legacy"])
			}
		}
	}
}

// counterPy and counterJS count their invocations in module state.
const counterPy = `
import os
count = 0

def handler(event, context):
    global count
    count += 1
    if event.get("fail"):
        raise KeyError("boom")
    return {"count": count, "pid": os.getpid(), "id": context.aws_request_id}
`

const counterJS = `
let count = 0;
exports.handler = async (event, context) => {
  count++;
  if (event.fail) throw new TypeError('boom');
  return { count, pid: process.pid, id: context.awsRequestId };
};
`

// warmReuseSteps invokes a counter n times, the fourth time failing: the
// module's state and the process outlive each invocation, failed or not.
func warmReuseSteps(n int) []step {
	var steps []step
	for i := 1; i <= n; i++ {
		if i == 4 {
			steps = append(steps, step{in: invocation{payload: `{"fail":true}`}, differs: map[string]want{
				"python": fails("KeyError", "'boom'"),
				"node":   fails("TypeError", "boom"),
			}})
			continue
		}
		steps = append(steps, step{in: invocation{payload: `{}`}, want: want{check: func(t *testing.T, p *proc, id string, out runtimeapi.Outcome) {
			got, _ := jsonValue(t, out.Payload).(map[string]any)
			if got["count"] != float64(i) || got["pid"] != float64(p.cmd.Process.Pid) || got["id"] != id {
				t.Errorf("invocation %d (%s): %v, want count %d in pid %d", i, id, got, i, p.cmd.Process.Pid)
			}
		}}})
	}
	return steps
}

// initFails is a case whose init fails: each runtime's code, and the
// error it must report.
func initFails(name string, python impl, pythonWant want, node impl, nodeWant want) conformanceCase {
	return conformanceCase{
		name:      name,
		code:      map[string]impl{"python": python, "node": node},
		initError: map[string]want{"python": pythonWant, "node": nodeWant},
	}
}

// initErrorCases are the ways a runtime's init fails.
var initErrorCases = []conformanceCase{
	initFails("module not found",
		impl{handler: "app.handler"}, fails("Runtime.ImportModuleError", "Unable to import module 'app': No module named 'app'"),
		impl{handler: "app.handler"}, fails("Runtime.ImportModuleError", "Error: Cannot find module 'app'…")),
	initFails("dependency not found",
		py("app.handler", "import owl_not_installed_xyz\n"),
		fails("Runtime.ImportModuleError", "Unable to import module 'app': No module named 'owl_not_installed_xyz'"),
		js("app.handler", "require('owl_not_installed_xyz'); exports.handler = async () => 1;\n"),
		fails("Runtime.ImportModuleError", "Error: Cannot find module 'owl_not_installed_xyz'…")),
	initFails("syntax error",
		py("app.handler", "def handler(event, context:\n    return 1\n"),
		want{errorType: "Runtime.UserCodeSyntaxError", message: "Syntax error in module 'app': …",
			check: wantOneTraceEntry(`app.py" Line 1`)}, // the file and line of the error
		js("app.handler", "exports.handler = async () => {\n"), fails("Runtime.UserCodeSyntaxError", "SyntaxError: …")),
	// Owl's Python runtime reports any exception at import as
	// Runtime.ImportModuleError (docs/runtimes.md), with the module's frame
	// as the trace; Node's, as Lambda's, reports the error thrown under its
	// own type.
	initFails("raises at import",
		py("app.handler", "x = 1\nraise RuntimeError('no config')\n"),
		want{errorType: "Runtime.ImportModuleError", message: "Unable to import module 'app': RuntimeError: no config",
			check: wantOneTraceEntry(`app.py", line 2, in <module>`)},
		js("app.handler", "throw new RangeError('no config');\n"), fails("RangeError", "no config")),
	initFails("handler not found",
		py("app.nope", "def handler(event, context):\n    return 1\n"), fails("Runtime.HandlerNotFound", "Handler 'nope' missing on module 'app'"),
		js("app.nope", "exports.handler = async () => 1;\n"), fails("Runtime.HandlerNotFound", "app.nope is undefined or not exported")),
	{
		name: "handler not a function",
		code: map[string]impl{"python": py("app.value", "value = 42\n"), "node": js("app.value", "exports.value = 42;\n")},
		initError: map[string]want{
			"node": fails("Runtime.HandlerNotFound", "app.value is not a function"),
		},
		// Owl's Python runtime, as Lambda's, only finds out when it calls
		// the handler; the Node.js runtime checks at init.
		steps: []step{{in: invocation{payload: `{}`}, want: fails("TypeError", "'int' object is not callable")}},
	},
	initFails("handler without a dot",
		py("app", ""), fails("Runtime.MalformedHandlerName", "Bad handler 'app': …"),
		js("app", "exports.handler = async () => 1;\n"), fails("Runtime.MalformedHandlerName", "Bad handler…")),
	initFails("handler with an empty function name",
		py("app.", ""), fails("Runtime.MalformedHandlerName", "Bad handler 'app.': …"),
		js("app.", ""), fails("Runtime.MalformedHandlerName", "Bad handler…")),
	initFails("empty handler",
		impl{handler: ""}, fails("Runtime.MalformedHandlerName", "Bad handler '': …"),
		impl{handler: ""}, fails("Runtime.MalformedHandlerName", "Bad handler…")),
	// Owl's Node.js runtime takes the empty segment as part of a module
	// path it then does not find.
	initFails("handler with an empty path segment",
		impl{files: map[string]string{"pkg/app.py": ""}, handler: "pkg//app.handler"},
		fails("Runtime.MalformedHandlerName", "Bad handler 'pkg//app.handler': …"),
		impl{files: map[string]string{"pkg/app.js": ""}, handler: "pkg//app.handler"},
		fails("Runtime.HandlerNotFound", "pkg//app.handler is undefined or not exported")),
	initFails("handler outside the task root",
		impl{handler: "../app.handler"}, fails("Runtime.MalformedHandlerName", "Bad handler '../app.handler': …"),
		impl{handler: "../app.handler"}, fails("Runtime.MalformedHandlerName", "'../app.handler' is not a valid handler name. Use absolute paths…")),
}

// helloExamples are the examples each runtime's benchmarks run.
var helloExamples = map[string]impl{
	"python": {example: "hello-python", handler: "app.handler"},
	"node":   {example: "hello-node", handler: "index.handler"},
}

// benchHello runs bench as a sub-benchmark for each runtime, with the
// options that start its hello example.
func benchHello(b *testing.B, bench func(b *testing.B, rt *runtimeUnderTest, o options)) {
	for _, rt := range allRuntimes {
		b.Run(rt.name, func(b *testing.B) {
			ex := helloExamples[rt.name]
			bench(b, rt, options{root: examplePath(b, ex.example), handler: ex.handler})
		})
	}
}

// BenchmarkWarmInvoke measures one warm invocation of the hello example:
// the Runtime API round trip plus the bootstrap's own work.
func BenchmarkWarmInvoke(b *testing.B) {
	benchHello(b, func(b *testing.B, rt *runtimeUnderTest, o options) {
		p := start(b, rt, o)
		p.ready()
		b.ResetTimer()
		for b.Loop() {
			var got struct{ Message string }
			p.invokeOK(invocation{payload: `{"name":"bench"}`}, &got)
		}
	})
}

// BenchmarkColdStart measures starting the interpreter and the bootstrap,
// loading the hello example and answering its first invocation.
func BenchmarkColdStart(b *testing.B) {
	benchHello(b, func(b *testing.B, rt *runtimeUnderTest, o options) {
		for b.Loop() {
			p := start(b, rt, o)
			var got struct{ Message string }
			p.invokeOK(invocation{payload: `{}`}, &got)
			p.srv.Close() // the runtime exits; its cleanup waits for it
		}
	})
}

// jsonLogCode logs at INFO and WARN, writes a plain line past the logger
// and fails when asked; jsonLogCases run it with LogFormat JSON and
// ApplicationLogLevel WARN (what Owl's worker sets for such a function).
var jsonLogCode = map[string]impl{
	"python": py("app.handler", "import logging\ndef handler(event, context):\n"+
		"    print('plain line')\n    logging.info('info line')\n"+
		"    logging.warning('warn line %s', 1, extra={'k': 'v'})\n"+
		"    if event.get('fail'):\n        raise ValueError('bad')\n"),
	"node": js("app.handler", "exports.handler = async (event) => {\n"+
		"  console.info('info line'); console.log('log line'); console.debug('debug line');\n"+
		"  console.warn('warn line', 1);\n  console.error(new TypeError('typed'));\n"+
		"  if (event.fail) throw new Error('bad');\n};\n"),
}

// jsonLines parses the lines of s that are JSON objects; the others are
// returned as they are.
func jsonLines(t *testing.T, s string) (objs []map[string]any, plain []string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if !strings.HasPrefix(l, "{") {
			plain = append(plain, l)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		objs = append(objs, m)
	}
	return objs, plain
}

// wantField fails t unless m[k] is v.
func wantField(t *testing.T, what string, m map[string]any, k string, v any) {
	t.Helper()
	if fmt.Sprint(m[k]) != fmt.Sprint(v) {
		t.Errorf("%s: %s = %v, want %v (%v)", what, k, m[k], v, m)
	}
}

// checkJSONLogs: exactly the WARN and ERROR records, as JSON with the
// request id, and the plain line as written; INFO and below are dropped.
func checkJSONLogs(t *testing.T, p *proc, id string, _ runtimeapi.Outcome) {
	if p.rt.name == "python" {
		objs, plain := jsonLines(t, p.stdout.waitContains("warn line"))
		if fmt.Sprint(plain) != "[plain line]" || len(objs) != 1 {
			t.Fatalf("stdout:\n%s", p.stdout)
		}
		for k, v := range map[string]any{"level": "WARNING", "message": "warn line 1", "logger": "root", "requestId": id, "k": "v"} {
			wantField(t, "warning record", objs[0], k, v)
		}
		if ts, _ := objs[0]["timestamp"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(ts) {
			t.Errorf("timestamp %q", ts)
		}
		return
	}
	objs, plain := jsonLines(t, p.stdout.waitContains("typed"))
	if len(plain) != 0 || len(objs) != 2 {
		t.Fatalf("stdout:\n%s", p.stdout)
	}
	for k, v := range map[string]any{"level": "WARN", "message": "warn line 1", "requestId": id} {
		wantField(t, "warn record", objs[0], k, v)
	}
	wantField(t, "error record", objs[1], "level", "ERROR")
	msg, _ := objs[1]["message"].(map[string]any)
	if msg["errorType"] != "TypeError" || msg["errorMessage"] != "typed" || msg["stackTrace"] == nil {
		t.Errorf("error record's message %v, want the error's fields", objs[1]["message"])
	}
}

// checkJSONError: the runtime logs the invocation's error as one JSON
// record (Python on stderr, Node.js as console.error's).
func checkJSONError(t *testing.T, p *proc, id string, _ runtimeapi.Outcome) {
	var rec map[string]any
	if p.rt.name == "python" {
		objs, _ := jsonLines(t, p.stderr.waitContains("ValueError"))
		rec = objs[len(objs)-1]
		wantField(t, "error", rec, "errorType", "ValueError")
		wantField(t, "error", rec, "errorMessage", "bad")
	} else {
		objs, _ := jsonLines(t, p.stdout.waitContains(`"errorMessage":"bad"`))
		rec = objs[len(objs)-1]
		msg, _ := rec["message"].(map[string]any)
		if msg["errorType"] != "Error" || msg["errorMessage"] != "bad" {
			t.Errorf("error record %v", rec)
		}
	}
	wantField(t, "error", rec, "level", "ERROR")
	wantField(t, "error", rec, "requestId", id)
}

func init() {
	conformanceCases = append(conformanceCases, conformanceCase{
		name: "log format JSON",
		code: jsonLogCode,
		env:  []string{"AWS_LAMBDA_LOG_FORMAT=JSON", "AWS_LAMBDA_LOG_LEVEL=WARN"},
		steps: []step{
			{in: invocation{payload: `{}`}, want: want{result: `null`, check: checkJSONLogs}},
			{in: invocation{payload: `{"fail":true}`}, want: want{errorType: "ValueError", message: "bad", check: checkJSONError},
				differs: map[string]want{"node": {errorType: "Error", message: "bad", check: checkJSONError}}},
		},
	})
}
