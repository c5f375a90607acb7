package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/owl-project/owl/internal/sandbox/probereport"
	"github.com/owl-project/owl/internal/testkit"
)

// Facts and Hardening are what testdata/probe reports.
type (
	Facts     = probereport.Facts
	Hardening = probereport.Hardening
)

func TestIsolation(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)

	// A host listener the sandbox must not reach.
	hostLn := testkit.Listen(t)
	go func() {
		for {
			c, err := hostLn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	spec := testSpec(t, code, "facts")
	spec.Env = []string{"PATH=/usr/bin:/bin", "HOST_ADDR=" + hostLn.Addr().String(), "EMPTY="}
	sb := create(t, m, spec)
	var f Facts
	out := readOutput(t, sb)
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("decoding probe output: %v\n%s", err, out)
	}
	waitDone(t, sb)
	if err := sb.ExitError(); err != nil {
		t.Errorf("probe exit: %v", err)
	}

	t.Run("identity", func(t *testing.T) {
		if f.UID != DefaultUID || f.EUID != DefaultUID || f.GID != DefaultGID || f.EGID != DefaultGID {
			t.Errorf("uid/gid %d/%d euid/egid %d/%d, want %d:%d", f.UID, f.GID, f.EUID, f.EGID, DefaultUID, DefaultGID)
		}
		if len(f.Groups) != 0 {
			t.Errorf("supplementary groups %v, want none", f.Groups)
		}
		if f.CapEff != "0000000000000000" {
			t.Errorf("effective capabilities %s, want none", f.CapEff)
		}
		if f.Hostname != Hostname {
			t.Errorf("hostname %q, want %q", f.Hostname, Hostname)
		}
		if f.Cwd != "/var/task" {
			t.Errorf("cwd %q, want /var/task", f.Cwd)
		}
		if !slices.Equal(f.Env, spec.Env) {
			t.Errorf("env %q, want exactly %q", f.Env, spec.Env)
		}
	})
	t.Run("pid namespace", func(t *testing.T) {
		if f.Pid != 1 || f.PPid != 0 {
			t.Errorf("pid %d ppid %d, want 1 and 0", f.Pid, f.PPid)
		}
		if !slices.Equal(f.Procs, []int{1}) {
			t.Errorf("/proc shows pids %v, want only [1]", f.Procs)
		}
	})
	t.Run("filesystem", func(t *testing.T) {
		for _, dir := range []string{"/", "/usr", "/etc", "/var/task", "/opt", "/dev"} {
			if e := f.WriteErrs[dir]; !strings.Contains(e, "read-only file system") && !strings.Contains(e, "permission denied") {
				t.Errorf("writing in %s: %q, want EROFS or EACCES", dir, e)
			}
		}
		for _, dir := range []string{"/", "/usr", "/etc", "/var/task"} {
			if e := f.WriteErrs[dir]; !strings.Contains(e, "read-only file system") {
				t.Errorf("writing in %s: %q, want EROFS", dir, e)
			}
		}
		for _, dir := range []string{"/tmp", "/dev/shm"} {
			if e := f.WriteErrs[dir]; e != "" {
				t.Errorf("writing in %s: %s", dir, e)
			}
		}
		checkTmp(t, f, spec.TmpMB)
		if f.DevNull != "" || f.Urandom != "" {
			t.Errorf("/dev/null: %q, /dev/urandom: %q", f.DevNull, f.Urandom)
		}
		for _, want := range []string{"usr", "etc", "var", "tmp", "proc", "dev", "opt"} {
			if !slices.Contains(f.RootEntries, want) {
				t.Errorf("/ lacks %s: %v", want, f.RootEntries)
			}
		}
		for _, e := range f.RootEntries {
			if strings.HasPrefix(e, "root") || strings.HasPrefix(e, "home") || strings.HasPrefix(e, "work") {
				t.Errorf("/ shows host directory %s", e)
			}
		}
		for _, mp := range f.Mountpoints {
			if strings.Contains(mp, m.cfg.RootDir) || strings.Contains(mp, code) {
				t.Errorf("sandbox mount table shows host path: %s", mp)
			}
		}
		// Only stdin (/dev/null), stdout and stderr (the output pipe) are
		// inherited; above 2 are only the probe's own directory listing and
		// Go runtime fds (eventpoll, eventfd).
		for _, fd := range f.FDs {
			num, target, _ := strings.Cut(fd, "->")
			if n, _ := strconv.Atoi(num); n > 2 && (strings.HasPrefix(target, "socket:") || strings.HasPrefix(target, "pipe:") || strings.HasPrefix(target, "/")) {
				t.Errorf("fd %s leaked into the entrypoint (all: %v)", fd, f.FDs)
			}
		}
		if len(f.FDs) < 3 || f.FDs[0] != "0->/dev/null" || !strings.HasPrefix(f.FDs[1], "1->pipe:") || f.FDs[2] != strings.Replace(f.FDs[1], "1->", "2->", 1) {
			t.Errorf("stdio fds %v, want /dev/null and one pipe for stdout and stderr", f.FDs)
		}
	})
	t.Run("network", func(t *testing.T) {
		if !slices.Equal(f.Interfaces, []string{"lo"}) || !f.LoUp {
			t.Errorf("interfaces %v (lo up %v), want only lo, up", f.Interfaces, f.LoUp)
		}
		if f.HostDial == "" {
			t.Errorf("the sandbox reached the host listener %s", hostLn.Addr())
		}
	})
	assertNoMounts(t, m.cfg.RootDir)
}

