package vmtest

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// depFixture is the shape of Debian 12's modules.dep for 9p (all
// transitive dependencies on each line, in no order Resolve relies on).
const depFixture = `kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/net/veth.ko.xz:
kernel/drivers/char/hw_random/virtio-rng.ko.zst: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
`

func TestResolveModules(t *testing.T) {
	deps, err := ParseModuleDeps(strings.NewReader(depFixture), nil)
	if err != nil {
		t.Fatal(err)
	}
	order, err := deps.Resolve("virtio_pci", "9pnet_virtio", "9p")
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, f := range order {
		if _, dup := pos[f]; dup {
			t.Errorf("%s listed twice in %v", f, order)
		}
		pos[f] = i
	}
	if len(order) != 10 {
		t.Errorf("got %d modules, want the 10 of the fixture: %v", len(order), order)
	}
	for file, needs := range deps.deps {
		if _, loaded := pos[file]; !loaded {
			continue
		}
		for _, d := range needs {
			if pos[d] > pos[file] {
				t.Errorf("%s is loaded after %s, which needs it: %v", d, file, order)
			}
		}
	}
	if order[len(order)-1] != "kernel/fs/9p/9p.ko" {
		t.Errorf("9p.ko should come last (nothing needs it): %v", order)
	}

	// Dashes and underscores name the same module; compressed files count.
	if got, err := deps.Resolve("virtio-rng"); err != nil || len(got) != 3 || !strings.HasSuffix(got[2], "virtio-rng.ko.zst") {
		t.Errorf("Resolve(virtio-rng) = %v, %v", got, err)
	}
	if _, err := deps.Resolve("no_such_module"); err == nil {
		t.Error("an unknown module resolved")
	}

	// A built-in module is skipped, not an error.
	withBuiltin, err := ParseModuleDeps(strings.NewReader(depFixture),
		strings.NewReader("kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/9p/9p.ko\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := withBuiltin.Resolve("virtio_pci", "9p", "9pnet_virtio")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got, "kernel/fs/9p/9p.ko") || slices.Contains(got, "kernel/drivers/virtio/virtio_pci.ko") {
		t.Errorf("built-in modules were listed: %v", got)
	}
	if len(got) != 4 { // 9pnet, virtio, virtio_ring, 9pnet_virtio
		t.Errorf("Resolve with built-ins = %v", got)
	}

	cyclic, err := ParseModuleDeps(strings.NewReader("a.ko: b.ko\nb.ko: a.ko\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cyclic.Resolve("a"); err == nil {
		t.Error("a dependency cycle resolved")
	}
	if _, err := ParseModuleDeps(strings.NewReader("no colon here\n"), nil); err == nil {
		t.Error("a malformed modules.dep parsed")
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/fs/9p/9p.ko":                              "9p",
		"kernel/net/9p/9pnet_virtio.ko.xz":                "9pnet_virtio",
		"kernel/drivers/char/hw_random/virtio-rng.ko.zst": "virtio_rng",
		"veth.ko.gz": "veth",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadModule(t *testing.T) {
	dir := t.TempDir()
	elf := []byte("\x7fELF fake module contents")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(elf)
	zw.Close()
	files := map[string]string{"plain": write("a.ko", elf), "gzip": write("b.ko.gz", gz.Bytes())}
	for _, tool := range []string{"xz", "zstd"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			t.Logf("no %s command: its format is not checked", tool)
			continue
		}
		ext := map[string]string{"xz": ".xz", "zstd": ".zst"}[tool]
		src := write("c-"+tool+".ko", elf)
		if out, err := exec.Command(path, "-q", src).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", tool, err, out)
		}
		files[tool] = src + ext
	}
	for kind, p := range files {
		got, err := ReadModule(p)
		if err != nil || !bytes.Equal(got, elf) {
			t.Errorf("ReadModule(%s, %s) = %q, %v", kind, p, got, err)
		}
	}
	if _, err := ReadModule(write("d.ko.lz4", elf)); err == nil {
		t.Error("an unknown compression was accepted")
	}
	if _, err := ReadModule(filepath.Join(dir, "missing.ko.xz")); err == nil {
		t.Error("a missing file was read")
	}
}
