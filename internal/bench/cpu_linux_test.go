package bench

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/sandbox"
	"github.com/owl-project/owl/internal/testkit"
)

// burner is a running burnChild.
type burner struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startBurner(t *testing.T, d time.Duration) *burner {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envBurnChild+"="+d.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &burner{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return b
}

// burn has the burner burn and waits until it has.
func (b *burner) burn(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(b.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := b.out.ReadString('\n'); err != nil {
		t.Fatalf("the burner: %q, %v", line, err)
	}
}

// exit ends the burner and returns the CPU time the kernel says it used.
func (b *burner) exit(t *testing.T) time.Duration {
	t.Helper()
	b.stdin.Close()
	if err := b.cmd.Wait(); err != nil {
		t.Fatalf("the burner: %v", err)
	}
	return b.cmd.ProcessState.UserTime() + b.cmd.ProcessState.SystemTime()
}

// near reports whether got is want within a few clock ticks (/proc's
// unit; rusage is finer).
func near(got, want time.Duration) bool {
	return got >= want-3*clockTick && got <= want+3*clockTick
}

// TestProcCPU checks the server's CPU figure against a process of known
// CPU use: what /proc/<pid>/stat says it used is what its rusage says.
func TestProcCPU(t *testing.T) {
	b := startBurner(t, 300*time.Millisecond)
	before, ok := procCPU(b.cmd.Process.Pid)
	if !ok {
		t.Fatal("procCPU cannot read the burner")
	}
	b.burn(t)
	after, _ := procCPU(b.cmd.Process.Pid)
	used := b.exit(t)
	if used < 300*time.Millisecond || !near(after, used) || before > after {
		t.Errorf("procCPU: %v before and %v after burning; the kernel says %v", before, after, used)
	}
	if _, ok := procCPU(b.cmd.Process.Pid); ok {
		t.Error("procCPU read a process that is gone")
	}
}

// TestServerPID: the process serving a loopback endpoint is found by its
// listening socket; an endpoint elsewhere, or with no listener, has none.
func TestServerPID(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	if got := serverPID(srv.URL); got != os.Getpid() {
		t.Errorf("serverPID(%s) = %d, want this process, %d", srv.URL, got, os.Getpid())
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, endpoint := range []string{closed.URL, "http://192.0.2.1:8790", "::not a url"} {
		if got := serverPID(endpoint); got != 0 {
			t.Errorf("serverPID(%s) = %d, want 0", endpoint, got)
		}
	}
}

// TestFunctionsCPU checks the functions' CPU figure against a process of
// known CPU use in a cgroup under owl/: the cgroup's count grows by at
// least what it used (other Owl servers' sandboxes may add to it), and
// the per-process count, where the cgroup cannot say, by exactly that.
func TestFunctionsCPU(t *testing.T) {
	if os.Geteuid() != 0 {
		testkit.Skipf(t, "making a cgroup needs root")
	}
	dir, err := sandbox.CgroupsCPUDir()
	if err != nil {
		testkit.Skipf(t, "no cgroup to count CPU in: %v", err)
	}
	if _, err := os.Stat(dir); os.IsNotExist(err) { // Owl makes none here (v1, cpuacct apart from cpu)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(dir) })
	}
	cg := filepath.Join(dir, "bench-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cg) }) // after the burner's cleanup: an empty cgroup
	b := startBurner(t, 300*time.Millisecond)
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(b.cmd.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	cgBefore, err := sandbox.CgroupsCPU()
	if err != nil {
		t.Fatal(err)
	}
	procsBefore := procsCPU()
	b.burn(t)
	cgAfter, _ := sandbox.CgroupsCPU()
	procsAfter := procsCPU()
	pid := b.cmd.Process.Pid
	used := b.exit(t)
	if d := cgAfter - cgBefore; d < used-3*clockTick {
		t.Errorf("the owl cgroup's CPU grew by %v; the burner in it used %v", d, used)
	}
	if d := procsAfter.procs[pid] - procsBefore.procs[pid]; !near(d, used) {
		t.Errorf("the per-process count gave the burner %v; it used %v", d, used)
	}
}