// TestRuntimeAPIListener runs two sandboxes at once: each listener, on the
// same 127.0.0.1:9001, gets only its own sandbox's connection.
func TestRuntimeAPIListener(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	sbs := make([]*Sandbox, 2)
	for i := range sbs {
		sbs[i] = create(t, m, testSpec(t, code, "connect", DefaultRuntimeAPIAddr, fmt.Sprintf("hello-%d", i)))
	}
	for i, sb := range sbs {
		if got := sb.Listener().Addr().String(); got != DefaultRuntimeAPIAddr {
			t.Errorf("listener address %s, want %s", got, DefaultRuntimeAPIAddr)
		}
		sb.Listener().(*net.TCPListener).SetDeadline(time.Now().Add(patience))
		c, err := sb.Listener().Accept()
		if err != nil {
			t.Fatalf("sandbox %d: accept: %v", i, err)
		}
		buf := make([]byte, 32)
		c.SetDeadline(time.Now().Add(patience))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(buf[:n]), fmt.Sprintf("hello-%d", i); got != want {
			t.Errorf("sandbox %d: listener got %q, want %q", i, got, want)
		}
		c.Write([]byte("ok"))
		c.Close()
		if out := readOutput(t, sb); strings.TrimSpace(out) != "reply ok" {
			t.Errorf("sandbox %d output %q", i, out)
		}
		waitDone(t, sb)
		if err := sb.ExitError(); err != nil {
			t.Errorf("sandbox %d: %v", i, err)
		}
	}

	// The host cannot reach a sandbox listener.
	sb := create(t, m, testSpec(t, code, "sleep"))
	if c, err := net.DialTimeout("tcp", DefaultRuntimeAPIAddr, time.Second); err == nil {
		c.Close() // something of the host's own listens there; it is not ours:
		sb.Listener().(*net.TCPListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
		if c, err := sb.Listener().Accept(); err == nil {
			c.Close()
			t.Error("a host connection reached the sandbox listener")
		}
	}
}

func TestExitStatusAndOutput(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	sb := create(t, m, testSpec(t, code, "exit", "3"))
	out := readOutput(t, sb)
	waitDone(t, sb)
	if out != "exiting with 3\n" {
		t.Errorf("output %q, want the stderr line", out)
	}
	var ee *exec.ExitError
	if err := sb.ExitError(); !errors.As(err, &ee) || err.Error() != "exit status 3" {
		t.Errorf("ExitError %v, want exit status 3", err)
	}
	if sb.OOMKilled() {
		t.Error("OOMKilled after a normal exit")
	}
	if v, err := sb.MaxMemoryBytes(); err != nil || v == 0 {
		t.Errorf("MaxMemoryBytes = %d, %v; want > 0", v, err)
	}
}

func TestMemoryLimit(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	spec := testSpec(t, code, "alloc", "256")
	spec.MemoryMB = 48
	sb := create(t, m, spec)
	out := readOutput(t, sb)
	waitDone(t, sb)
	if err := sb.ExitError(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("ExitError %v (output %q), want signal: killed", err, out)
	}
	if !sb.OOMKilled() {
		t.Error("OOMKilled false after exceeding the memory limit")
	}
	peak, err := sb.MaxMemoryBytes()
	if err != nil {
		t.Fatal(err)
	}
	if limit := uint64(spec.MemoryMB) << 20; peak < limit/2 || peak > limit {
		t.Errorf("peak memory %d, want close to the %d limit", peak, limit)
	}

	// Within the limit it runs to completion.
	spec = testSpec(t, code, "alloc", "16")
	spec.MemoryMB = 128
	sb = create(t, m, spec)
	out = readOutput(t, sb)
	waitDone(t, sb)
	if sb.ExitError() != nil || sb.OOMKilled() || !strings.Contains(out, "allocated 16 MB") {
		t.Errorf("16 MB in 128: exit %v, oom %v, output %q", sb.ExitError(), sb.OOMKilled(), out)
	}
}

func TestCgroupSetup(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	spec := testSpec(t, code, "sleep")
	spec.MemoryMB = 256
	spec.PidsMax = 64
	sb := create(t, m, spec)
	procs, err := sb.cg.procs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(procs, []int{sb.Pid()}) {
		t.Errorf("cgroup procs %v, want [%d]", procs, sb.Pid())
	}
	if sb.OOMKilled() {
		t.Error("OOMKilled true for a live sandbox within its limit")
	}
	read := func(dir, name string) string {
		b, err := readFile(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	mem := strconv.Itoa(256 << 20)
	// 256/1769 of a CPU.
	quota := strconv.FormatInt(cpuQuotaUs(256, runtime.NumCPU()), 10)
	if quota != "144714" {
		t.Errorf("quota for 256 MB: %s µs per second, want 144714", quota)
	}
	// The init runs without the quota; LimitCPU applies it.
	quotaFile, unlimited, limited := "cpu.cfs_quota_us", "-1", quota
	if m.cg.v2 {
		quotaFile, unlimited, limited = "cpu.max", "max 1000000", quota+" 1000000"
	}
	if got := read(sb.cg.cpu, quotaFile); got != unlimited {
		t.Errorf("%s before LimitCPU = %s, want %s", quotaFile, got, unlimited)
	}
	if err := sb.LimitCPU(); err != nil {
		t.Fatal(err)
	}
	if m.cg.v2 {
		for file, want := range map[string]string{"memory.max": mem, "pids.max": "64", "cpu.weight": "14", "cpu.max": limited} {
			if got := read(sb.cg.memory, file); got != want {
				t.Errorf("%s = %s, want %s", file, got, want)
			}
		}
		return
	}
	checks := []struct{ dir, file, want string }{
		{sb.cg.memory, "memory.limit_in_bytes", mem},
		{sb.cg.pids, "pids.max", "64"},
		{sb.cg.cpu, "cpu.shares", "148"},
		{sb.cg.cpu, "cpu.cfs_period_us", "1000000"},
		{sb.cg.cpu, "cpu.cfs_quota_us", limited},
	}
	if m.cg.memsw {
		checks = append(checks, struct{ dir, file, want string }{sb.cg.memory, "memory.memsw.limit_in_bytes", mem})
	}
	for _, c := range checks {
		if got := read(c.dir, c.file); got != c.want {
			t.Errorf("%s = %s, want %s", c.file, got, c.want)
		}
	}
	// Only the four controllers Owl uses get a cgroup.
	cpuset := filepath.Join("/sys/fs/cgroup/cpuset", owlCgroup, m.cfg.Instance)
	if _, err := os.Stat(cpuset); err == nil {
		t.Errorf("%s exists; cpuset is not used", cpuset)
	}
}

func TestFreezeThaw(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	sb := create(t, m, testSpec(t, code, "tick"))
	out := sb.Output()
	r := bufio.NewReader(out)
	readLine(t, r, out)
	if err := sb.Freeze(); err != nil {
		t.Fatal(err)
	}
	// Drain what was written before the freeze; then nothing more comes.
	for {
		out.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := r.ReadString('\n'); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("reading while frozen: %v", err)
			}
			break
		}
	}
	state := procState(t, sb.Pid())
	if state != "D" && state != "S" && state != "T" {
		t.Errorf("frozen process state %q", state)
	}
	if err := sb.Thaw(); err != nil {
		t.Fatal(err)
	}
	line := readLine(t, r, out)
	if !strings.HasPrefix(line, "tick ") {
		t.Errorf("after thaw: %q", line)
	}
	// Destroy works on a frozen sandbox too.
	if err := sb.Freeze(); err != nil {
		t.Fatal(err)
	}
	if err := sb.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := sb.Freeze(); !errors.Is(err, ErrDestroyed) {
		t.Errorf("Freeze after Destroy: %v, want ErrDestroyed", err)
	}
}

// gone reports whether pid has exited (no such process, or a zombie).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] == "Z"
}

