package server_test

// The owl binary: `owl serve` as a real process (graceful SIGTERM, a
// crash and the restart after it) and the owl CLI end to end against it.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/worker"

	"github.com/owl-project/owl/internal/testkit"
)

// owlEnv is the environment of owl processes: the test's credentials and
// nothing from the developer's own Owl settings.
func owlEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OWL_") {
			env = append(env, kv)
		}
	}
	return append(append(env,
		"OWL_ACCESS_KEY_ID="+testKeyID,
		"OWL_SECRET_ACCESS_KEY="+testSecret,
		"OWL_TOKEN="+testToken,
	), extra...)
}

// owlCommand is the owl CLI running in the background, its output in out.
type owlCommand struct {
	cmd  *exec.Cmd
	out  *testkit.Buffer
	done chan struct{} // closed once it exited
	err  error         // how it exited, once done is closed
}

// startOwlCommand starts the owl CLI with args against endpoint, with no
// data dir of its own to fall back on; when the test ends it is killed
// if it still runs, and waited for.
func startOwlCommand(t *testing.T, endpoint string, args ...string) *owlCommand {
	t.Helper()
	c := &owlCommand{cmd: exec.Command(owlBinary, args...), out: &testkit.Buffer{}, done: make(chan struct{})}
	c.cmd.Env = owlEnv("OWL_ENDPOINT="+endpoint, "OWL_DATA="+filepath.Join(t.TempDir(), "none"))
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting owl %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
	return c
}

// owlProcess is `owl serve` running as a child process.
type owlProcess struct {
	*testServer // Server is nil: only the HTTP helpers are used
	cmd         *exec.Cmd
	stderr      *testkit.Buffer
	exited      chan struct{}
	waitErr     error  // valid once exited is closed
	readyErr    error  // set by waitReadyNoFatal
	ready       string // the path that answers 200 once it serves (empty: account settings)
}

// startOwl starts `owl serve` on dataDir and waits until it answers.
func startOwl(t *testing.T, dataDir string, extraEnv ...string) *owlProcess {
	t.Helper()
	return startOwlWith(t, dataDir, "/2016-08-19/account-settings", nil, extraEnv...)
}

// startOwlWith starts `owl serve` on dataDir with the extra args and
// waits until GET ready answers 200 with the test's token.
func startOwlWith(t testing.TB, dataDir, ready string, args []string, extraEnv ...string) *owlProcess {
	t.Helper()
	p := launchOwl(t, dataDir, owlEnv(extraEnv...), args...)
	p.ready = ready
	p.waitReady(t, 30*time.Second)
	return p
}

