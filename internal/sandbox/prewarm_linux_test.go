package sandbox

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