func procState(t *testing.T, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return fields[0]
}

func TestDestroy(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	sb := create(t, m, testSpec(t, code, "spawn", "3"))
	r := bufio.NewReader(sb.Output())
	if line := readLine(t, r, sb.Output()); line != "spawned" {
		t.Fatalf("probe said %q", line)
	}
	pids, err := sb.cg.procs()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 4 {
		t.Fatalf("cgroup has %d processes %v, want 4", len(pids), pids)
	}
	netns, err := netnsInode(sb.Pid())
	if err != nil {
		t.Fatal(err)
	}
	hostNetns, _ := netnsInode(os.Getpid())
	if netns == hostNetns {
		t.Fatal("the sandbox shares the host network namespace")
	}

	// Concurrent Destroys, all returning the same result.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = sb.Destroy() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("Destroy: %v", err)
		}
	}
	select {
	case <-sb.Done():
	default:
		t.Fatal("Done not closed after Destroy")
	}
	if err := sb.ExitError(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("ExitError %v, want signal: killed", err)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("pid %d still exists after Destroy", pid)
		}
	}
	for _, d := range sb.cg.dirs {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cgroup %s still exists", d)
		}
	}
	waitFor(t, "the sandbox network namespace to go", func() bool { return !netnsInUse(netns) })
	assertNoMounts(t, m.cfg.RootDir)
	if _, err := sb.Output().Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("output after Destroy: %v, want closed", err)
	}
	if _, err := sb.Listener().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener after Destroy: %v, want closed", err)
	}
	if _, err := sb.MaxMemoryBytes(); !errors.Is(err, ErrDestroyed) {
		t.Errorf("MaxMemoryBytes after Destroy: %v", err)
	}
	m.mu.Lock()
	n := len(m.live)
	m.mu.Unlock()
	if n != 0 {
		t.Errorf("manager still tracks %d sandboxes", n)
	}
	// The ID can be reused.
	spec := testSpec(t, code, "exit", "0")
	spec.ID = sb.ID()
	sb2 := create(t, m, spec)
	waitDone(t, sb2)
}

