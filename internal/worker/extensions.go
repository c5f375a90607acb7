package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/runtimeapi"
	"github.com/owl-project/owl/internal/runtimes"
	"github.com/owl-project/owl/internal/sandbox"
	"github.com/owl-project/owl/internal/telemetry"
)

// Lambda extensions (docs/runtimes.md). External extensions are the
// executables of /opt/extensions (from layers): a shell started as the
// sandbox's entrypoint starts each in the background, then execs the
// runtime, which so stays pid 1 and the extensions run in the same
// sandbox and limits, with the function's environment and output. The
// Extensions and Telemetry APIs are runtimeapi's; this file decides what
// runs and tells the Runtime API server of the lifecycle.

const (
	// extensionsDir is where external extensions are, in the sandbox.
	extensionsDir = "/opt/extensions/"
	// extensionLauncher starts every executable of /opt/extensions, in
	// name order as Lambda does, then execs the runtime ("$@").
	extensionLauncher = `for x in ` + extensionsDir + `*; do if [ -f "$x" ] && [ -x "$x" ]; then "$x" & fi; done; exec "$@"`
	// shutdownBudget is how long extensions get for SHUTDOWN, as on Lambda.
	shutdownBudget = 2 * time.Second
	// execWrapperVar names the wrapper a managed runtime is started with.
	execWrapperVar = "AWS_LAMBDA_EXEC_WRAPPER"
)

// externalExtensions names the executables of optDir/extensions (the
// layers' merged /opt on the host), sorted.
func externalExtensions(optDir string) []string {
	if optDir == "" {
		return nil
	}
	entries, err := os.ReadDir(filepath.Join(optDir, "extensions"))
	if err != nil {
		return nil
	}
	var names []string
	for _, d := range entries {
		info, err := d.Info()
		if err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 {
			names = append(names, d.Name())
		}
	}
	return names
}

// wrapArgv is argv with the function's exec wrapper (managed runtimes
// only, as on Lambda) and, when there are external extensions, the
// launcher in front.
func wrapArgv(argv []string, fn registry.Function, rt runtimes.Runtime, extensions []string) []string {
	if wrapper := fn.Environment[execWrapperVar]; wrapper != "" && !rt.Provided() {
		argv = append([]string{wrapper}, argv...)
	}
	if len(extensions) > 0 {
		argv = append([]string{"/bin/sh", "-c", extensionLauncher, "owl-extensions"}, argv...)
	}
	return argv
}

// pidOf is the host pid of sb's runtime, or 0 when sb (a fake) has none.
func pidOf(sb Sandbox) int {
	if p, ok := sb.(interface{ Pid() int }); ok {
		return p.Pid()
	}
	return 0
}

// sandboxDialer connects to an address on the loopback of the sandbox
// whose runtime is pid, from a thread moved into its network namespace
// (the socket stays there).
func sandboxDialer(pid int) func(ctx context.Context, addr string) (net.Conn, error) {
	if pid <= 0 {
		return nil
	}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var c net.Conn
		err := sandbox.InNetnsAt("/proc/"+strconv.Itoa(pid)+"/ns/net", func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("dialing %s in the sandbox: %w", addr, err)
		}
		return c, nil
	}
}

// extensionAlive reports whether the sandbox whose runtime is pid still
// runs the external extension name: a child of the runtime (the launcher
// started it before exec'ing the runtime) whose argv[0] is its path. A
// process that exited has no command line, even as a zombie.
func extensionAlive(pid int) func(name string) bool {
	if pid <= 0 {
		return nil
	}
	return func(name string) bool {
		want := []byte(extensionsDir + name + "\x00")
		dir := "/proc/" + strconv.Itoa(pid) + "/task/"
		tasks, _ := os.ReadDir(dir)
		for _, t := range tasks {
			children, _ := os.ReadFile(dir + t.Name() + "/children")
			for _, child := range strings.Fields(string(children)) {
				cmdline, _ := os.ReadFile("/proc/" + child + "/cmdline")
				if bytes.HasPrefix(cmdline, want) {
					return true
				}
			}
		}
		return false
	}
}

// extensionInitFailure is the init failure an extension's error makes.
func extensionInitFailure(xe *runtimeapi.ExtensionError, fail *initFailed) {
	fail.errType = xe.Type
	fail.body = lambdaerr.ErrorBody(xe.Type, xe.Message)
}

// extensionResult is the answer of an invocation an extension failed.
func extensionResult(err error) (*Result, bool) {
	var xe *runtimeapi.ExtensionError
	if !errors.As(err, &xe) {
		return nil, false
	}
	return &Result{FunctionError: true, ErrorType: xe.Type, Payload: lambdaerr.ErrorBody(xe.Type, xe.Message)}, true
}

// initTimeoutMessage is the message of an init that timed out, naming
// the extensions that had not finished theirs.
func initTimeoutMessage(e *env) string {
	msg := fmt.Sprintf("Init timed out after %.2f seconds", initTimeout.Seconds())
	if pending := e.api.PendingExtensions(); len(pending) > 0 {
		msg += "; extensions not ready: " + strings.Join(pending, ", ")
	}
	return msg
}

// telemetryDone tells the environment's telemetry subscribers how the
// invocation went (function lines, platform.runtimeDone and .report).
func telemetryDone(e *env, lines []string, res *Result, rep telemetry.Report, timedOut bool) {
	status := "success"
	switch {
	case timedOut:
		status = "timeout"
	case res.FunctionError && strings.Contains(res.ErrorType, "."):
		status = "failure" // Runtime.*, Sandbox.*, Extension.*: the environment failed
	case res.FunctionError:
		status = "error"
	}
	e.api.TelemetryLines(runtimeapi.TelemetryFunction, lines)
	e.api.TelemetryInvokeDone(runtimeapi.InvokeReport{RequestID: rep.RequestID, Status: status, ErrorType: res.ErrorType,
		Duration: rep.Duration, InitDuration: rep.InitDuration, BilledMs: telemetry.Billed(rep.Duration, rep.InitDuration),
		MemorySizeMB: rep.MemoryMB, MaxMemoryUsed: rep.MaxMemoryMB})
}

// shutdownExtensions gives e's extensions SHUTDOWN and up to
// shutdownBudget before its sandbox is destroyed, and stores what they
// (or anything in the sandbox) wrote meanwhile in the function's log.
func (w *Worker) shutdownExtensions(e *env) {
	if !e.api.HasExtensions() {
		return
	}
	if err := e.thaw(); err != nil {
		return // it cannot run: it can only be destroyed
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	e.api.Shutdown(ctx, e.shutdownReason())
	cancel()
	lines, _ := e.logs.take()
	if len(lines) > 0 && w.logs != nil {
		w.logs.Append(e.key.name, telemetry.LogMeta{Version: e.key.version, Stream: lambdawire.LogFunction}, joinLines(lines))
	}
}

// endWith records why e ends, for its extensions' SHUTDOWN (spindown
// unless told otherwise).
func (e *env) endWith(reason string) { e.reason.Store(&reason) }

func (e *env) shutdownReason() string {
	if r := e.reason.Load(); r != nil {
		return *r
	}
	return runtimeapi.ShutdownSpindown
}

// initType is AWS_LAMBDA_INITIALIZATION_TYPE, also the telemetry's
// initializationType.
func initType(provisioned bool) string {
	if provisioned {
		return "provisioned-concurrency"
	}
	return "on-demand"
}
