package runtimes_test

// What only Owl's Node.js runtime has (module formats, callback and
// legacy handler styles, throwing values that are not errors, Lambda's
// Node.js log format, uncaught errors after a response); what both
// runtimes do is in conformance_test.go.

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodeRun starts the Node.js runtime on the files for handler.
func nodeRun(t *testing.T, files map[string]string, handler string, env ...string) *proc {
	t.Helper()
	return start(t, nodeRuntime, options{files: files, handler: handler, env: env})
}

// invokeJSON invokes with payload and requires success, returning the
// decoded result.
func (p *proc) invokeJSON(payload string) any {
	p.t.Helper()
	var v any
	p.invokeOK(invocation{payload: payload}, &v)
	return v
}

func TestNodeModuleFormats(t *testing.T) {
	layer := writeTree(t, map[string]string{
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
			p := nodeRun(t, c.files, c.handler, c.env...)
			wantResult(t, p.invokeJSON(`{}`), c.want)
		})
	}
}

const nodeStylesApp = `
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
`

// TestNodeHandlerStyles: callbacks, promises, plain values and the legacy
// context.succeed/fail/done, and what a handler leaves behind.
func TestNodeHandlerStyles(t *testing.T) {
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
			p := nodeRun(t, map[string]string{"app.js": nodeStylesApp}, "app."+c.handler)
			_, out := p.invoke(invocation{payload: `{"x":21}`})
			if c.want.errorType == "" {
				if out.IsError {
					t.Fatalf("failed: %s %s", out.ErrorType, out.Payload)
				}
				wantResult(t, jsonValue(t, out.Payload), c.want.result)
			} else {
				if !out.IsError || out.ErrorType != c.want.errorType {
					t.Fatalf("outcome %+v (%s), want error %s", out, out.Payload, c.want.errorType)
				}
				e := p.decodeError(out.Payload)
				if e.Type != c.want.errorType || !strings.HasPrefix(e.Message, c.want.message) {
					t.Errorf("error body %s, want %s: %s", out.Payload, c.want.errorType, c.want.message)
				}
			}
			if s := p.stdout.String(); c.want.stdout != "" && !strings.Contains(s, c.want.stdout) {
				t.Errorf("stdout lacks %q when the result arrived:\n%s", c.want.stdout, s)
			}
			// The runtime goes on serving after every kind of completion.
			_, out2 := p.invoke(invocation{payload: `{"x":1}`})
			if c.want.errorType == "" && out2.IsError {
				t.Errorf("second invocation failed: %s", out2.Payload)
			}
		})
	}
}

// TestNodeThrownValues: what JavaScript can throw besides an Error, and a
// synchronous throw, each logged as an "Invoke Error" record.
func TestNodeThrownValues(t *testing.T) {
	files := map[string]string{"app.js": `
exports.handler = async (event) => {
  switch (event.kind) {
    case 'string': throw 'plain string';
    case 'object': throw { code: 42 };
    case 'undefined': return Promise.reject(undefined);
    default: return 'fine';
  }
};
exports.sync = (event) => { throw new RangeError('sync boom'); };
`}
	p := nodeRun(t, files, "app.handler")
	for _, c := range []struct{ kind, errorType, message string }{
		{"string", "string", "plain string"},
		{"object", "object", "[object Object]"},
		{"undefined", "string", "handled"},
	} {
		id, out := p.invoke(invocation{payload: `{"kind":"` + c.kind + `"}`})
		if !out.IsError || out.ErrorType != c.errorType {
			t.Errorf("%s: outcome %+v (%s), want error %s", c.kind, out, out.Payload, c.errorType)
			continue
		}
		// A value that is not an Error has no stack: the trace is empty.
		if e := p.decodeError(out.Payload); e.Type != c.errorType || e.Message != c.message || len(e.Trace) != 0 {
			t.Errorf("%s: body %s, want %s: %s and no trace", c.kind, out.Payload, c.errorType, c.message)
		}
		if rec := "\t" + id + "\tERROR\tInvoke Error \t{\"errorType\":"; !strings.Contains(p.stdout.String(), rec) {
			t.Errorf("%s: stdout lacks %q", c.kind, rec)
		}
	}
	wantResult(t, p.invokeJSON(`{"kind":"none"}`), `"fine"`)

	q := nodeRun(t, files, "app.sync")
	_, out := q.invoke(invocation{payload: `{}`})
	e := q.decodeError(out.Payload)
	if out.ErrorType != "RangeError" || e.Type != "RangeError" || e.Message != "sync boom" || len(e.Trace) == 0 || e.Trace[0] != "RangeError: sync boom" {
		t.Errorf("sync throw: %+v %s", out, out.Payload)
	}
}

// TestNodeModuleInitErrors: init failures of ES modules, which Node.js
// loads and reports differently from CommonJS.
func TestNodeModuleInitErrors(t *testing.T) {
	for _, c := range []struct {
		name, code string
		want       want
	}{
		{"dependency not found", `import x from 'not-installed'; export const handler = async () => x;`,
			fails("Runtime.ImportModuleError", "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'not-installed' imported from …")},
		{"syntax error", "export const handler = ;\n",
			fails("Runtime.UserCodeSyntaxError", "SyntaxError: …")},
		{"top-level await never settles", "await new Promise(() => {});\nexport const handler = async () => 1;\n",
			fails("Runtime.NodeJsExit", "The event loop emptied…")},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			checkInitError(t, nodeRun(t, map[string]string{"app.mjs": c.code}, "app.handler"), c.want)
		})
	}
}