func TestCreateErrors(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	assertRolledBack := func(t *testing.T, id string) {
		t.Helper()
		for _, d := range m.cg.sandbox(id).dirs {
			if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("cgroup %s left after a failed Create", d)
			}
		}
		m.mu.Lock()
		_, reserved := m.live[id]
		m.mu.Unlock()
		if reserved {
			t.Errorf("ID %s still reserved after a failed Create", id)
		}
		assertNoMounts(t, m.cfg.RootDir)
	}
	ctx := context.Background()

	t.Run("missing entrypoint", func(t *testing.T) {
		spec := testSpec(t, code)
		spec.Argv = []string{"/var/task/nope"}
		_, err := m.Create(ctx, spec)
		if !errors.Is(err, ErrInvalidEntrypoint) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %v, want ErrInvalidEntrypoint wrapping ENOENT", err)
		}
		if want := "sandbox " + spec.ID + ": invalid entrypoint: exec /var/task/nope: no such file or directory"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
		assertRolledBack(t, spec.ID)
	})
	t.Run("entrypoint not executable", func(t *testing.T) {
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("#!/bin/sh\n"), 0o644)
		spec := testSpec(t, dir)
		spec.Argv = []string{"/var/task/bootstrap"}
		_, err := m.Create(ctx, spec)
		if !errors.Is(err, ErrInvalidEntrypoint) || !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("got %v, want ErrInvalidEntrypoint wrapping EACCES", err)
		}
		assertRolledBack(t, spec.ID)
	})
	t.Run("code dir not readable by the function user", func(t *testing.T) {
		dir := t.TempDir()
		os.Chmod(dir, 0o700) // root's
		spec := testSpec(t, dir)
		_, err := m.Create(ctx, spec)
		if err == nil || !strings.Contains(err.Error(), "entering /var/task") || !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("got %v, want a permission error entering /var/task", err)
		}
		assertRolledBack(t, spec.ID)
	})
	t.Run("missing code dir", func(t *testing.T) {
		spec := testSpec(t, "/nonexistent/code")
		if _, err := m.Create(ctx, spec); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %v, want ErrNotExist", err)
		}
		assertRolledBack(t, spec.ID)
	})
	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		spec := testSpec(t, code, "exit", "0")
		if _, err := m.Create(cctx, spec); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		assertRolledBack(t, spec.ID)
	})
	t.Run("duplicate ID", func(t *testing.T) {
		spec := testSpec(t, code, "sleep")
		create(t, m, spec)
		spec2 := testSpec(t, code, "sleep")
		spec2.ID = spec.ID
		if _, err := m.Create(ctx, spec2); err == nil || !strings.Contains(err.Error(), "already in use") {
			t.Fatalf("got %v, want ID already in use", err)
		}
	})
	t.Run("invalid spec", func(t *testing.T) {
		spec := testSpec(t, code)
		spec.MemoryMB = 1
		if _, err := m.Create(ctx, spec); err == nil || !strings.Contains(err.Error(), "MemoryMB") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("stale cgroup", func(t *testing.T) {
		spec := testSpec(t, code, "exit", "0")
		cg := m.cg.sandbox(spec.ID)
		for _, d := range cg.dirs {
			os.Mkdir(d, 0o755)
		}
		defer cg.remove(ctx)
		_, err := m.Create(ctx, spec)
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "CleanupStale") {
			t.Fatalf("got %v, want EEXIST mentioning CleanupStale", err)
		}
	})
}

