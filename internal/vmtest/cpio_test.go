package vmtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// cpioEntry is one parsed newc entry.
type cpioEntry struct {
	name           string
	mode           uint64
	nlink          uint64
	rmajor, rminor uint64
	data           []byte
}

// parseNewc reads a newc archive strictly: magic, hex fields, the 4-byte
// alignment of name and data, and the trailer at the end.
func parseNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	align := func() {
		for off%4 != 0 {
			if b[off] != 0 {
				t.Fatalf("non-zero padding at %d", off)
			}
			off++
		}
	}
	for {
		if len(b)-off < 110 {
			t.Fatalf("truncated header at %d", off)
		}
		h := b[off : off+110]
		if string(h[:6]) != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) uint64 {
			v, err := strconv.ParseUint(string(h[6+8*i:6+8*i+8]), 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %v", i, off, err)
			}
			return v
		}
		e := cpioEntry{mode: field(1), nlink: field(4), rmajor: field(9), rminor: field(10)}
		size, nameSize := int(field(6)), int(field(11))
		if field(2) != 0 || field(3) != 0 || field(12) != 0 {
			t.Errorf("uid, gid and check must be 0")
		}
		off += 110
		name := b[off : off+nameSize]
		if name[len(name)-1] != 0 {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		e.name = string(name[:len(name)-1])
		off += nameSize
		align()
		e.data = b[off : off+size]
		off += size
		align()
		if e.name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, e)
	}
}

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	w := NewCPIOWriter(&buf)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.AddDir("dev", 0o755))
	must(w.AddCharDev("/dev/console", 0o600, 5, 1))
	must(w.AddFile("init", 0o755, []byte("#!/bin/sh\necho hi\n")))
	must(w.AddDir("modules", 0o755))
	must(w.AddFile("modules/a.ko", 0o644, []byte("abc"))) // odd sizes exercise padding
	must(w.AddFile("empty", 0o644, nil))
	if err := w.AddFile("init", 0o755, nil); err == nil {
		t.Error("a duplicate entry was accepted")
	}
	if err := w.AddFile("nodir/x", 0o644, nil); err == nil {
		t.Error("an entry before its directory was accepted")
	}
	must(w.Close())
	if err := w.AddDir("late", 0o755); err == nil {
		t.Error("an entry after Close was accepted")
	}

	got := parseNewc(t, buf.Bytes())
	want := []cpioEntry{
		{name: "dev", mode: modeDir | 0o755, nlink: 2},
		{name: "dev/console", mode: modeChar | 0o600, nlink: 1, rmajor: 5, rminor: 1},
		{name: "init", mode: modeReg | 0o755, nlink: 1, data: []byte("#!/bin/sh\necho hi\n")},
		{name: "modules", mode: modeDir | 0o755, nlink: 2},
		{name: "modules/a.ko", mode: modeReg | 0o644, nlink: 1, data: []byte("abc")},
		{name: "empty", mode: modeReg | 0o644, nlink: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.name != w.name || g.mode != w.mode || g.nlink != w.nlink || g.rmajor != w.rmajor ||
			g.rminor != w.rminor || !bytes.Equal(g.data, w.data) {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}

	// The archive also extracts with GNU cpio where it is installed (it is
	// on Debian hosts with a kernel package: initramfs-tools needs it).
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Log("no cpio command; skipping the extraction check")
		return
	}
	dir := t.TempDir()
	var regular bytes.Buffer // without the device node: extracting one needs root
	rw := NewCPIOWriter(&regular)
	must(rw.AddDir("modules", 0o755))
	must(rw.AddFile("modules/a.ko", 0o644, []byte("abc")))
	must(rw.AddFile("init", 0o755, []byte("#!/bin/sh\n")))
	must(rw.Close())
	cmd := exec.Command(cpio, "-i", "-d", "--quiet", "-H", "newc")
	cmd.Dir, cmd.Stdin = dir, &regular
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules/a.ko")); err != nil || string(b) != "abc" {
		t.Errorf("extracted modules/a.ko = %q, %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "init")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("extracted init: %v, %v", st, err)
	}
}
