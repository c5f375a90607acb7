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
	// name order as Lambda does, each under a relay ($0:
	// extensionRelay), then execs the runtime ("$@").
	extensionLauncher = `for x in ` + extensionsDir + `*; do if [ -f "$x" ] && [ -x "$x" ]; then ` +
		`/bin/sh -c "$0" owl-relay "$x" & fi; done; exec "$@"`
	// extensionRelay runs the extension $1 and writes each line of its
	// output marked (extensionMarker); it exits after its last line.
	extensionRelay = `"$1" 2>&1 | while IFS= read -r l || [ -n "$l" ]; do printf '\036%s\n' "$l"; done`
	// extensionMarker starts each line an external extension writes (the
	// launcher's printf '\036'): the log capture strips it and tells the
	// Telemetry API's extension lines from the function's.
	extensionMarker = '\x1e'
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
		argv = append([]string{"/bin/sh", "-c", extensionLauncher, extensionRelay}, argv...)
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
// runs the external extension name: a descendant of the runtime (the
// launcher started it, under a subshell, before exec'ing the runtime)
// whose argv[0] is its path. A process that exited has no command line,
// even as a zombie.
func extensionAlive(pid int) func(name string) bool {
	if pid <= 0 {
		return nil
	}
	return func(name string) bool { return runsDescendant(pid, []byte(extensionsDir+name+"\x00")) }
}

// extensionExited reports whether the external extension name of the
// sandbox whose runtime is pid has exited for good: neither it nor its
// relay runs, and no fork of the launcher is still to become a relay
// (the launcher forks them all before it execs the runtime).
func extensionExited(pid int) func(name string) bool {
	if pid <= 0 {
		return nil
	}
	launcher := []byte("/bin/sh\x00-c\x00" + extensionLauncher + "\x00")
	return func(name string) bool {
		return !runsDescendant(pid, relayArgv(name)) && !runsDescendant(pid, []byte(extensionsDir+name+"\x00")) &&
			!runsDescendant(pid, launcher)
	}
}

// relayArgv is how the relay of extension name shows in /proc/PID/cmdline.
func relayArgv(name string) []byte {
	return []byte("/bin/sh\x00-c\x00" + extensionRelay + "\x00owl-relay\x00" + extensionsDir + name + "\x00")
}

// runsDescendant reports whether a descendant of pid (at most 256 are
// looked at) has a command line starting with prefix.
func runsDescendant(pid int, prefix []byte) bool {
	queue := []string{strconv.Itoa(pid)}
	for n := 0; n < len(queue) && n < 256; n++ {
		p := queue[n]
		if n > 0 {
			if cmdline, _ := os.ReadFile("/proc/" + p + "/cmdline"); bytes.HasPrefix(cmdline, prefix) {
				return true
			}
		}
		tasks, _ := os.ReadDir("/proc/" + p + "/task")
		for _, t := range tasks {
			children, _ := os.ReadFile("/proc/" + p + "/task/" + t.Name() + "/children")
			queue = append(queue, strings.Fields(string(children))...)
		}
	}
	return false
}

// awaitRelays waits, for each of the extensions that exited, until its
// relay is gone too — it exits once the extension's last line is in the
// output pipe — or ctx ends. Those still running are not waited for.
func awaitRelays(ctx context.Context, pid int, names []string) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for _, name := range names {
		if runsDescendant(pid, []byte(extensionsDir+name+"\x00")) {
			continue
		}
		for runsDescendant(pid, relayArgv(name)) {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}
}

// telemetryLines sends an invocation's lines to telemetry subscribers
// as function and extension events, in their order; ext are the
// extensions' among them, in order (logCapture.takeSplit).
func telemetryLines(e *env, lines, ext []string) {
	category := func(fromExt bool) string {
		if fromExt {
			return runtimeapi.TelemetryExtension
		}
		return runtimeapi.TelemetryFunction
	}
	start, startExt, j := 0, false, 0
	for i, l := range lines {
		isExt := j < len(ext) && l == ext[j]
		if isExt {
			j++
		}
		if i == start {
			startExt = isExt
		} else if isExt != startExt {
			e.api.TelemetryLines(category(startExt), lines[start:i])
			start, startExt = i, isExt
		}
	}
	if start < len(lines) {
		e.api.TelemetryLines(category(startExt), lines[start:])
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
func telemetryDone(e *env, lines, ext []string, res *Result, rep telemetry.Report, timedOut bool) {
	status := "success"
	switch {
	case timedOut:
		status = "timeout"
	case res.FunctionError && strings.Contains(res.ErrorType, "."):
		status = "failure" // Runtime.*, Sandbox.*, Extension.*: the environment failed
	case res.FunctionError:
		status = "error"
	}
	telemetryLines(e, lines, ext)
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
	if pid := pidOf(e.sb); pid > 0 {
		awaitRelays(ctx, pid, e.external) // their last lines, SHUTDOWN's included, go to the log
	}
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
