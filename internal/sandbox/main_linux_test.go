package sandbox

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	cgroups "github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"

	"github.com/owl-project/owl/internal/testkit"
)

func TestMain(m *testing.M) {
	// The test binary is re-executed as the in-sandbox init.
	MaybeRunInit()
	if arg := os.Getenv(crashHelperEnv); arg != "" {
		runCrashHelper(arg)
	}
	code := m.Run()
	testkit.RemoveBuilds()
	os.Exit(code)
}

// requireSandboxes skips tests that need real sandboxes where they cannot run.
func requireSandboxes(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testkit.Skip(t, "sandbox tests need root (namespaces, mounts, cgroups)")
	}
	if cgroups.Mode() == cgroups.Unavailable {
		testkit.Skip(t, "sandbox tests need cgroups (none mounted at /sys/fs/cgroup)")
	}
}

func randomName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), hex.EncodeToString(b))
}

// newTestManager returns a Manager on a fresh instance; at cleanup it is
// closed and nothing may be left: cgroups, mounts, goroutines.
func newTestManager(t testing.TB) *Manager {
	t.Helper()
	return newTestManagerWith(t, Config{})
}

// newTestManagerWith is newTestManager with cfg's other settings (Spares).
func newTestManagerWith(t testing.TB, cfg Config) *Manager {
	t.Helper()
	requireSandboxes(t)
	goroutines := runtime.NumGoroutine()
	cfg.Instance, cfg.RootDir, cfg.Logger = randomName("test"), t.TempDir(), testLogger(t)
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Manager.Close: %v", err)
		}
		for _, d := range m.cg.dirs {
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cgroup %s still exists after Close (err %v)", d, err)
			}
		}
		assertNoMounts(t, m.cfg.RootDir)
		waitFor(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= goroutines })
		if kids := children(); len(kids) > 0 {
			t.Errorf("child processes left (running or zombie): %v", kids)
		}
	})
	return m
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return nil
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// patience bounds every wait for something that should happen (a sandbox
// created, a line of output, an exit). It only decides how long a broken
// test takes to fail, so it is generous: the tests run on loaded 2-vCPU
// machines and in the cgroup v2 guest under qemu's CPU emulation (TCG),
// some 20 times slower than the host. Waits that check something does
// NOT happen keep their short windows.
const patience = 2 * time.Minute

// waitFor polls cond until it holds or patience runs out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, patience, what, cond)
}

// children lists the processes whose parent is the test process.
func children() []string {
	var kids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) {
			kids = append(kids, e.Name()+" "+s[:i+1]+" "+f[0])
		}
	}
	return kids
}

// assertNoMounts checks the host mount table mentions nothing of the sandboxes.
func assertNoMounts(t testing.TB, rootDir string) {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), rootDir) {
		t.Errorf("host mountinfo mentions %s:\n%s", rootDir, mi)
	}
}

// probeCodeDir returns a code dir (readable by the sandbox user) holding the
// probe program of testdata/probe, built once per test binary.
func probeCodeDir(t testing.TB) string {
	t.Helper()
	probePath, err := testkit.Build("./testdata/probe")
	if err != nil {
		testkit.Skipf(t, "cannot build the probe program: %v", err)
	}
	return testkit.CodeDir(t, probePath, "probe")
}

func testSpec(t testing.TB, codeDir string, args ...string) Spec {
	return Spec{
		ID:       randomName("sb"),
		CodeDir:  codeDir,
		Argv:     append([]string{"/var/task/probe"}, args...),
		Env:      []string{"PATH=/usr/bin:/bin", "OWL_TEST=1"},
		MemoryMB: 128,
		TmpMB:    64,
	}
}

func create(t testing.TB, m *Manager, spec Spec) *Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	sb, err := m.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { sb.Destroy() })
	return sb
}

// readOutput reads the sandbox output to EOF (every writer exited).
func readOutput(t testing.TB, sb *Sandbox) string {
	t.Helper()
	sb.Output().SetReadDeadline(time.Now().Add(patience))
	b, err := io.ReadAll(sb.Output())
	if err != nil {
		t.Fatalf("reading output: %v (got %q)", err, b)
	}
	return string(b)
}

// readLine reads one line of output with a deadline.
func readLine(t testing.TB, r *bufio.Reader, f *os.File) string {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(patience))
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading output line: %v (got %q)", err, line)
	}
	return strings.TrimSpace(line)
}

func waitDone(t testing.TB, sb *Sandbox) {
	t.Helper()
	select {
	case <-sb.Done():
	case <-time.After(patience):
		t.Fatalf("sandbox %s did not exit", sb.ID())
	}
}

// netnsInode returns the network namespace inode of pid.
func netnsInode(pid int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// netnsInUse reports whether any process still has the network namespace.
func netnsInUse(ino uint64) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Ino == ino {
			return true
		}
	}
	return false
}