func TestManagerClose(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	var sbs []*Sandbox
	for range 3 {
		sbs = append(sbs, create(t, m, testSpec(t, code, "sleep")))
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, sb := range sbs {
		select {
		case <-sb.Done():
		default:
			t.Errorf("sandbox %s still running after Close", sb.ID())
		}
	}
	if _, err := m.Create(context.Background(), testSpec(t, code, "sleep")); !errors.Is(err, ErrClosed) {
		t.Errorf("Create after Close: %v, want ErrClosed", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConcurrentCreate(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			sb, err := m.Create(context.Background(), testSpec(t, code, "exit", strconv.Itoa(i)))
			if err != nil {
				errs[i] = err
				return
			}
			io.Copy(io.Discard, sb.Output())
			<-sb.Done()
			if want := fmt.Sprintf("exit status %d", i); i > 0 && (sb.ExitError() == nil || sb.ExitError().Error() != want) {
				errs[i] = fmt.Errorf("ExitError %v, want %s", sb.ExitError(), want)
			}
			errs[i] = errors.Join(errs[i], sb.Destroy())
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("sandbox %d: %v", i, err)
		}
	}
}

// TestCleanupStale leaves behind what a crashed Owl would: a frozen sandbox
// of another Manager on the same instance, and a process in a cgroup made by
// hand. CleanupStale kills and removes both, and spares live sandboxes.
func TestCleanupStale(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	ctx := context.Background()

	other, err := NewManager(Config{Instance: m.cfg.Instance, RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// other stands for a crashed Owl and is never closed; its memory
	// watcher (a goroutine on cgroup v2) goes as a crashed process's would.
	t.Cleanup(other.mem.close)
	orphan, err := other.Create(ctx, testSpec(t, code, "spawn", "2"))
	if err != nil {
		t.Fatal(err)
	}
	if line := readLine(t, bufio.NewReader(orphan.Output()), orphan.Output()); line != "spawned" {
		t.Fatalf("probe said %q", line)
	}
	if err := orphan.Freeze(); err != nil {
		t.Fatal(err)
	}

	raw := m.cg.sandbox("stale-raw")
	for _, d := range raw.dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sleeper := exec.Command("sleep", "1000")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Process.Kill()
	if err := raw.addProc(sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}

	mine := create(t, m, testSpec(t, code, "sleep"))

	n, err := m.CleanupStale(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("CleanupStale removed %d, want 2", n)
	}
	waitDone(t, orphan)
	if err := orphan.ExitError(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("orphan: %v, want signal: killed", err)
	}
	if err := sleeper.Wait(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("raw process: %v, want signal: killed", err)
	}
	for _, cg := range []*cgroup{orphan.cg, raw} {
		for _, d := range cg.dirs {
			if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("cgroup %s still exists", d)
			}
		}
	}
	select {
	case <-mine.Done():
		t.Fatal("CleanupStale killed a live sandbox of its own Manager")
	default:
	}
	if n, err := m.CleanupStale(ctx); n != 0 || err != nil {
		t.Errorf("second CleanupStale: %d, %v", n, err)
	}
	// The forgotten manager's sandbox can still be destroyed cleanly.
	if err := orphan.Destroy(); err != nil {
		t.Errorf("Destroy after CleanupStale: %v", err)
	}
	other.devNull.Close() // other is not closed: it would remove m's instance dirs
}

// TestCrashedOwl kills -9 a process that created a sandbox: the sandbox dies
// with it (parent-death signal), and CleanupStale removes its cgroup.
func TestCrashedOwl(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	t.Cleanup(func() { os.RemoveAll(crashHelperRootDir(m.cfg.Instance)) })
	helper := exec.Command("/proc/self/exe", "-test.run=^$")
	helper.Env = append(os.Environ(), crashHelperEnv+"="+m.cfg.Instance+","+code)
	stdout, _ := helper.StdoutPipe()
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	// Dead: gone, or a zombie waiting for its new parent (outside the test) to reap it.
	waitFor(t, "the sandbox to die with its parent", func() bool { return gone(pid) })
	n, err := m.CleanupStale(context.Background())
	if err != nil || n != 1 {
		t.Errorf("CleanupStale: %d, %v; want 1", n, err)
	}
}

const crashHelperEnv = "OWL_SANDBOX_TEST_CRASH_HELPER"

func crashHelperRootDir(instance string) string {
	return filepath.Join(os.TempDir(), "owl-crash-"+instance)
}

// runCrashHelper, in a child test process, creates a sandbox, prints its
// pid and waits to be killed.
func runCrashHelper(arg string) {
	instance, code, _ := strings.Cut(arg, ",")
	m, err := NewManager(Config{Instance: instance, RootDir: crashHelperRootDir(instance)})
	if err != nil {
		panic(err)
	}
	sb, err := m.Create(context.Background(), Spec{
		ID: "crash", CodeDir: code, Argv: []string{"/var/task/probe", "sleep"}, MemoryMB: 64,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(sb.Pid())
	select {}
}

// TestCgroupV2 exercises the v2 code on a hybrid host's controller-less
// cgroup2 mount: clone into the cgroup, freeze, thaw, kill, remove. The
// limits need the v2 controllers and are covered only on v2 hosts.
func TestCgroupV2(t *testing.T) {
	requireSandboxes(t)
	root := cgroupV2Root
	var st unix.Statfs_t
	if unix.Statfs(root, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		root = filepath.Join(cgroupV2Root, "unified")
		if unix.Statfs(root, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
			t.Skip("no cgroup2 mount")
		}
	}
	dir := filepath.Join(root, randomName("owl-test"))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer unix.Rmdir(dir)
	for _, killFile := range []bool{true, false} {
		t.Run(fmt.Sprintf("cgroup.kill=%v", killFile), func(t *testing.T) {
			h := &hierarchy{v2: true, memory: dir, pids: dir, cpu: dir, freezer: dir, dirs: []string{dir},
				killFile: killFile && exists(filepath.Join(dir, "cgroup.kill"))}
			cg := h.sandbox("sb")
			if err := os.Mkdir(cg.memory, 0o755); err != nil {
				t.Fatal(err)
			}
			fd, err := cg.openDir()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sleep", "1000")
			cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
			err = cmd.Start()
			unix.Close(fd)
			if err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			if procs, err := cg.procs(); err != nil || !slices.Equal(procs, []int{cmd.Process.Pid}) {
				t.Fatalf("procs %v, %v; want [%d]", procs, err, cmd.Process.Pid)
			}
			if err := cg.freeze(); err != nil {
				t.Fatal(err)
			}
			if v, _ := readKey(cg.freezer, "cgroup.events", "frozen"); v != 1 {
				t.Error("not frozen")
			}
			if err := cg.thaw(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "thaw", func() bool { v, _ := readKey(cg.freezer, "cgroup.events", "frozen"); return v == 0 })
			if err := cg.freeze(); err != nil {
				t.Fatal(err)
			}
			if err := cg.remove(context.Background()); err != nil { // kills on EBUSY
				t.Fatal(err)
			}
			if err := cmd.Wait(); err == nil || err.Error() != "signal: killed" {
				t.Errorf("process: %v, want signal: killed", err)
			}
			if _, err := os.Stat(cg.memory); !errors.Is(err, fs.ErrNotExist) {
				t.Error("cgroup not removed")
			}
		})
	}
}

// TestCgroupV2Unsupported: a cgroup2 mount without the memory, pids and cpu
// controllers (a hybrid host's) is refused with a message naming what lacks.
func TestCgroupV2Unsupported(t *testing.T) {
	requireSandboxes(t)
	root := filepath.Join(cgroupV2Root, "unified")
	var st unix.Statfs_t
	if unix.Statfs(root, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skip("no controller-less cgroup2 mount at " + root)
	}
	ctrls, _ := readFile(root, "cgroup.controllers")
	if strings.Contains(string(ctrls), "memory") {
		t.Skip(root + " has the memory controller")
	}
	_, err := newV2Hierarchy(root, "unused")
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), `"memory"`) {
		t.Errorf("got %v, want ErrUnsupported naming the memory controller", err)
	}
	if _, err := os.Stat(filepath.Join(root, owlCgroup)); err == nil {
		t.Errorf("%s/%s created although the hierarchy was refused", root, owlCgroup)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		"/sys/fs/cgroup/memory": "/sys/fs/cgroup/memory",
		`/mnt/with\040space`:    "/mnt/with space",
		`/a\011tab\134slash`:    "/a\ttab\\slash",
		`/trailing\04`:          `/trailing\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSpares checks that sandboxes made from spare inits are the same as
// fresh ones, that a dead spare is survived, and that Close ends the spares.
func TestSpares(t *testing.T) {
	m := newTestManagerWith(t, Config{Spares: 2})
	code := probeCodeDir(t)
	waitFor(t, "two spares", func() bool { return len(m.spares) == 2 })
	// Look at the spares (refill only runs after a Create).
	spares := []*initProc{<-m.spares, <-m.spares}
	m.spares <- spares[0]
	m.spares <- spares[1]
	if m.cg.v2 {
		for _, p := range spares {
			if procs, _ := p.cg.procs(); !slices.Equal(procs, []int{p.cmd.Process.Pid}) {
				t.Errorf("v2 spare %d not in its cgroup %s: %v", p.cmd.Process.Pid, p.cg.name, procs)
			}
		}
	}

	spec := testSpec(t, code, "facts")
	spec.MemoryMB = 256
	sb := create(t, m, spec)
	if sb.Pid() != spares[0].cmd.Process.Pid {
		t.Fatalf("sandbox pid %d is not the first spare's %d", sb.Pid(), spares[0].cmd.Process.Pid)
	}
	var f Facts
	if err := json.Unmarshal([]byte(readOutput(t, sb)), &f); err != nil {
		t.Fatal(err)
	}
	waitDone(t, sb)
	if f.UID != DefaultUID || f.Pid != 1 || !slices.Equal(f.Procs, []int{1}) || !slices.Equal(f.Env, spec.Env) ||
		f.Hostname != Hostname || f.WriteErrs["/usr"] == "" || f.WriteErrs["/tmp"] != "" {
		t.Errorf("sandbox from a spare differs: %+v", f)
	}
	if peak, err := sb.MaxMemoryBytes(); err != nil || peak == 0 {
		t.Errorf("MaxMemoryBytes %d, %v", peak, err)
	}
	if err := sb.Destroy(); err != nil {
		t.Fatal(err)
	}

	// A spare that died while waiting: Create starts a fresh init instead.
	if err := spares[1].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	sb = create(t, m, testSpec(t, code, "sleep"))
	if sb.Pid() == spares[1].cmd.Process.Pid {
		t.Fatal("got the dead spare")
	}
	if procs, err := sb.cg.procs(); err != nil || !slices.Equal(procs, []int{sb.Pid()}) {
		t.Errorf("cgroup procs %v, %v; want [%d]", procs, err, sb.Pid())
	}
	if line := readLine(t, bufio.NewReader(sb.Output()), sb.Output()); line != "sleeping" {
		t.Errorf("probe said %q", line)
	}

	waitFor(t, "the spares refilled", func() bool { return len(m.spares) == 2 })
	var pids []int
	for range 2 {
		p := <-m.spares
		pids = append(pids, p.cmd.Process.Pid)
		m.spares <- p
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("spare %d still running after Close", pid)
		}
	}
}

// BenchmarkCreateDestroy measures sandbox churn: create a sandbox running
// /usr/bin/true, wait for it to exit, destroy it. create-ns/op is the Create
// part alone (the cold-start cost before the runtime's own start-up).
// "fresh" starts every init; "spare" waits (untimed) for a spare first,
// and for a spare /tmp disk (as the server keeps them: Config.TmpSpares).
func BenchmarkCreateDestroy(b *testing.B) {
	for _, spares := range []int{0, 1} {
		name := "fresh"
		if spares > 0 {
			name = "spare"
		}
		b.Run(name, func(b *testing.B) {
			benchCreateDestroy(b, newTestManagerWith(b, Config{Spares: spares, TmpSpares: spares}), spares, Spec{})
		})
	}
}

// benchCreateDestroy creates sandboxes like spec running /usr/bin/true on
// m, waits for each to exit and destroys it, and reports the Create and
// Destroy parts alone (create-ns/op, destroy-ns/op). With spares, it waits
// (untimed) before each Create until m has that many ready.
func benchCreateDestroy(b *testing.B, m *Manager, spares int, spec Spec) {
	spec.CodeDir = b.TempDir()
	os.Chmod(spec.CodeDir, 0o755)
	spec.Argv = []string{"/usr/bin/true"}
	spec.MemoryMB = 128
	ctx := context.Background()
	var creating, destroying time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if spares > 0 {
			b.StopTimer()
			for len(m.spares) < spares || len(m.tmp.ready) < m.cfg.TmpSpares {
				time.Sleep(100 * time.Microsecond)
			}
			// And for the last /tmp disk's close (in the background), as
			// a cold start on a server finds the last environment long gone.
			m.tmp.closing.Wait()
			b.StartTimer()
		}
		spec.ID = "bench" + strconv.Itoa(i)
		start := time.Now()
		sb, err := m.Create(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		creating += time.Since(start)
		<-sb.Done()
		start = time.Now()
		if err := sb.Destroy(); err != nil {
			b.Fatal(err)
		}
		destroying += time.Since(start)
	}
	b.ReportMetric(float64(creating.Nanoseconds())/float64(b.N), "create-ns/op")
	b.ReportMetric(float64(destroying.Nanoseconds())/float64(b.N), "destroy-ns/op")
}

// TestHardening looks at the privilege and filesystem hardening from
// inside a sandbox: capabilities, no_new_privs, seccomp, rlimits, /etc,
// /dev, the /proc masks and /sys.
func TestHardening(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	sb := create(t, m, testSpec(t, code, "hardening"))
	out := readOutput(t, sb)
	waitDone(t, sb)
	var h Hardening
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("decoding probe output: %v\n%s", err, out)
	}

	t.Run("privileges", func(t *testing.T) {
		for _, set := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			if h.Status[set] != "0000000000000000" {
				t.Errorf("%s = %q, want all zero", set, h.Status[set])
			}
		}
		if h.Status["NoNewPrivs"] != "1" || h.Status["Seccomp"] != "2" {
			t.Errorf("NoNewPrivs %q, Seccomp %q; want 1 and 2 (filter)", h.Status["NoNewPrivs"], h.Status["Seccomp"])
		}
		if got := h.Rlimits["nofile"]; got != [2]uint64{DefaultNoFile, DefaultNoFile} {
			t.Errorf("RLIMIT_NOFILE %v, want %d", got, DefaultNoFile)
		}
		if got := h.Rlimits["core"]; got != [2]uint64{0, 0} {
			t.Errorf("RLIMIT_CORE %v, want 0", got)
		}
		want := map[string]string{
			"mount": "operation not permitted", "unshare": "operation not permitted",
			"clone3": "function not implemented", "ptrace": "operation not permitted",
			"keyctl": "operation not permitted", "bpf": "operation not permitted",
			"setuid0": "operation not permitted", "packet socket": "operation not permitted",
		}
		for call, w := range want {
			if h.Syscalls[call] != w {
				t.Errorf("%s: %q, want %q", call, h.Syscalls[call], w)
			}
		}
	})
	t.Run("x32 kills", func(t *testing.T) {
		sb := create(t, m, testSpec(t, code, "x32"))
		out := readOutput(t, sb)
		waitDone(t, sb)
		if err := sb.ExitError(); err == nil || err.Error() != "signal: bad system call" {
			t.Errorf("after an x32 syscall: %v (output %q), want signal: bad system call", err, out)
		}
	})
	t.Run("etc", func(t *testing.T) {
		for _, absent := range []string{"shadow", "gshadow", "ssh", "machine-id", "npmrc", "sudoers", "subuid"} {
			if slices.Contains(h.Etc, absent) {
				t.Errorf("/etc/%s is visible: %v", absent, h.Etc)
			}
		}
		for _, present := range []string{"passwd", "group", "hosts", "resolv.conf", "nsswitch.conf", "ld.so.cache", "ssl"} {
			if !slices.Contains(h.Etc, present) {
				t.Errorf("/etc lacks %s: %v", present, h.Etc)
			}
		}
		if !strings.Contains(h.Passwd, sandboxUser+":x:993:990:") || strings.Count(h.Passwd, "\n") != 3 {
			t.Errorf("/etc/passwd:\n%s", h.Passwd)
		}
		if !strings.Contains(h.Reads["/etc/shadow"], "no such file") {
			t.Errorf("/etc/shadow: %s", h.Reads["/etc/shadow"])
		}
		if !strings.Contains(h.Writes["/etc/owl-test"], "read-only") {
			t.Errorf("writing /etc: %q", h.Writes["/etc/owl-test"])
		}
	})
	t.Run("dev", func(t *testing.T) {
		want := []string{"fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "urandom", "zero"}
		if !slices.Equal(h.Dev, want) {
			t.Errorf("/dev has %v, want %v", h.Dev, want)
		}
		if !strings.Contains(h.Writes["/dev/owl-test"], "read-only") {
			t.Errorf("writing /dev: %q", h.Writes["/dev/owl-test"])
		}
	})
	t.Run("proc and sys", func(t *testing.T) {
		for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list"} {
			if r := h.Reads[p]; r != "0 bytes" && !strings.Contains(r, "no such file") {
				t.Errorf("%s: %s, want masked (empty) or absent", p, r)
			}
		}
		if r, ok := h.Reads["/proc/acpi"]; ok && !strings.HasPrefix(r, "0 entries") && !strings.Contains(r, "no such file") {
			t.Errorf("/proc/acpi: %s, want masked (empty) or absent", r)
		}
		if w := h.Writes["/proc/sys/kernel/hostname"]; !strings.Contains(w, "read-only") {
			t.Errorf("writing /proc/sys/kernel/hostname: %q, want read-only", w)
		}
		if w := h.Writes["/proc/sysrq-trigger"]; w == "" {
			t.Error("writing /proc/sysrq-trigger worked")
		}
		if !strings.Contains(h.Sys, "no such file") {
			t.Errorf("stat /sys: %q, want absent", h.Sys)
		}
	})
}

// TestSetLimitsFiles checks what setLimits writes on both cgroup code
// paths, on plain files standing for cgroupfs: this host runs only one of
// them for real (TestCgroupSetup).
func TestSetLimitsFiles(t *testing.T) {
	lim := limits{memoryBytes: 512 << 20, pidsMax: 1024, memoryMB: 512}
	quota := strconv.FormatInt(cpuQuotaUs(512, runtime.NumCPU()), 10)
	mem := strconv.Itoa(512 << 20)
	for _, tt := range []struct {
		name  string
		h     hierarchy
		files map[string]string // file → content after setLimits ("" = must stay untouched)
	}{
		{"v2", hierarchy{v2: true, swapMax: true}, map[string]string{
			"memory.max": mem, "memory.swap.max": "0", "pids.max": "1024", "cpu.weight": "29", "cpu.max": "max 1000000",
		}},
		{"v1 with memsw", hierarchy{memsw: true}, map[string]string{
			"memory.limit_in_bytes": mem, "memory.memsw.limit_in_bytes": mem, "memory.swappiness": "",
			"pids.max": "1024", "cpu.shares": "296", "cpu.cfs_period_us": "1000000", "cpu.cfs_quota_us": "-1",
		}},
		{"v1 without memsw", hierarchy{}, map[string]string{
			"memory.limit_in_bytes": mem, "memory.swappiness": "0",
			"pids.max": "1024", "cpu.shares": "296", "cpu.cfs_period_us": "1000000", "cpu.cfs_quota_us": "-1",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for f := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			h := tt.h
			h.memory, h.pids, h.cpu, h.freezer = dir, dir, dir, dir
			cg := &cgroup{h: &h, memory: dir, pids: dir, cpu: dir, freezer: dir}
			if err := cg.setLimits(lim); err != nil {
				t.Fatal(err)
			}
			for f, want := range tt.files {
				if got, _ := os.ReadFile(filepath.Join(dir, f)); string(got) != want {
					t.Errorf("%s = %q, want %q", f, got, want)
				}
			}
			// The quota comes with limitCPU (the runtime is ready).
			if err := cg.limitCPU(); err != nil {
				t.Fatal(err)
			}
			file, want := "cpu.cfs_quota_us", quota
			if h.v2 {
				file, want = "cpu.max", quota+" 1000000"
			}
			if got, _ := os.ReadFile(filepath.Join(dir, file)); string(got) != want {
				t.Errorf("%s after limitCPU = %q, want %q", file, got, want)
			}
		})
	}
}

// wantHeld checks that sb, running the probe's "hold MB", holds its
// memory and is still running a few guard rechecks later.
func wantHeld(t *testing.T, sb *Sandbox, mb string) {
	t.Helper()
	// Touching 200 MB at 256/1769 of a CPU takes a while on a slow
	// (emulated) machine: a deadline for the property, not the speed.
	sb.Output().SetReadDeadline(time.Now().Add(3 * time.Minute))
	if line, err := bufio.NewReader(sb.Output()).ReadString('\n'); err != nil || line != "holding "+mb+" MB\n" {
		t.Fatalf("hold %s: %q, %v", mb, line, err)
	}
	time.Sleep(3 * memGuardRecheck)
	select {
	case <-sb.Done():
		t.Fatalf("a sandbox holding %s MB, below its limit's threshold, was killed: %v", mb, sb.ExitError())
	default:
	}
}

// TestMemoryGuard: a sandbox whose memory the kernel cannot reclaim (here
// anonymous memory, which without swap stays in memory) comes within the slack of its
// limit is killed by Owl's guard, before the kernel's OOM killer ever acts;
// one well below its limit is left alone.
func TestMemoryGuard(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	const limitMB = 256 // slack 8 MB: the guard acts from 248 MB on

	spec := testSpec(t, code, "hold", "200")
	spec.MemoryMB = limitMB
	wantHeld(t, create(t, m, spec), "200")

	// 251 MB held and the probe's own ~2 MB: past limit − slack, still
	// short of the limit, so the kernel would never OOM-kill it.
	spec = testSpec(t, code, "hold", "251")
	spec.MemoryMB = limitMB
	full := create(t, m, spec)
	full.Output().SetReadDeadline(time.Now().Add(3 * time.Minute))
	outb, err := io.ReadAll(full.Output())
	out := string(outb)
	if err != nil {
		t.Fatalf("hold 251: reading output: %v (got %q)", err, out)
	}
	select {
	case <-full.Done():
	case <-time.After(patience):
		t.Fatalf("hold 251: the sandbox did not exit (output %q)", out)
	}
	if err := full.ExitError(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("ExitError %v (output %q), want signal: killed", err, out)
	}
	if !full.OOMKilled() || !full.memKilled.Load() {
		t.Errorf("OOMKilled %v, killed by the guard %v; want both", full.OOMKilled(), full.memKilled.Load())
	}
	if n, _ := full.cg.oomKills(); n != 0 {
		t.Errorf("the kernel OOM-killed %d processes: the guard should have acted first", n)
	}
}

func TestOutOfMemoryDecision(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		limit, usage, file uint64
		want               bool
	}{
		{128 * mb, 100 * mb, 0, false},        // far from the limit
		{128 * mb, 124 * mb, 0, true},         // within the 4 MB slack, nothing to reclaim
		{128 * mb, 128 * mb, 0, true},         // at the limit
		{128 * mb, 128 * mb, 20 * mb, false},  // at the limit, 20 MB of page cache to reclaim
		{128 * mb, 128 * mb, 3 * mb, true},    // page cache squeezed below the slack: thrashing
		{10240 * mb, 10000 * mb, 0, false},    // 10 GB: slack capped at 32 MB
		{10240 * mb, 10210 * mb, 0, true},     // within 32 MB
		{128 * mb, 127 * mb, 200 * mb, false}, // more file than usage (racy reads) is no underflow
	} {
		if got := outOfMemory(c.limit, c.usage, c.file); got != c.want {
			t.Errorf("outOfMemory(limit %d MB, usage %d MB, file %d MB) = %v, want %v",
				c.limit/mb, c.usage/mb, c.file/mb, got, c.want)
		}
	}
	if s := memSlack(128 * mb); s != 4*mb {
		t.Errorf("slack of 128 MB = %d", s)
	}
	if s := memSlack(1769 * mb); s != 32*mb {
		t.Errorf("slack of 1769 MB = %d", s)
	}
}