func TestNodeConsoleLogging(t *testing.T) {
	p := nodeRun(t, map[string]string{"app.js": `
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
`}, "app.handler")
	p.ready()
	before := time.Now().UTC().Add(-time.Second)
	id, out := p.invoke(invocation{payload: `{"name":"owl"}`})
	if out.IsError {
		t.Fatalf("failed: %s", out.Payload)
	}
	// Read at once: every record must already be in stdout when the
	// response has arrived.
	stdout := p.stdout.String()
	want := "TS\tundefined\tINFO\tloading\n" +
		"TS\t" + id + "\tINFO\thello owl\n" +
		"TS\t" + id + "\tINFO\tinfo 42\n" +
		"TS\t" + id + "\tWARN\twarn { a: 1 }\n" +
		"TS\t" + id + "\tERROR\terror shown\n" +
		"TS\t" + id + "\tDEBUG\tdebug\n" +
		"TS\t" + id + "\tTRACE\ttrace\n" +
		"TS\t" + id + "\tINFO\tmulti\nline\n" +
		"TS\t" + id + "\tINFO\t\n"
	if got := normalizeNodeLog(stdout); got != want {
		t.Errorf("stdout when the response arrived:\n%q\nwant\n%q", got, want)
	}
	for _, ts := range nodeTimestamps.FindAllString(stdout, -1) {
		tm, err := time.Parse("2006-01-02T15:04:05.000Z", strings.TrimSuffix(ts, "\t"))
		if err != nil || tm.Before(before.Add(-time.Minute)) || tm.After(time.Now().Add(time.Second)) {
			t.Errorf("record time %q: %v", ts, err)
		}
	}

	// The next invocation's records carry its own id.
	id2, _ := p.invoke(invocation{payload: `{"name":"again"}`})
	if s := p.stdout.String(); !strings.Contains(s, "\t"+id2+"\tINFO\thello again\n") {
		t.Errorf("second invocation's records lack its id %s:\n%s", id2, s)
	}
	if s := p.stderr.String(); s != "" {
		t.Errorf("stderr: %q", s)
	}
}

func TestNodeStdoutPipe(t *testing.T) {
	// Through a pipe (as in a sandbox): user writes queued on process.stdout
	// and the runtime's own records keep their order, and big records on a
	// non-blocking pipe arrive whole.
	w := newWatchedBuffer()
	p := start(t, nodeRuntime, options{files: map[string]string{"app.js": `
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
`}, handler: "app.handler", stdout: w})
	id, _ := p.invoke(invocation{payload: `{"step":1}`})
	var want strings.Builder
	want.WriteString(strings.Repeat(strings.Repeat("x", 1023)+"\n", 1024))
	for i := range 100 {
		fmt.Fprintf(&want, "TS\t%s\tINFO\tafter %d\n", id, i)
	}
	got := w.waitSuffix(t, "\tafter 99\n")
	if normalizeNodeLog(got) != want.String() {
		t.Errorf("step 1: stdout (%d bytes) is not the 1 MiB block followed by 100 records", len(got))
	}
	id2, _ := p.invoke(invocation{payload: `{"step":2}`})
	want.WriteString("TS\t" + id2 + "\tINFO\t" + strings.Repeat("y", 1<<20) + "\nTS\t" + id2 + "\tINFO\tend\n")
	got = w.waitSuffix(t, "\tINFO\tend\n")
	if normalizeNodeLog(got) != want.String() {
		t.Errorf("step 2: stdout (%d bytes) does not end with the 1 MiB record and 'end'", len(got))
	}
}

// TestNodeUncaughtErrors: an error nobody catches fails the invocation
// under way and ends the process, as in Lambda.
func TestNodeUncaughtErrors(t *testing.T) {
	files := map[string]string{"app.js": `
exports.uncaught = (event, context, callback) => { setTimeout(() => { throw new Error('async boom'); }, 1); };
exports.rejection = async () => {
  Promise.reject(new Error('nobody catches'));
  await new Promise((resolve) => setTimeout(resolve, 600000));
};
`}
	for _, c := range []struct {
		handler, errorType, message string
		exit                        int
	}{
		{"uncaught", "Error", "async boom", 129},
		{"rejection", "Runtime.UnhandledPromiseRejection", "Error: nobody catches", 128},
	} {
		t.Run(c.handler, func(t *testing.T) {
			t.Parallel()
			p := nodeRun(t, files, "app."+c.handler)
			_, out := p.invoke(invocation{payload: `{}`})
			e := p.decodeError(out.Payload)
			if !out.IsError || out.ErrorType != c.errorType || e.Message != c.message {
				t.Errorf("outcome %+v %s, want %s: %s", out, out.Payload, c.errorType, c.message)
			}
			if code := p.waitExit(); code != c.exit {
				t.Errorf("exit code %d, want %d", code, c.exit)
			}
		})
	}
}
