package sandbox

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// spareScript waits for the host to attach code, then reports what the
// sandbox sees: the code, the layer, /tmp (writable, its size), that
// /var/task is read-only.
const spareScript = `echo "entries $(find /var/task /opt /tmp -mindepth 1 | wc -l)"
touch /tmp/x 2>/dev/null && echo tmp-writable || echo tmp-readonly
echo waiting
while [ ! -e /var/task/hello ]; do sleep 0.01; done
cd /var/task && cat hello
cat /opt/layer
echo data > /tmp/f && cat /tmp/f
touch /var/task/new 2>/dev/null && echo task-writable || echo task-readonly
df -k /tmp | tail -n 1 | awk '{print "tmp-kb", $4}'
`

func slotSpec(t testing.TB) Spec {
	return Spec{
		ID:       randomName("spare"),
		Slots:    true,
		Argv:     []string{"/bin/sh", "-c", spareScript},
		Env:      []string{"PATH=/usr/bin:/bin"},
		MemoryMB: 128,
	}
}

func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSpecialize(t *testing.T) {
	m := newTestManager(t)
	sb := create(t, m, slotSpec(t))
	r := bufio.NewReader(sb.Output())
	// Before specialisation the slots are empty and read-only.
	for _, want := range []string{"entries 0", "tmp-readonly", "waiting"} {
		if line := readLine(t, r, sb.Output()); line != want {
			t.Fatalf("spare said %q, want %q", line, want)
		}
	}
	// Nothing of a function is visible yet.
	if err := sb.Specialize(Specialization{CodeDir: "relative", MemoryMB: 128}); err == nil {
		t.Fatal("Specialize accepted a relative CodeDir")
	}
	code := writeTree(t, map[string]string{"hello": "hello from code\n"})
	opt := writeTree(t, map[string]string{"layer": "layer file\n"})
	if err := sb.Specialize(Specialization{CodeDir: code, OptDir: opt, TmpMB: 7, MemoryMB: 200}); err != nil {
		t.Fatalf("Specialize: %v", err)
	}
	for _, want := range []string{"hello from code", "layer file", "data", "task-readonly"} {
		if got := readLine(t, r, sb.Output()); got != want {
			t.Errorf("sandbox said %q, want %q", got, want)
		}
	}
	// /tmp holds its 7 MB, and at most 4 MB more (df counts the "data"
	// file's block as used).
	line := readLine(t, r, sb.Output())
	if kb, err := strconv.Atoi(strings.TrimPrefix(line, "tmp-kb ")); err != nil || kb < 7<<10-4 || kb > 11<<10 {
		t.Errorf("sandbox said %q, want tmp-kb of 7 MB", line)
	}
	waitDone(t, sb)
	file, key := "memory.limit_in_bytes", ""
	if m.cg.v2 {
		file = "memory.max"
	}
	b, err := readFile(sb.cg.memory, file)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(200<<20) {
		t.Errorf("%s = %s%s, want %d", file, got, key, 200<<20)
	}
	if err := sb.Specialize(Specialization{CodeDir: code, MemoryMB: 128}); err == nil {
		t.Error("a sandbox was specialized twice")
	}
	slots, tmp := sb.slots, sb.tmp
	image := loopImage(t, tmp)
	if err := sb.Destroy(); err != nil {
		t.Fatal(err)
	}
	tmpReleased(t, tmp, image)
	if _, err := os.Stat(slots); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("slots %s still exist after Destroy (%v)", slots, err)
	}
	// The code dir is untouched (slots are unmounted, never emptied).
	if _, err := os.Stat(filepath.Join(code, "hello")); err != nil {
		t.Errorf("code dir damaged: %v", err)
	}
}

// A sandbox that is not pre-warmed cannot be specialized.
func TestSpecializeNeedsSlots(t *testing.T) {
	m := newTestManager(t)
	sb := create(t, m, testSpec(t, probeCodeDir(t), "sleep"))
	if err := sb.Specialize(Specialization{CodeDir: t.TempDir(), MemoryMB: 128}); err == nil {
		t.Fatal("Specialize of an ordinary sandbox succeeded")
	}
}

