package codezip

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ent is one entry of a test zip. By default it is deflated with Unix mode
// bits (mode 0 means a Windows-made entry without them). raw, if set, is
// written as is with CreateRaw, data being the already-compressed body.
type ent struct {
	name string
	body string
	mode fs.FileMode
	raw  *zip.FileHeader
	data []byte
}

func file(name, body string, mode fs.FileMode) ent { return ent{name: name, body: body, mode: mode} }
func dir(name string) ent                          { return ent{name: name, mode: fs.ModeDir | 0o755} }
func link(name, target string) ent {
	return ent{name: name, body: target, mode: fs.ModeSymlink | 0o777}
}

func mkzip(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		if e.raw != nil {
			w, err := zw.CreateRaw(e.raw)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(e.data); err != nil {
				t.Fatal(err)
			}
			continue
		}
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func deflate(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lying is an entry whose headers claim `claimed` bytes but that inflates to
// `real` zero bytes (with a CRC that matches the real contents).
func lying(t testing.TB, name string, claimed uint64, real int) ent {
	body := make([]byte, real)
	comp := deflate(t, body)
	return ent{raw: &zip.FileHeader{
		Name: name, Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(body),
		CompressedSize64: uint64(len(comp)), UncompressedSize64: claimed,
	}, data: comp}
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func perm(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func TestExtractNormal(t *testing.T) {
	zb := mkzip(t,
		file("bootstrap", "#!/bin/sh\necho hi\n", 0o755),
		dir("lib/"),
		file("lib/handler.py", "def handler(e, c): pass\n", 0o600),
		file("lib/sub/deep/data.txt", "deep", 0o644), // its directories are implied
		file("bin/tool", "tool", fs.ModeSetuid|fs.ModeSticky|0o777),
		file("windows.txt", "made on Windows", 0), // no Unix mode bits
		file("readonly-exec", "x", 0o500),
		link("current", "lib/sub"),
		link("lib/up", "../bootstrap"),
	)
	parent := t.TempDir()
	dest := filepath.Join(parent, "code")
	info, err := Extract(zb, dest, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, parent); len(got) != 1 || got[0] != "code" {
		t.Errorf("parent holds %v, want only code", got)
	}

	if info.Sha256 != sha256.Sum256(zb) || info.ZippedSize != int64(len(zb)) {
		t.Errorf("Sha256/ZippedSize wrong: %x %d", info.Sha256, info.ZippedSize)
	}
	if len(info.Entries) != 9 {
		t.Errorf("%d entries, want 9", len(info.Entries))
	}
	var want int64
	for _, s := range []string{"#!/bin/sh\necho hi\n", "def handler(e, c): pass\n", "deep", "tool", "made on Windows", "x", "lib/sub", "../bootstrap"} {
		want += int64(len(s))
	}
	if info.UnzippedSize != want {
		t.Errorf("UnzippedSize = %d, want %d", info.UnzippedSize, want)
	}

	wantModes := map[string]fs.FileMode{
		".":                     fs.ModeDir | 0o755,
		"bootstrap":             0o755,
		"lib":                   fs.ModeDir | 0o755,
		"lib/handler.py":        0o644, // readable by the sandbox user
		"lib/sub":               fs.ModeDir | 0o755,
		"lib/sub/deep":          fs.ModeDir | 0o755,
		"lib/sub/deep/data.txt": 0o644,
		"bin":                   fs.ModeDir | 0o755,
		"bin/tool":              0o755, // no setuid, sticky or world-write
		"windows.txt":           0o644,
		"readonly-exec":         0o755,
		"current":               fs.ModeSymlink | 0o777,
		"lib/up":                fs.ModeSymlink | 0o777,
	}
	for name, m := range wantModes {
		if got := perm(t, filepath.Join(dest, name)); got != m {
			t.Errorf("%s: mode %v, want %v", name, got, m)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dest, "current/deep/data.txt")); err != nil || string(b) != "deep" {
		t.Errorf("reading through link: %q, %v", b, err)
	}
	if tg, err := os.Readlink(filepath.Join(dest, "lib/up")); err != nil || tg != "../bootstrap" {
		t.Errorf("lib/up -> %q, %v", tg, err)
	}

	// Info answers the questions a caller asks before accepting code.
	for _, c := range []struct {
		name   string
		follow bool
		ok     bool
		mode   fs.FileMode
	}{
		{"bootstrap", true, true, 0o755},
		{"lib/up", false, true, fs.ModeSymlink | 0o777},
		{"lib/up", true, true, 0o755},               // leads to bootstrap
		{"lib/sub", true, true, fs.ModeDir | 0o755}, // implied
		{"current/deep/data.txt", true, true, 0o644},
		{"current", false, true, fs.ModeSymlink | 0o777},
		{"missing", true, false, 0},
		{"bootstrap/x", true, false, 0},
		{"../etc/passwd", true, false, 0},
		{"/bootstrap", true, false, 0},
	} {
		var e Entry
		var ok bool
		if c.follow {
			e, ok = info.Stat(c.name)
		} else {
			e, ok = info.Lstat(c.name)
		}
		if ok != c.ok || e.Mode != c.mode {
			t.Errorf("stat %q (follow %v) = %+v, %v; want mode %v, %v", c.name, c.follow, e, ok, c.mode, c.ok)
		}
	}

	// Inspect agrees, and writes nothing.
	in, err := Inspect(zb, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if in.Sha256 != info.Sha256 || in.UnzippedSize != info.UnzippedSize || len(in.Entries) != len(info.Entries) {
		t.Errorf("Inspect = %+v, Extract = %+v", in, info)
	}
}

// TestAccepted covers zips that look odd but are safe.
func TestAccepted(t *testing.T) {
	cases := []struct {
		name  string
		zip   []ent
		check func(t *testing.T, info Info, dest string)
	}{
		{"empty zip", nil, func(t *testing.T, info Info, dest string) {
			if len(info.Entries) != 0 || info.UnzippedSize != 0 {
				t.Errorf("info = %+v", info)
			}
			if got := listDir(t, dest); len(got) != 0 {
				t.Errorf("dest holds %v", got)
			}
		}},
		{"link to dot then a file through it", []ent{link("a", "."), file("a/x", "x", 0o644)},
			func(t *testing.T, info Info, dest string) {
				// a/x is written where the link leads: x at the root.
				if b, err := os.ReadFile(filepath.Join(dest, "x")); err != nil || string(b) != "x" {
					t.Errorf("x: %q, %v", b, err)
				}
				if e, ok := info.Stat("x"); !ok || e.Name != "a/x" {
					t.Errorf("Stat(x) = %+v, %v", e, ok)
				}
				if _, ok := info.Stat("a/a/a/x"); !ok {
					t.Error("Stat(a/a/a/x) not found")
				}
			}},
		{"link to dot, file first", []ent{file("x", "x", 0o644), link("a", ".")}, nil},
		{"dangling link inside", []ent{link("l", "not/there")}, nil},
		{"dangling link that climbs back", []ent{link("d/l", "../missing/../f")}, nil},
		{"link to a link to a directory", []ent{dir("real/"), link("l1", "real"), link("l2", "l1/..")}, nil},
		{"directory entry after its contents", []ent{file("a/b/c", "c", 0o644), dir("a/b/"), dir("a/")}, nil},
		{"directory by mode without slash", []ent{{name: "d", mode: fs.ModeDir | 0o700}, file("d/f", "f", 0o644)},
			func(t *testing.T, info Info, dest string) {
				if m := perm(t, filepath.Join(dest, "d")); m != fs.ModeDir|0o755 {
					t.Errorf("d: %v", m)
				}
			}},
		{"dots in names", []ent{file("..a", "", 0o644), file("a..", "", 0o644), file(".hidden/...", "", 0o644)}, nil},
		{"colon not as drive", []ent{file("ab:c", "", 0o644), file("a/C:x", "", 0o644)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			zb := mkzip(t, c.zip...)
			if _, err := Inspect(zb, DefaultLimits()); err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			dest := filepath.Join(t.TempDir(), "code")
			info, err := Extract(zb, dest, DefaultLimits())
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if c.check != nil {
				c.check(t, info, dest)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	small := Limits{MaxZipped: 1 << 20, MaxUnzipped: 1 << 20, MaxFiles: 3}
	five := strings.Repeat("\x00", 5<<20)
	good := mkzip(t, file("a", "aaaa", 0o644), file("b", "bbbb", 0o644))
	crc := func(name string, method uint16, body, stored []byte, sum uint32) ent {
		return ent{raw: &zip.FileHeader{Name: name, Method: method, CRC32: sum,
			CompressedSize64: uint64(len(stored)), UncompressedSize64: uint64(len(body))}, data: stored}
	}
	encrypted := crc("secret", zip.Store, []byte("x"), []byte("x"), crc32.ChecksumIEEE([]byte("x")))
	encrypted.raw.Flags = 0x1
	linkDir := ent{raw: &zip.FileHeader{Name: "l/", Method: zip.Store}}
	linkDir.raw.SetMode(fs.ModeSymlink | 0o777)

	cases := []struct {
		name  string
		zip   []byte
		lim   Limits
		kind  error
		entry string // the entry the error must name, if any
	}{
		{"not a zip", []byte("this is not a zip file"), DefaultLimits(), ErrNotZip, ""},
		{"no bytes", nil, DefaultLimits(), ErrNotZip, ""},
		{"truncated", good[:len(good)-10], DefaultLimits(), ErrNotZip, ""},
		{"zipped too large", mkzip(t, file("big", five, 0o644)), Limits{MaxZipped: 100, MaxUnzipped: 10 << 20, MaxFiles: 10}, ErrZippedTooLarge, ""},
		{"unzipped too large", mkzip(t, file("zeros", five, 0o644)), small, ErrUnzippedTooLarge, "zeros"},
		{"unzipped too large in sum", mkzip(t, file("a", five[:600<<10], 0o644), file("b", five[:600<<10], 0o644)), small, ErrUnzippedTooLarge, "b"},
		// Headers claim 10 bytes, the stream inflates to 5 MB: the
		// reader stops at the claimed size, so it is a corrupt zip and
		// nothing past 10 bytes is ever written.
		{"bomb with lying size", mkzip(t, file("ok", "fine", 0o644), lying(t, "bomb", 10, 5<<20)), small, ErrNotZip, "bomb"},
		{"lying size, claims more", mkzip(t, lying(t, "short", 1000, 10)), small, ErrNotZip, "short"},
		{"bad checksum", mkzip(t, file("ok", "fine", 0o644), crc("bad", zip.Store, []byte("hello"), []byte("hello"), 12345)), small, ErrNotZip, "bad"},
		{"bad deflate stream", mkzip(t, crc("bad", zip.Deflate, []byte("hello"), []byte("\xff\xff\xff\xff"), 1)), small, ErrNotZip, "bad"},
		{"unsupported method", mkzip(t, crc("bz", 12, []byte("x"), []byte("x"), 0)), small, ErrNotZip, "bz"},
		{"encrypted", mkzip(t, encrypted), small, ErrNotZip, "secret"},
		{"directory with contents", mkzip(t, ent{raw: &zip.FileHeader{Name: "d/", Method: zip.Store, UncompressedSize64: 5}}), small, ErrNotZip, "d/"},
		{"too many files", mkzip(t, file("1", "", 0), file("2", "", 0), file("3", "", 0), file("4", "", 0)), small, ErrTooManyFiles, ""},
		{"too many implied directories", mkzip(t, file("a/b/c/d/e", "", 0)), small, ErrTooManyFiles, "a/b/c/d/e"},

		{"dot dot", mkzip(t, file("../evil", "x", 0o644)), small, ErrUnsafePath, "../evil"},
		{"dot dot inside", mkzip(t, file("a/../../evil", "x", 0o644)), small, ErrUnsafePath, "a/../../evil"},
		{"dot dot that stays inside", mkzip(t, file("a/../b", "x", 0o644)), small, ErrUnsafePath, "a/../b"},
		{"absolute", mkzip(t, file("/etc/evil", "x", 0o644)), small, ErrUnsafePath, "/etc/evil"},
		{"absolute directory", mkzip(t, dir("/tmp/")), small, ErrUnsafePath, "/tmp/"},
		{"drive letter backslash", mkzip(t, file(`C:\evil`, "x", 0o644)), small, ErrUnsafePath, `C:\evil`},
		{"drive letter slash", mkzip(t, file("C:/evil", "x", 0o644)), small, ErrUnsafePath, "C:/evil"},
		{"drive letter relative", mkzip(t, file("c:evil", "x", 0o644)), small, ErrUnsafePath, "c:evil"},
		{"backslash dot dot", mkzip(t, file(`a\..\..\evil`, "x", 0o644)), small, ErrUnsafePath, `a\..\..\evil`},
		{"backslash leading", mkzip(t, file(`\evil`, "x", 0o644)), small, ErrUnsafePath, `\evil`},
		{"NUL", mkzip(t, file("a\x00/../../evil", "x", 0o644)), small, ErrUnsafePath, "a\x00/../../evil"},
		{"dot element", mkzip(t, file("./a", "x", 0o644)), small, ErrUnsafePath, "./a"},
		{"empty element", mkzip(t, file("a//b", "x", 0o644)), small, ErrUnsafePath, "a//b"},
		{"root directory entry", mkzip(t, dir("./")), small, ErrUnsafePath, "./"},
		{"empty name", mkzip(t, file("", "x", 0o644)), small, ErrUnsafePath, ""},
		{"name too long", mkzip(t, file(strings.Repeat("n", 256), "x", 0o644)), small, ErrUnsafePath, strings.Repeat("n", 256)},
		{"fifo", mkzip(t, ent{name: "fifo", mode: fs.ModeNamedPipe | 0o644}), small, ErrUnsafePath, "fifo"},
		{"device", mkzip(t, ent{name: "sda", mode: fs.ModeDevice | 0o644}), small, ErrUnsafePath, "sda"},

		{"link to absolute", mkzip(t, link("passwd", "/etc/passwd")), small, ErrUnsafePath, "passwd"},
		{"link up two", mkzip(t, link("a/l", "../../x")), small, ErrUnsafePath, "a/l"},
		{"link to parent", mkzip(t, link("a", "..")), small, ErrUnsafePath, "a"},
		{"link through a dangling directory", mkzip(t, link("l", "missing/../../x")), small, ErrUnsafePath, "l"},
		{"link chain that escapes", mkzip(t, link("b", "."), link("a", "b/..")), small, ErrUnsafePath, "a"},
		{"link chain, deeper", mkzip(t, link("d/b", "."), link("d/b2", "b/b/b"), link("d/a", "b2/../..")), small, ErrUnsafePath, "d/a"},
		{"link with a backslash", mkzip(t, link("l", `..\..\x`)), small, ErrUnsafePath, "l"},
		{"link to a drive", mkzip(t, link("l", `C:/x`)), small, ErrUnsafePath, "l"},
		{"link empty", mkzip(t, link("l", "")), small, ErrUnsafePath, "l"},
		{"link loop", mkzip(t, link("a", "b"), link("b", "a")), small, ErrUnsafePath, "a"},
		{"link to itself", mkzip(t, link("a", "a/x")), small, ErrUnsafePath, "a"},
		{"link as a directory", mkzip(t, linkDir), small, ErrUnsafePath, "l/"},
		{"file under an escaping link", mkzip(t, link("up", ".."), file("up/evil", "x", 0o644)), small, ErrUnsafePath, "up/evil"},
		{"link through a file", mkzip(t, file("f", "", 0o644), link("l", "f/../..")), small, ErrUnsafePath, "l"},

		{"duplicate file", mkzip(t, file("a", "1", 0o644), file("a", "2", 0o644)), small, ErrUnsafePath, "a"},
		{"duplicate directory", mkzip(t, dir("d/"), dir("d/")), small, ErrUnsafePath, "d/"},
		{"file and directory", mkzip(t, dir("a/"), file("a", "x", 0o644)), small, ErrUnsafePath, "a"},
		{"file then entry under it", mkzip(t, file("a", "x", 0o644), file("a/b", "x", 0o644)), small, ErrUnsafePath, "a/b"},
		{"implied directory then file", mkzip(t, file("a/b", "x", 0o644), file("a", "x", 0o644)), small, ErrUnsafePath, "a"},
		{"link and file", mkzip(t, link("a", "b"), file("a", "x", 0o644)), small, ErrUnsafePath, "a"},
		{"same file through a link", mkzip(t, file("x", "1", 0o644), link("a", "."), file("a/x", "2", 0o644)), small, ErrUnsafePath, "a/x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, ierr := Inspect(c.zip, c.lim)
			parent := t.TempDir()
			dest := filepath.Join(parent, "code")
			_, xerr := Extract(c.zip, dest, c.lim)
			_, ferr := InspectAt(zipFile(t, c.zip), int64(len(c.zip)), c.lim)
			for fn, err := range map[string]error{"Inspect": ierr, "Extract": xerr, "InspectAt": ferr} {
				if !errors.Is(err, c.kind) {
					t.Fatalf("%s: error %v, want %v", fn, err, c.kind)
				}
				var ze *Error
				if !errors.As(err, &ze) {
					t.Fatalf("%s: %T is not *Error", fn, err)
				}
				if ze.Entry != c.entry {
					t.Errorf("%s: Entry = %q, want %q (%v)", fn, ze.Entry, c.entry, err)
				}
				if c.kind == ErrUnsafePath && !strings.Contains(ze.Message(), fmt.Sprintf("%q", c.entry)) {
					t.Errorf("%s: Message %q does not name %q", fn, ze.Message(), c.entry)
				}
			}
			if got := listDir(t, parent); len(got) != 0 {
				t.Errorf("Extract left %v behind", got)
			}
		})
	}
}

func TestMessages(t *testing.T) {
	lim := Limits{MaxZipped: 1000, MaxUnzipped: 2000, MaxFiles: 1}
	big := mkzip(t, file("f", strings.Repeat("x", 1500), 0o644), file("g", "", 0))
	_, err := Inspect(append(big, make([]byte, 1000)...), lim)
	checkMessage(t, err, ErrZippedTooLarge, "Zipped size must be smaller than 1000 bytes")
	_, err = Inspect(mkzip(t, file("f", strings.Repeat("x", 2001), 0o644)), lim)
	checkMessage(t, err, ErrUnzippedTooLarge, "Unzipped size must be smaller than 2000 bytes")
	_, err = Inspect(big, lim)
	checkMessage(t, err, ErrTooManyFiles, "Zip file must contain at most 1 entries")
	_, err = Inspect([]byte("nope"), lim)
	checkMessage(t, err, ErrNotZip, "Could not unzip uploaded file. Please check your file, then try to upload again.")
	_, err = Inspect(mkzip(t, file("../evil", "", 0)), lim)
	checkMessage(t, err, ErrUnsafePath, `Could not unzip uploaded file: entry "../evil" escapes the code root.`)

	d := DefaultLimits()
	for _, c := range []struct {
		e    *Error
		want string
	}{
		{&Error{Kind: ErrZippedTooLarge, Limit: d.MaxZipped}, "Zipped size must be smaller than 52428800 bytes"},
		{&Error{Kind: ErrUnzippedTooLarge, Limit: d.MaxUnzipped}, "Unzipped size must be smaller than 262144000 bytes"},
	} {
		if got := c.e.Message(); got != c.want {
			t.Errorf("Message = %q, want %q", got, c.want)
		}
	}
}

func checkMessage(t *testing.T, err, kind error, want string) {
	t.Helper()
	var ze *Error
	if !errors.Is(err, kind) || !errors.As(err, &ze) {
		t.Fatalf("error %v, want %v", err, kind)
	}
	if got := ze.Message(); got != want {
		t.Errorf("Message = %q, want %q", got, want)
	}
}

func TestCauseIsKept(t *testing.T) {
	zb := mkzip(t, lying(t, "bomb", 10, 1000))
	_, err := Inspect(zb, DefaultLimits())
	if !errors.Is(err, ErrNotZip) || !errors.Is(err, zip.ErrFormat) {
		t.Errorf("error %v should wrap ErrNotZip and zip.ErrFormat", err)
	}
}

// TestCountsRealBytes drives the counter directly: with Go's reader, which
// itself stops at the declared size, it is a second line of defence that no
// well-formed zip can reach through Inspect or Extract.
func TestCountsRealBytes(t *testing.T) {
	zb := mkzip(t, file("a", strings.Repeat("a", 3000), 0o644), file("b", strings.Repeat("b", 3000), 0o644))
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatal(err)
	}
	lim := Limits{MaxZipped: 1 << 20, MaxUnzipped: 5000, MaxFiles: 10}
	var written int64
	var out bytes.Buffer
	buf := make([]byte, 512)
	if err := copyEntry(&out, zr.File[0], &written, lim, buf); err != nil || written != 3000 {
		t.Fatalf("first entry: %v, %d written", err, written)
	}
	err = copyEntry(&out, zr.File[1], &written, lim, buf)
	if !errors.Is(err, ErrUnzippedTooLarge) {
		t.Fatalf("second entry: %v", err)
	}
	if written > lim.MaxUnzipped || out.Len() > int(lim.MaxUnzipped) {
		t.Errorf("wrote %d (%d counted) past the %d limit", out.Len(), written, lim.MaxUnzipped)
	}
}

func TestExtractDestination(t *testing.T) {
	zb := mkzip(t, file("bootstrap", "x", 0o755))

	t.Run("non-empty directory", func(t *testing.T) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "code")
		os.Mkdir(dest, 0o755)
		os.WriteFile(filepath.Join(dest, "keep"), []byte("mine"), 0o644)
		_, err := Extract(zb, dest, DefaultLimits())
		var ze *Error
		if !errors.Is(err, fs.ErrExist) || errors.As(err, &ze) {
			t.Fatalf("error %v: want fs.ErrExist, not a refusal", err)
		}
		if got := listDir(t, dest); len(got) != 1 || got[0] != "keep" {
			t.Errorf("dest holds %v", got)
		}
		if got := listDir(t, parent); len(got) != 1 {
			t.Errorf("parent holds %v", got)
		}
	})
	t.Run("empty directory", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "code")
		os.Mkdir(dest, 0o700)
		if _, err := Extract(zb, dest, DefaultLimits()); err != nil {
			t.Fatal(err)
		}
		if got := listDir(t, dest); len(got) != 1 || got[0] != "bootstrap" {
			t.Errorf("dest holds %v", got)
		}
		if m := perm(t, dest); m != fs.ModeDir|0o755 {
			t.Errorf("dest mode %v", m)
		}
	})
	t.Run("file", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "code")
		os.WriteFile(dest, nil, 0o644)
		if _, err := Extract(zb, dest, DefaultLimits()); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("link to an empty directory", func(t *testing.T) {
		parent := t.TempDir()
		os.Mkdir(filepath.Join(parent, "elsewhere"), 0o755)
		dest := filepath.Join(parent, "code")
		os.Symlink("elsewhere", dest)
		if _, err := Extract(zb, dest, DefaultLimits()); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("missing parent", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "no", "code")
		if _, err := Extract(zb, dest, DefaultLimits()); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("trailing slash", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "code") + "/"
		if _, err := Extract(zb, dest, DefaultLimits()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestInvalidLimits(t *testing.T) {
	zb := mkzip(t)
	for _, lim := range []Limits{{}, {MaxZipped: 1, MaxUnzipped: 1}, {MaxZipped: -1, MaxUnzipped: 1, MaxFiles: 1}} {
		_, err := Inspect(zb, lim)
		var ze *Error
		if err == nil || errors.As(err, &ze) {
			t.Errorf("limits %+v: error %v, want a plain error", lim, err)
		}
	}
}

// TestManyLinksStayCheap checks that chains of long link targets cost
// bounded work: the scan gives up instead of expanding them all.
func TestManyLinksStayCheap(t *testing.T) {
	long := strings.Repeat("./", 2000) + "x"
	ents := []ent{link("x", long)}
	for i := range 2000 {
		ents = append(ents, link(fmt.Sprintf("l%d", i), long))
	}
	zb := mkzip(t, ents...)
	_, err := Inspect(zb, Limits{MaxZipped: 1 << 30, MaxUnzipped: 1 << 30, MaxFiles: 1 << 20})
	if !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("error %v", err)
	}
}

func BenchmarkExtract(b *testing.B) {
	// ~5 MB zip of 200 files: half incompressible, half text.
	rng := rand.New(rand.NewPCG(1, 2))
	var ents []ent
	var size int64
	for i := range 200 {
		var body []byte
		if i%2 == 0 {
			body = make([]byte, 40<<10)
			for j := range body {
				body[j] = byte(rng.Uint32())
			}
		} else {
			body = []byte(strings.Repeat(fmt.Sprintf("line %d of some source code\n", i), 2000))
		}
		size += int64(len(body))
		ents = append(ents, file(fmt.Sprintf("pkg%d/mod%d.py", i%10, i), string(body), 0o644))
	}
	zb := mkzip(b, ents...)
	b.Logf("zip %d bytes, %d unzipped", len(zb), size)
	b.SetBytes(size)
	parent := b.TempDir()
	i := 0
	for b.Loop() {
		dest := filepath.Join(parent, fmt.Sprint(i))
		i++
		if _, err := Extract(zb, dest, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dest)
		b.StartTimer()
	}
}

func TestErrorString(t *testing.T) {
	for _, c := range []struct {
		e    *Error
		want string
	}{
		{&Error{Kind: ErrUnsafePath, Entry: "../x", Detail: "escapes the code root"}, `codezip: unsafe entry: entry "../x" escapes the code root`},
		{&Error{Kind: ErrZippedTooLarge, Limit: 10, Detail: "zip is 11 bytes"}, "codezip: zipped size too large: zip is 11 bytes"},
		{&Error{Kind: ErrNotZip, Err: zip.ErrFormat}, "codezip: not a readable zip: zip: not a valid zip file"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
}

// zipFile writes b to a temporary file, open for reading.
func zipFile(t testing.TB, b []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "code.zip")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestInspectAtIsInspect(t *testing.T) {
	z := mkzip(t, file("bootstrap", "#!/bin/sh\n", 0o755), dir("lib/"), file("lib/a.py", strings.Repeat("a", 100000), 0o644), link("l", "lib/a.py"))
	want, err := Inspect(z, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	got, err := InspectAt(zipFile(t, z), int64(len(z)), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got.Sha256 != sha256.Sum256(z) || got.Sha256 != want.Sha256 || got.ZippedSize != want.ZippedSize ||
		got.UnzippedSize != want.UnzippedSize || len(got.Entries) != len(want.Entries) {
		t.Errorf("InspectAt = %+v\nInspect = %+v", got, want)
	}
	if e, ok := got.Stat("l"); !ok || e.Name != "lib/a.py" {
		t.Errorf("Stat(l) through InspectAt's tree: %+v %v", e, ok)
	}
}
