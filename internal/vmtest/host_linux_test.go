package vmtest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/testkit"
)

func TestCompareKernelVersions(t *testing.T) {
	images := []string{
		"/boot/vmlinuz-6.1.0-10-amd64", "/boot/vmlinuz-6.1.0-9-amd64",
		"/boot/vmlinuz-5.10.0-28-amd64", "/boot/vmlinuz-6.12.1-amd64",
	}
	slices.SortFunc(images, compareVersions)
	want := []string{
		"/boot/vmlinuz-5.10.0-28-amd64", "/boot/vmlinuz-6.1.0-9-amd64",
		"/boot/vmlinuz-6.1.0-10-amd64", "/boot/vmlinuz-6.12.1-amd64",
	}
	if !slices.Equal(images, want) {
		t.Errorf("sorted = %v, want %v", images, want)
	}
}

// TestWriteInitramfs builds an initramfs from a fake /lib/modules tree and
// checks what the guest init relies on: /init, /dev/console, the mount
// points, the modules in load order (decompressed) and the plan naming
// them.
func TestWriteInitramfs(t *testing.T) {
	dir := t.TempDir()
	mods := filepath.Join(dir, "modules")
	files := map[string]string{
		"kernel/net/9p/9pnet.ko":               "9pnet",
		"kernel/net/9p/9pnet_virtio.ko":        "9pnet_virtio",
		"kernel/drivers/virtio/virtio.ko":      "virtio",
		"kernel/drivers/virtio/virtio_ring.ko": "virtio_ring",
		"kernel/fs/9p/9p.ko":                   "9p",
	}
	for f, content := range files {
		p := filepath.Join(mods, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dep := "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko\nkernel/net/9p/9pnet.ko:\n" +
		"kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n" +
		"kernel/drivers/virtio/virtio.ko:\nkernel/drivers/virtio/virtio_ring.ko:\n"
	if err := os.WriteFile(filepath.Join(mods, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	// virtio_pci is built into this kernel.
	if err := os.WriteFile(filepath.Join(mods, "modules.builtin"), []byte("kernel/drivers/virtio/virtio_pci.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	initBin := filepath.Join(dir, "init")
	if err := os.WriteFile(initBin, []byte("\x7fELF init"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "initramfs.cpio")
	plan := &Plan{Tests: []TestRun{{Name: "x", Binary: "/tmp/x.test", Dir: "/src/x"}}}
	if err := writeInitramfs(out, initBin, mods, plan); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]cpioEntry{}
	var order []string
	for _, e := range parseNewc(t, b) {
		entries[e.name] = e
		order = append(order, e.name)
	}
	if e := entries["init"]; e.mode != modeReg|0o755 || string(e.data) != "\x7fELF init" {
		t.Errorf("init = %+v", e)
	}
	if e := entries["dev/console"]; e.mode != modeChar|0o600 || e.rmajor != 5 || e.rminor != 1 {
		t.Errorf("dev/console = %+v", e)
	}
	for _, d := range []string{"dev", "proc", "sys"} {
		if entries[d].mode != modeDir|0o755 {
			t.Errorf("mount point %s missing: %v", d, order)
		}
	}
	var inPlan Plan
	if err := json.Unmarshal(entries[initramfsPlan].data, &inPlan); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inPlan.Modules, plan.Modules) || len(inPlan.Tests) != 1 {
		t.Errorf("plan in the initramfs = %+v, written %+v", inPlan, plan)
	}
	var loaded []string
	for _, m := range inPlan.Modules {
		e, ok := entries[strings.TrimPrefix(m, "/")]
		if !ok {
			t.Fatalf("plan names %s, not in the archive %v", m, order)
		}
		loaded = append(loaded, string(e.data))
	}
	// 9pnet before 9pnet_virtio and 9p; virtio and virtio_ring before
	// 9pnet_virtio; the built-in virtio_pci absent.
	idx := func(s string) int { return slices.Index(loaded, s) }
	if len(loaded) != 5 || idx("9pnet") > idx("9pnet_virtio") || idx("9pnet") > idx("9p") ||
		idx("virtio") > idx("9pnet_virtio") || idx("virtio_ring") > idx("9pnet_virtio") {
		t.Errorf("modules in load order = %v", loaded)
	}
	if bytes.Contains(b, []byte("virtio_pci")) {
		t.Error("the built-in virtio_pci was packed")
	}
}

// TestConsoleWatch feeds a console in odd chunks — carriage returns, a
// kernel message ahead of a report on its line, a broken report — and
// checks the last report wins and final closes only at the last word.
func TestConsoleWatch(t *testing.T) {
	first := &Report{InitUptime: 2.5, Results: []Result{{Name: "internal/sandbox", ExitCode: 0, Seconds: 250}}}
	last := &Report{InitUptime: 2.5, Results: []Result{first.Results[0], {Name: "internal/server", ExitCode: 1, Seconds: 90}}, Done: true}
	console := "v2guest: init started\r\n" + string(reportLine(first)) +
		"[  12.5] some kernel message " + strings.TrimSuffix(string(reportLine(first)), "\n") + "\r\n" +
		reportLinePrefix + "{not json\n" + "=== RUN TestX\n"
	w := newConsoleWatch()
	for i := 0; i < len(console); i += 7 {
		if _, err := w.Write([]byte(console[i:min(i+7, len(console))])); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-w.final:
		t.Fatal("final closed before the last report")
	default:
	}
	if got := w.lastReport(); got == nil || len(got.Results) != 1 || got.Results[0].Seconds != 250 || got.Done {
		t.Fatalf("report after the first lines = %+v", got)
	}
	line := reportLine(last)
	w.Write(line[:10])
	w.Write(line[10:])
	select {
	case <-w.final:
	default:
		t.Fatal("final not closed after the Done report")
	}
	if got := w.lastReport(); got == nil || !got.Done || len(got.Results) != 2 || !got.Results[1].Failed() {
		t.Fatalf("last report = %+v", got)
	}
	w.Write(reportLine(&Report{Err: "again"})) // a second last word closes nothing twice
	if failed := (&Report{Err: "mount failed"}); !failed.final() || (&Report{}).final() || (*Report)(nil).final() {
		t.Error("final() wrong")
	}
}

// TestConsoleWatchSilence: the silence channel closes only after a quiet
// spell as long as asked, and not once the guest has said its last word.
func TestConsoleWatchSilence(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	w := newConsoleWatch()
	quiet := w.silent(200*time.Millisecond, stop)
	for range 5 { // talking keeps it open
		time.Sleep(80 * time.Millisecond)
		w.Write([]byte("v2guest: alive\n"))
	}
	select {
	case <-quiet:
		t.Fatal("silent while the console talked")
	default:
	}
	select {
	case <-quiet:
	case <-time.After(10 * time.Second):
		t.Fatal("not silent after the console stopped")
	}
	done := newConsoleWatch()
	after := done.silent(50*time.Millisecond, stop)
	done.Write(reportLine(&Report{Done: true}))
	select {
	case <-after:
		t.Error("silent after the guest's last word")
	case <-time.After(300 * time.Millisecond):
	}
}

// TestKVMProbe boots the probe kernel KVMUsable relies on under TCG,
// which every qemu has: it must get to its panic, or KVMUsable would call
// every KVM unusable. KVMUsable must also say no, and why, for a qemu that
// fails.
func TestKVMProbe(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		testkit.Skip(t, "no qemu-system-x86_64 (apt-get install qemu-system-x86)")
	}
	kernel, _, err := findKernel("")
	if err != nil {
		testkit.Skip(t, "no guest kernel: ", err)
	}
	if err := probe(qemu, "tcg", kernel); err != nil {
		t.Fatal(err)
	}
	// (KVMUsable itself runs before every guest: v2guest logs its answer.)
	if ok, why := KVMUsable("/bin/false", ""); ok || why == "" {
		t.Errorf("KVMUsable with a qemu that fails = %v %q", ok, why)
	}
}