// The slots of a crashed manager's spare are unmounted and removed by
// CleanupStale; the code attached to them is left alone.
func TestCleanupStaleSlots(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	other, err := NewManager(Config{Instance: m.cfg.Instance, RootDir: m.cfg.RootDir})
	if err != nil {
		t.Fatal(err)
	}
	// other stands for a crashed Owl and is never closed; its memory
	// watcher (a goroutine on cgroup v2) goes as a crashed process's would.
	t.Cleanup(other.mem.close)
	orphan, err := other.Create(ctx, slotSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	code := writeTree(t, map[string]string{"hello": "x"})
	if err := orphan.Specialize(Specialization{CodeDir: code, MemoryMB: 128}); err != nil {
		t.Fatal(err)
	}
	mine := create(t, m, slotSpec(t))
	if n, err := m.CleanupStale(ctx); err != nil || n != 1 {
		t.Fatalf("CleanupStale: %d, %v; want 1", n, err)
	}
	waitDone(t, orphan)
	if _, err := os.Stat(orphan.slots); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale slots %s still exist (%v)", orphan.slots, err)
	}
	if mps, _ := mountPoints(orphan.slots); len(mps) > 0 {
		t.Errorf("stale slot mounts left: %v", mps)
	}
	if _, err := os.Stat(mine.slots); err != nil {
		t.Errorf("CleanupStale removed a live sandbox's slots: %v", err)
	}
	if _, err := os.Stat(filepath.Join(code, "hello")); err != nil {
		t.Errorf("code dir damaged: %v", err)
	}
	// And the crashed one's /tmp template and directory.
	if _, err := os.Stat(other.tmp.dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale /tmp directory %s still exists (%v)", other.tmp.dir, err)
	}
	_ = orphan.Destroy()
	other.devNull.Close()
}

// deferBootstrap is a custom runtime's bootstrap: it reports the
// environment it was exec'd with (pid 1's, as the kernel holds it), where
// it runs, as whom, and what /var/task holds.
const deferBootstrap = `#!/bin/sh
tr '\0' '\n' < /proc/1/environ | sort | tr '\n' ' '; echo
echo "cwd $(pwd) uid $(id -u) task $(ls /var/task | tr '\n' ' ')"
`

