package cli

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// zipEpoch is the modification time written for every entry, so that the same files give the
// same zip (and the same CodeSha256) whenever and wherever they are packaged.
var zipEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// loadPackage returns the deployment package for p: a directory is zipped in memory with
// zipDir, a file must be a non-empty zip archive and is sent as is. warn receives notes about
// what was left out.
func loadPackage(p string, warn func(string)) ([]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, pathErr(p, err)
	}
	if fi.IsDir() {
		b, files, err := zipDir(p, warn)
		if err != nil {
			return nil, err
		}
		if files == 0 {
			return nil, fmt.Errorf("%s: the directory has no files to deploy", p)
		}
		return b, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, pathErr(p, err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: not a directory or a zip archive (%v)", p, err)
	}
	if len(zr.File) == 0 {
		return nil, fmt.Errorf("%s: the zip archive is empty", p)
	}
	return b, nil
}

// pathErr renders an error about a path the user gave as "<path>: <reason>", the path as typed.
func pathErr(p string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", p, pe.Err)
	}
	return err
}

// zipEntry is one member of a package built from a directory.
type zipEntry struct {
	name   string      // slash-separated path inside the zip; directories end in "/"
	src    string      // file on disk, for regular files
	mode   fs.FileMode // ModeDir, ModeSymlink or permission bits
	target string      // link target, for symlinks
}

// zipDir zips the contents of dir (dir itself is not an entry, so dir/bootstrap becomes
// "bootstrap") and returns the archive and its number of regular files.
//
// The archive is deterministic: entries sorted by name, every timestamp zipEpoch, regular files
// 0755 when any execute bit is set (so bootstrap stays executable) and 0644 otherwise,
// directories 0755, fixed compression. Symlinks are stored as symlinks when they are relative
// and point inside dir — Lambda keeps them when it unpacks a function — and skipped with a
// warning otherwise, since an absolute or escaping target would not exist in the sandbox.
// Sockets, devices and pipes are skipped with a warning. Everything else, hidden files included,
// is packaged: the directory is the function.
func zipDir(dir string, warn func(string)) ([]byte, int, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, 0, pathErr(dir, err)
	}
	var entries []zipEntry
	files := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		switch t := d.Type(); {
		case t.IsDir():
			entries = append(entries, zipEntry{name: name + "/", mode: fs.ModeDir | 0o755})
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			perm := fs.FileMode(0o644)
			if info.Mode()&0o111 != 0 {
				perm = 0o755
			}
			entries = append(entries, zipEntry{name: name, src: p, mode: perm})
			files++
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if !linkStaysInside(name, target) {
				warn(fmt.Sprintf("skipping symlink %s -> %s: it points outside the package", name, target))
				return nil
			}
			entries = append(entries, zipEntry{name: name, mode: fs.ModeSymlink | 0o777, target: target})
		default:
			warn(fmt.Sprintf("skipping %s: not a regular file, directory or symlink", name))
		}
		return nil
	})
	if err != nil {
		return nil, 0, err // names the file that failed
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		if err := writeZipEntry(zw, e); err != nil {
			return nil, 0, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), files, nil
}

func writeZipEntry(zw *zip.Writer, e zipEntry) error {
	h := &zip.FileHeader{Name: e.name, Method: zip.Store, Modified: zipEpoch}
	h.SetMode(e.mode)
	switch {
	case e.mode.IsDir():
		_, err := zw.CreateHeader(h)
		return err
	case e.mode&fs.ModeSymlink != 0:
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, e.target)
		return err
	}
	h.Method = zip.Deflate
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("reading %s: %w", e.src, err)
	}
	return nil
}

// linkStaysInside reports whether a symlink at name (slash path inside the package) with the
// given target resolves to a path inside the package.
func linkStaysInside(name, target string) bool {
	target = filepath.ToSlash(target)
	if target == "" || path.IsAbs(target) {
		return false
	}
	resolved := path.Join(path.Dir(name), target)
	return resolved != ".." && !strings.HasPrefix(resolved, "../")
}

// inspectBootstrap reports whether the zip has a "bootstrap" at its root and whether it is
// executable (archives without Unix modes count as executable: nothing says otherwise).
func inspectBootstrap(b []byte) (found, executable bool) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return false, false
	}
	for _, f := range zr.File {
		if f.Name != "bootstrap" {
			continue
		}
		const creatorUnix = 3
		if f.CreatorVersion>>8 != creatorUnix {
			return true, true
		}
		return true, f.Mode()&0o111 != 0
	}
	return false, false
}