// launchOwl starts `owl serve` on dataDir with env and args on a free
// API address, without waiting for it (the nodes of a cluster wait for
// each other). When the test ends it is stopped with SIGTERM, killed if
// it has not exited 30 s later, and waited for.
func launchOwl(t testing.TB, dataDir string, env []string, args ...string) *owlProcess {
	t.Helper()
	requireRoot(t)
	build(t)
	addr := testkit.FreeAddr(t)
	p := &owlProcess{
		testServer: &testServer{t: t, dataDir: dataDir, URL: "http://" + addr},
		stderr:     &testkit.Buffer{},
		exited:     make(chan struct{}),
	}
	p.cmd = exec.Command(owlBinary, append([]string{"serve", "--addr", addr, "--data", dataDir, "--shutdown-timeout", "20s"}, args...)...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting owl serve: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		// A test that failed half-way still stops its server cleanly.
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitReady waits up to timeout until the server answers an
// authenticated request; it fails the test if the server exits first.
func (p *owlProcess) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	if p.waitReadyNoFatal(timeout); p.readyErr != nil {
		t.Fatalf("owl serve: %v\n%s", p.readyErr, p.stderr.String())
	}
}

// waitReadyNoFatal is waitReady for other goroutines than the test's: it
// sets readyErr instead of failing the test.
func (p *owlProcess) waitReadyNoFatal(timeout time.Duration) {
	var exited error
	p.readyErr = testkit.Poll(timeout, func() error {
		select {
		case <-p.exited:
			exited = fmt.Errorf("exited at start: %v", p.waitErr)
			return nil // nothing more to wait for
		default:
		}
		ready := cmp.Or(p.ready, "/2016-08-19/account-settings")
		req, _ := http.NewRequest(http.MethodGet, p.URL+ready, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		// A node still starting has its listener open and serves nothing
		// yet: ask again rather than wait on it.
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d", ready, resp.StatusCode)
		}
		return nil
	})
	if exited != nil {
		p.readyErr = exited
	}
}

// sigterm asks owl serve to stop, as a service manager does.
func (p *owlProcess) sigterm(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// wantCleanStop checks how owl serve ends after sigterm: exit status 0
// within 30 s, and nothing of it left behind (checkNothingLeft).
func (p *owlProcess) wantCleanStop(t testing.TB) {
	t.Helper()
	if code := p.waitExit(t, 30*time.Second); code != 0 {
		t.Errorf("owl serve exited %d after SIGTERM\n%s", code, p.stderr.String())
	}
	checkNothingLeft(t, p.dataDir)
}

// waitExit waits for the process to exit and returns its exit code.
func (p *owlProcess) waitExit(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("owl serve still running %v after the signal\n%s", timeout, p.stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case p.waitErr == nil:
		return 0
	case errors.As(p.waitErr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	t.Fatalf("waiting for owl serve: %v", p.waitErr)
	return 0
}

// owlCLI runs an owl client command against endpoint.
func owlCLI(t *testing.T, endpoint string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(owlBinary, args...)
	// OWL_DATA points nowhere: the token must come from OWL_TOKEN.
	cmd.Env = owlEnv("OWL_ENDPOINT="+endpoint, "OWL_DATA="+filepath.Join(t.TempDir(), "none"))
	return runCmd(t, cmd)
}

// functionDir is a directory holding the kitchensink as bootstrap.
func functionDir(t *testing.T) string {
	t.Helper()
	return testkit.CodeDir(t, kitchenBin, "bootstrap")
}

// inFlight waits until an invocation of function name that wrote marker
// (the sleep action's path) is running in one of its sandboxes.
func inFlight(t testing.TB, dataDir, name, marker string) {
	t.Helper()
	inst := instanceOf(t, dataDir)
	// Generous: a cold start on a loaded 2-vCPU machine is slow.
	eventually(t, time.Minute, func() error {
		// A Python or Node.js function may run in a pre-warmed
		// environment, whose cgroup and environment name no function: the
		// marker is the test's own, so any of them may hold it.
		candidates := functionProcesses(inst, name)
		for pid, p := range sandboxProcessCgroups(inst) {
			if strings.HasPrefix(p.cgroup, "prewarm-") {
				candidates[pid] = p.comm
			}
		}
		for pid := range candidates {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/root%s", pid, marker)); err == nil {
				return nil
			}
		}
		return fmt.Errorf("no sandbox of %s has written %s yet", name, marker)
	})
}

func TestOwlServeAndCLI(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	p := startOwl(t, dataDir)
	dir := functionDir(t)
	owl := func(args ...string) (string, string, int) { return owlCLI(t, p.URL, args...) }

	stdout, stderr, code := owl("deploy", dir, "--name", "x", "--runtime", "provided.al2023")
	if code != 0 || !strings.HasPrefix(stdout, "created x: runtime provided.al2023, code ") || !strings.Contains(stdout, "state Active") {
		t.Fatalf("owl deploy: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = owl("invoke", "x", "--data", `{"name":"cli"}`)
	if code != 0 || stdout != "{\"message\":\"hello cli\"}\n" {
		t.Errorf("owl invoke: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = owl("invoke", "x", "--data", `{"action":"error"}`)
	if code != 1 || stdout != "" || !strings.Contains(stderr, `"errorMessage":"something went wrong"`) {
		t.Errorf("owl invoke of a failing function: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = owl("ls")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "x ") ||
		!strings.Contains(lines[1], "provided.al2023") || !strings.Contains(lines[1], "128 MB") {
		t.Errorf("owl ls: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = owl("get", "x")
	var got struct {
		Configuration struct{ FunctionName, State string }
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil || got.Configuration.FunctionName != "x" || got.Configuration.State != "Active" {
		t.Errorf("owl get: exit %d\n%s\n%s", code, stdout, stderr)
	}
	eventually(t, 10*time.Second, func() error {
		stdout, stderr, code = owl("logs", "x")
		if code != 0 || countStarts(stdout) != 2 || strings.Count(stdout, "\nREPORT RequestId: ") != 2 {
			return fmt.Errorf("owl logs: exit %d, want 2 START and 2 REPORT lines:\n%s\n%s", code, stdout, stderr)
		}
		return nil
	})
	stdout, stderr, code = owl("rm", "x")
	if code != 0 || stdout != "deleted x\n" {
		t.Errorf("owl rm: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = owl("invoke", "x")
	if code != 1 || stdout != "" || stderr != "owl: function \"x\" not found\n" {
		t.Errorf("owl invoke of a deleted function: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// SIGTERM while an invocation runs: it completes, then owl exits 0.
	stdout, stderr, code = owl("deploy", dir, "--name", "slow", "--runtime", "provided.al2023", "--timeout", "10")
	if code != 0 {
		t.Fatalf("owl deploy slow: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if r := p.invoke("slow", `{}`); r.funcErr != "" {
		t.Fatalf("warming slow: %s", r.payload)
	}
	type answer struct {
		status int
		body   string
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, p.URL+"/2015-03-31/functions/slow/invocations",
			strings.NewReader(`{"action":"sleep","ms":2000,"path":"/tmp/in-flight"}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(resp.Body)
		done <- answer{status: resp.StatusCode, body: b.String(), err: err}
	}()
	inFlight(t, dataDir, "slow", "/tmp/in-flight")
	p.sigterm(t)
	a := <-done
	if a.err != nil || a.status != http.StatusOK || a.body != `{"slept":"2000"}` {
		t.Errorf("the invocation in flight at SIGTERM: %d %q %v", a.status, a.body, a.err)
	}
	p.wantCleanStop(t)

	stdout, stderr, code = owl("ls")
	if code != 1 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "owl: cannot reach Owl at "+p.URL) {
		t.Errorf("owl ls with the server down: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestOwlServeCrash(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	inst := instanceOf(t, dataDir)
	t.Cleanup(func() {
		// If the test stops half-way, the crashed run's mounts stay (a
		// restart would remove them); they would keep TempDir's removal
		// from working.
		mps := mountsUnder(t, dataDir)
		for i := len(mps) - 1; i >= 0; i-- {
			if f := strings.Fields(mps[i]); len(f) > 4 {
				_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
			}
		}
	})
	// Never frozen: on cgroup v1 a frozen process does not die of the
	// parent-death SIGKILL until thawed (CleanupStale at the restart kills
	// it), and this test checks that the processes die with Owl.
	p := startOwl(t, dataDir, "OWL_FREEZE_AFTER=0")
	p.createKitchensink("survivor")
	if r := p.invoke("survivor", `{"name":"before"}`); r.payload != `{"message":"hello before"}` {
		t.Fatalf("invoke before the crash: %+v", r)
	}
	// The pre-warmed environments are up too: their slots are mounted.
	slots := filepath.Join(dataDir, "sandboxes", "slots")
	eventually(t, 20*time.Second, func() error {
		if len(worker.PrewarmRuntimes()) > 0 && len(mountsUnder(t, slots)) == 0 {
			return fmt.Errorf("no pre-warmed environment's slots mounted under %s", slots)
		}
		return nil
	})
	// And one was specialised: its function's code is mounted on a slot.
	// The runtime's spare may still be starting (slots exist before its
	// interpreter is ready; on a loaded machine that takes a while): a
	// function that ran elsewhere is deleted and another one tried.
	if rts := worker.PrewarmRuntimes(); len(rts) > 0 {
		specialised := false
		for i := range 20 {
			name := fmt.Sprintf("survivor-pw%d", i)
			p.createPrewarmFunction(name, prewarmRuntimes(t)[0], 128, 512, nil)
			if out := p.invokePrewarm(name); strings.HasPrefix(out.cgroupName(), "prewarm-") {
				specialised = true
				break
			}
			if resp, body := p.do("DELETE", "/2015-03-31/functions/"+name, nil, nil); resp.StatusCode != 204 {
				t.Fatalf("deleting %s: %d %s", name, resp.StatusCode, body)
			}
			time.Sleep(time.Second)
		}
		if !specialised {
			t.Errorf("no interpreted function ran in a pre-warmed environment in 20 tries")
		}
	}
	var sandboxes []string
	var procs map[int]string
	eventually(t, 20*time.Second, func() error {
		sandboxes, procs = sandboxCgroupNames(t, inst), sandboxProcesses(inst)
		if len(sandboxes) != 1 || len(procs) == 0 {
			return fmt.Errorf("before the crash: sandboxes %v, processes %v; want one warm sandbox", sandboxes, procs)
		}
		return nil
	})

	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if code := p.waitExit(t, 10*time.Second); code != -int(syscall.SIGKILL) {
		t.Fatalf("owl serve after kill -9: exit %d", code)
	}
	// What a crash leaves: the sandboxes' cgroups, which nobody removed.
	// Their processes die with Owl: the sandbox init arms a parent-death
	// SIGKILL (internal/sandbox/doc.go).
	t.Logf("right after the crash: cgroups %v, processes %v", instanceCgroups(t, inst), sandboxProcesses(inst))
	eventually(t, 5*time.Second, func() error {
		if left := sandboxProcesses(inst); len(left) > 0 {
			return fmt.Errorf("sandbox processes outlive the crashed owl: %v", left)
		}
		return nil
	})
	stale := sandboxCgroupNames(t, inst)
	t.Logf("stale sandbox cgroups for the restart to remove: %v", stale)

	p = startOwl(t, dataDir, "OWL_FREEZE_AFTER=0")
	for pid, p := range sandboxProcessCgroups(inst) {
		// The new run's pre-warmed environments may be up already; the
		// crashed run's died with it (checked above).
		if !strings.HasPrefix(p.cgroup, "prewarm-") {
			t.Errorf("processes of the crashed run alive after the restart: %d %v", pid, p)
		}
	}
	if left := sandboxCgroupNames(t, inst); len(left) > 0 {
		t.Errorf("sandbox cgroups of the crashed run still there after the restart: %v", left)
	}
	if r := p.invoke("survivor", `{"name":"after"}`); r.funcErr != "" || r.payload != `{"message":"hello after"}` {
		t.Errorf("invoke after the crash and restart: %+v", r)
	}
	p.sigterm(t)
	p.wantCleanStop(t)
}
