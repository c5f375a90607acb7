package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/owl-project/owl/internal/sandbox/probereport"
)

// checkTmp checks what a probe saw of /tmp: a disk of its own holding mb
// MiB (and not much more), nosuid, nodev, mode 1777 as on Lambda.
func checkTmp(t testing.TB, f probereport.Facts, mb int) {
	t.Helper()
	if lo, hi := uint64(mb)<<20, uint64(mb+4)<<20; f.TmpBytes < lo || f.TmpBytes > hi {
		t.Errorf("/tmp can take %d bytes, want %d MiB (at most 4 MiB more)", f.TmpBytes, mb)
	}
	fsType, opts, _ := strings.Cut(f.TmpMount, " ")
	if fsType != "ext4" || !strings.Contains(","+opts+",", ",nosuid,") || !strings.Contains(","+opts+",", ",nodev,") ||
		!strings.HasPrefix(opts, "rw,") {
		t.Errorf("/tmp is mounted %q, want ext4 rw,nosuid,nodev", f.TmpMount)
	}
	if f.TmpMode != 0o1777 {
		t.Errorf("/tmp has mode %o, want 1777", f.TmpMode)
	}
}

// loopImage is the image a /tmp disk's loop device is bound to now: each
// image has a name of its own, and a device released and bound again has
// another ("" once released: the file is gone, or, while the device is
// being cleared, reading it fails with ENODEV).
func loopImage(t testing.TB, d *tmpDisk) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/loop/backing_file", unix.Major(d.dev), unix.Minor(d.dev)))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// tmpReleased waits until d's loop device no longer holds the image it
// held when image was read.
func tmpReleased(t testing.TB, d *tmpDisk, image string) {
	t.Helper()
	if image == "" || !strings.Contains(image, filepath.Join(tmpDisksDir, "")) {
		t.Fatalf("/tmp's loop device is bound to %q, not to an image of %s", image, tmpDisksDir)
	}
	waitFor(t, "the loop device of "+image+" released", func() bool { return loopImage(t, d) != image })
}

// TestTmpDisk: /tmp is disk, not memory, as on Lambda. A 128 MB sandbox
// writes 500 MB to its default 512 MB /tmp without being killed; writing
// past 512 MB fails with ENOSPC; the next sandbox finds an empty /tmp,
// not the previous one's files; and a destroyed sandbox's loop device is
// released, no image or mount remains.
func TestTmpDisk(t *testing.T) {
	m := newTestManagerWith(t, Config{TmpSpares: 1})
	code := probeCodeDir(t)
	type disk struct {
		d     *tmpDisk
		image string
	}
	var disks []disk

	run := func(mb, limitMB int, marker string) (entries, result string, sb *Sandbox) {
		spec := testSpec(t, code, "fill", strconv.Itoa(mb), marker)
		spec.MemoryMB, spec.TmpMB = limitMB, 0 // the default, 512
		sb = create(t, m, spec)
		disks = append(disks, disk{sb.tmp, loopImage(t, sb.tmp)})
		r := bufio.NewReader(sb.Output())
		entries = readLine(t, r, sb.Output())
		// Writing 500 MB at 128/1769 of a CPU takes a while on a loaded
		// machine: a deadline for the property, not the speed.
		sb.Output().SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("fill %d: %v (got %q)", mb, err, line)
		}
		return entries, strings.TrimSpace(line), sb
	}

	entries, result, a := run(500, 128, "a-secret")
	if entries != "tmp-entries 0" {
		t.Errorf("a new /tmp holds %q, want nothing", entries)
	}
	if result != "filled" {
		t.Fatalf("a 128 MB sandbox writing 500 MB to /tmp: %q, want filled", result)
	}
	select {
	case <-a.Done():
		t.Fatalf("the sandbox died after filling /tmp: %v (OOM killed %v)", a.ExitError(), a.OOMKilled())
	default:
	}
	if a.OOMKilled() {
		t.Error("writing to /tmp counted against memory: OOM kill")
	}
	if err := a.Destroy(); err != nil {
		t.Fatal(err)
	}

	entries, result, b := run(600, 128, "b-secret")
	if entries != "tmp-entries 0" {
		t.Errorf("the next sandbox's /tmp holds %q, want nothing of the previous one", entries)
	}
	var n int
	if _, err := fmt.Sscanf(result, "fill failed after %d MB:", &n); err != nil || !strings.HasSuffix(result, "no space left on device") {
		t.Fatalf("writing 600 MB to a 512 MB /tmp: %q, want ENOSPC", result)
	} else if n < 511 {
		t.Errorf("ENOSPC after %d MB, want it past 511 MB", n)
	}
	waitDone(t, b)
	if b.OOMKilled() {
		t.Error("writing to /tmp counted against memory: OOM kill")
	}
	if err := b.Destroy(); err != nil {
		t.Fatal(err)
	}

	dir := m.tmp.dir
	for _, d := range disks {
		tmpReleased(t, d.d, d.image)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 || ents[0].Name() != "template-512.img" {
		t.Errorf("%s holds %v (%v), want the 512 MB template alone", dir, ents, err)
	}
	assertNoMounts(t, dir)
	spare, err := m.tmp.take(DefaultTmpMB) // made ahead
	if err != nil {
		t.Fatal(err)
	}
	image := loopImage(t, spare)
	m.tmp.release(spare)
	tmpReleased(t, spare, image)
}

// TestTmpDiskSizes: a /tmp of each size holds that size, made from its
// size's template or a spare, and closing one never attached releases its
// loop device at once; closing leaves no image.
func TestTmpDiskSizes(t *testing.T) {
	requireSandboxes(t)
	dir := filepath.Join(t.TempDir(), tmpDisksDir, "test")
	mkfs, err := findMkfs()
	if err != nil {
		t.Fatal(err)
	}
	disks, err := newTmpDisks(dir, mkfs, 1, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range []int{1, 512, 1000, MaxTmpMB, 512, 1000} {
		d, err := disks.take(mb)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.unwrittenBytes(); got < int64(mb)<<20 || got > int64(mb+4)<<20 {
			t.Errorf("a %d MB /tmp can take %d bytes", mb, got)
		}
		image := loopImage(t, d)
		disks.release(d)
		tmpReleased(t, d, image)
	}
	if err := disks.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s left after close (%v)", filepath.Dir(dir), err)
	}
}
