package runtimes_test

// What only Owl's Python runtime has (packages as handler modules, the
// json module's types, Lambda's Python log format, the bootstrap as an
// importable module); what both runtimes do is in conformance_test.go.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestPythonPackageHandler(t *testing.T) {
	p := start(t, pythonRuntime, options{
		files: map[string]string{
			"helper.py":       "PREFIX = 'from helper'\n",
			"pkg/__init__.py": "",
			"pkg/mod.py":      "from helper import PREFIX\nfrom . import sibling\n\ndef fn(event, context):\n    return [PREFIX, sibling.NAME, __name__]\n",
			"pkg/sibling.py":  "NAME = 'sibling'\n",
		},
		handler: "pkg/mod.fn",
	})
	p.ready()
	var got []string
	p.invokeOK(invocation{payload: `{}`}, &got)
	if want := []string{"from helper", "sibling", "pkg.mod"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pkg/mod.fn returned %q, want %q", got, want)
	}

	// A namespace package (no __init__.py), two levels down.
	p2 := start(t, pythonRuntime, options{
		files:   map[string]string{"ns/deeper/plain.py": "def go(event, context):\n    return __name__\n"},
		handler: "ns/deeper/plain.go",
	})
	p2.ready()
	var name string
	p2.invokeOK(invocation{payload: `{}`}, &name)
	if name != "ns.deeper.plain" {
		t.Errorf("ns/deeper/plain.go ran in module %q", name)
	}
}

const pyMarshalApp = `
import decimal

def handler(event, context):
    kind = event.get("kind")
    if kind == "decimal":
        return {"int": decimal.Decimal("3"), "frac": decimal.Decimal("1.5")}
    if kind == "unicode":
        return "h\u00e9llo \u2603"
    return None
`

// TestPythonMarshalling: results are encoded as Lambda's Python runtime
// does, to the byte (Decimal as a number, UTF-8 unescaped, ", " and ": ").
func TestPythonMarshalling(t *testing.T) {
	p := start(t, pythonRuntime, options{files: map[string]string{"app.py": pyMarshalApp}, handler: "app.handler"})
	p.ready()
	for _, tc := range []struct{ payload, want string }{
		{`{"kind":"decimal"}`, `{"int": 3, "frac": 1.5}`},
		{`{"kind":"unicode"}`, `"héllo ☃"`},
		{`{}`, `null`},
	} {
		_, out := p.invoke(invocation{payload: tc.payload})
		if out.IsError || string(out.Payload) != tc.want {
			t.Errorf("%s: outcome %+v (%s), want %s", tc.payload, out, out.Payload, tc.want)
		}
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

// TestPythonLogging: print, the root and child loggers and context.log,
// in Lambda's Python format, on stdout and nothing on stderr.
func TestPythonLogging(t *testing.T) {
	p := start(t, pythonRuntime, options{files: map[string]string{"app.py": pyLoggingApp}, handler: "app.handler"})
	p.ready()
	var n int
	id1 := p.invokeOK(invocation{payload: `{"n":1}`}, &n)
	id2 := p.invokeOK(invocation{payload: `{"n":2}`}, &n)

	want := []string{
		`\[INFO\]\t` + logTime + `\t\tinit line`,
		`print line 1`,
		`\[INFO\]\t` + logTime + `\t` + id1 + `\troot info 1`,
		`\[WARNING\]\t` + logTime + `\t` + id1 + `\tchild warning`,
		`context line`,
		`print line 2`,
		`\[INFO\]\t` + logTime + `\t` + id2 + `\troot info 2`,
		`\[WARNING\]\t` + logTime + `\t` + id2 + `\tchild warning`,
		`context line`,
	}
	wantLines(t, p.stdout.waitFor("9 lines", func(s string) bool { return strings.Count(s, "\n") >= len(want) }), want)
	if s := p.stderr.String(); s != "" {
		t.Errorf("stderr = %q, want nothing", s)
	}

	// AWS_LAMBDA_LOG_LEVEL=DEBUG lets the debug record through, in the
	// same format.
	p2 := start(t, pythonRuntime, options{files: map[string]string{"app.py": pyLoggingApp}, handler: "app.handler",
		env: []string{"AWS_LAMBDA_LOG_LEVEL=DEBUG"}})
	p2.ready()
	id := p2.invokeOK(invocation{payload: `{"n":3}`}, &n)
	p2.stdout.waitFor("the debug line", func(s string) bool {
		return regexp.MustCompile(`(?m)^\[DEBUG\]\t` + logTime + `\t` + id + `\tdebug line$`).MatchString(s)
	})
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
	p := start(t, pythonRuntime, options{
		files:   map[string]string{"app.py": counterPy},
		handler: "app.handler",
		argv:    []string{"-u", "-c", pyZygoteDriver, pythonRuntime.bootstrapPath(t)},
	})
	p.ready()
	for i := 1; i <= 2; i++ {
		var got struct{ Count, PID int }
		p.invokeOK(invocation{payload: `{}`}, &got)
		if got.Count != i || got.PID == p.cmd.Process.Pid {
			t.Errorf("invocation %d: %+v, want count %d in the forked child (the zygote is pid %d)", i, got, i, p.cmd.Process.Pid)
		}
	}
}