// A DeferExec sandbox runs nothing until Specialize gives it its command,
// which the waiting init execs in the specialised sandbox: exactly the
// command's environment, in /var/task, as the function's user; an
// entrypoint that is not there is ErrInvalidEntrypoint.
func TestSpecializeDeferExec(t *testing.T) {
	m := newTestManager(t)
	spec := Spec{ID: randomName("defer"), Slots: true, DeferExec: true, MemoryMB: 128}
	if _, err := m.Create(context.Background(), Spec{ID: "x", DeferExec: true, MemoryMB: 128}); err == nil {
		t.Error("Create accepted DeferExec without Slots")
	}
	if _, err := m.Create(context.Background(), Spec{ID: "x", Slots: true, DeferExec: true, MemoryMB: 128, Argv: []string{"/bin/true"}}); err == nil {
		t.Error("Create accepted DeferExec with an Argv")
	}
	sb := create(t, m, spec)
	code := writeTree(t, map[string]string{"bootstrap": deferBootstrap, "data": "x"})
	if err := os.Chmod(filepath.Join(code, "bootstrap"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := sb.Specialize(Specialization{CodeDir: code, MemoryMB: 128, Argv: []string{"relative"}}); err == nil {
		t.Fatal("Specialize accepted a relative Argv[0]")
	}
	if err := sb.Specialize(Specialization{CodeDir: code, MemoryMB: 128}); err == nil {
		t.Fatal("Specialize of a DeferExec sandbox accepted no command")
	}
	select {
	case <-sb.Done():
		t.Fatalf("the waiting init exited after refused specialisations: %v", sb.ExitError())
	default:
	}
	env := []string{"FOO=bar baz", "PATH=/usr/bin:/bin"}
	if err := sb.Specialize(Specialization{CodeDir: code, MemoryMB: 128, Argv: []string{"/var/task/bootstrap"}, Env: env}); err != nil {
		t.Fatalf("Specialize: %v", err)
	}
	r := bufio.NewReader(sb.Output())
	if got, want := readLine(t, r, sb.Output()), strings.Join(env, " "); got != want {
		t.Errorf("the bootstrap's environment is %q, want exactly %q", got, want)
	}
	if got, want := readLine(t, r, sb.Output()), "cwd /var/task uid "+strconv.Itoa(DefaultUID)+" task bootstrap data"; got != want {
		t.Errorf("the bootstrap said %q, want %q", got, want)
	}
	waitDone(t, sb)
	if err := sb.ExitError(); err != nil {
		t.Errorf("bootstrap exit: %v", err)
	}

	// A command for a sandbox that does not wait for one is refused.
	plain := create(t, m, slotSpec(t))
	if err := plain.Specialize(Specialization{CodeDir: code, MemoryMB: 128, Argv: []string{"/var/task/bootstrap"}}); err == nil {
		t.Error("a sandbox that was not DeferExec took a command")
	}

	// No bootstrap in the code: the function's fault, as for Create.
	missing := create(t, m, Spec{ID: randomName("defer"), Slots: true, DeferExec: true, MemoryMB: 128})
	empty := writeTree(t, map[string]string{"data": "x"})
	err := missing.Specialize(Specialization{CodeDir: empty, MemoryMB: 128, Argv: []string{"/var/task/bootstrap"}, Env: env})
	if !errors.Is(err, ErrInvalidEntrypoint) {
		t.Errorf("Specialize without a bootstrap: %v, want ErrInvalidEntrypoint", err)
	}
	waitDone(t, missing)
	if err := missing.Destroy(); err != nil {
		t.Fatal(err)
	}

	// A waiting sandbox destroyed before it was specialised leaves nothing.
	idle := create(t, m, Spec{ID: randomName("defer"), Slots: true, DeferExec: true, MemoryMB: 128})
	if err := idle.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(idle.slots); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("slots %s still exist after Destroy (%v)", idle.slots, err)
	}
}

// TestMemoryGuardSpecialized: a pre-warmed sandbox specialised to a larger
// limit is guarded at that limit, though the guard is re-armed in the
// background: 200 MB of 256 (past the spare's 128 MB threshold) is left
// alone, 251 MB is killed by the guard before the kernel's OOM killer.
func TestMemoryGuardSpecialized(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	const limitMB = 256
	hold := func(mb string) *Sandbox {
		sb := create(t, m, Spec{ID: randomName("defer"), Slots: true, DeferExec: true, MemoryMB: 128})
		err := sb.Specialize(Specialization{CodeDir: code, MemoryMB: limitMB,
			Argv: []string{"/var/task/probe", "hold", mb}, Env: []string{"PATH=/usr/bin:/bin"}})
		if err != nil {
			t.Fatalf("Specialize: %v", err)
		}
		return sb
	}
	wantHeld(t, hold("200"), "200")
	full := hold("251")
	full.Output().SetReadDeadline(time.Now().Add(3 * time.Minute))
	out, err := io.ReadAll(full.Output())
	if err != nil {
		t.Fatalf("hold 251: reading output: %v (got %q)", err, out)
	}
	waitDone(t, full)
	if err := full.ExitError(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("ExitError %v (output %q), want signal: killed", err, out)
	}
	if !full.memKilled.Load() {
		t.Error("not killed by the guard")
	}
	if n, _ := full.cg.oomKills(); n != 0 {
		t.Errorf("the kernel OOM-killed %d processes: the guard should have acted first", n)
	}
}
