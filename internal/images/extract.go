package images

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/owl-project/owl/internal/diskspace"
)

var (
	// errUnsafe: an entry that would write outside the tree, or a device.
	errUnsafe = errors.New("unsafe entry")
	// errNotTar: a layer that does not read as a tar archive.
	errNotTar = errors.New("not a tar archive")
	// errTooLarge: more bytes than the limit.
	errTooLarge = errors.New("image too large")
)

// extract writes the flattened image tar r into dir (created), at most
// limit bytes of file content, and returns how many it wrote. Every write
// goes through an os.Root, so no symlink of the image can lead it outside
// dir; absolute names, "..", devices and FIFOs are refused (errUnsafe), an
// entry under a symlink or a file is skipped (an upper layer replaced that
// directory). Files are owned by the caller (root); set-id bits dropped.
// space, when set, is asked before each file (its size and a block).
func extract(ctx context.Context, r io.Reader, dir string, limit int64, space SpaceChecker) (int64, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return 0, fmt.Errorf("creating %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, fmt.Errorf("opening %s: %w", dir, err)
	}
	defer root.Close()
	tr := tar.NewReader(r)
	var written int64
	var links []*tar.Header // hard links, made last: their targets may come later
	for {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// mutate.Extract ends the archive even when it failed, and
			// reports the failure only after: read it.
			if _, err := io.Copy(io.Discard, r); err != nil {
				return written, readError(err)
			}
			return written, makeLinks(root, links)
		}
		if err != nil {
			return written, readError(err)
		}
		name, err := entryName(h.Name)
		if err != nil {
			return written, err
		}
		if name == "" {
			continue // the root itself
		}
		if !parentIsDir(root, name) {
			continue
		}
		if space != nil && h.Typeflag == tar.TypeReg {
			if err := space.Check(h.Size + 4096); err != nil {
				return written, err
			}
		}
		if h.Typeflag == tar.TypeLink {
			h.Name = name
			links = append(links, h)
			continue
		}
		n, err := writeEntry(root, name, h, tr, limit-written)
		written += n
		if err != nil {
			return written, err
		}
	}
}

// readError classifies a failure to read the flattened image: an unsafe
// path mutate.Extract refused, or a layer that is not a tar.
func readError(err error) error {
	if diskspace.IsLow(err) || errors.Is(err, errTooLarge) || errors.Is(err, errNotTar) || errors.Is(err, errUnsafe) {
		return err
	}
	if strings.Contains(err.Error(), "unsafe tar path") {
		return fmt.Errorf("%w: %v", errUnsafe, err)
	}
	return fmt.Errorf("%w: %v", errNotTar, err)
}

// makeLinks makes the hard links once every file exists; one whose target
// does not (a whiteout removed it), or that an upper layer shadowed, is
// skipped.
func makeLinks(root *os.Root, links []*tar.Header) error {
	for _, h := range links {
		target, err := entryName(h.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("%w: hard link %s to %q", errUnsafe, h.Name, h.Linkname)
		}
		if _, err := root.Lstat(h.Name); err == nil {
			continue
		}
		if fi, err := root.Lstat(target); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := root.Link(target, h.Name); err != nil {
			return fmt.Errorf("unpacking %s: %w", h.Name, err)
		}
	}
	return nil
}

// entryName is a tar name relative to the root ("" for the root), or
// errUnsafe.
func entryName(raw string) (string, error) {
	if strings.HasPrefix(raw, "/") {
		return "", fmt.Errorf("%w: absolute name %q", errUnsafe, raw)
	}
	for _, part := range strings.Split(raw, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: %q leaves the image", errUnsafe, raw)
		}
	}
	clean := path.Clean(raw)
	if clean == "." {
		return "", nil
	}
	return clean, nil
}

// parentIsDir makes name's parent directories as needed and reports whether
// the parent is a real directory (not a symlink, not a file).
func parentIsDir(root *os.Root, name string) bool {
	parent := path.Dir(name)
	if parent == "." {
		return true
	}
	fi, err := root.Lstat(parent)
	if errors.Is(err, fs.ErrNotExist) {
		if !parentIsDir(root, parent) {
			return false
		}
		return root.Mkdir(parent, 0o755) == nil
	}
	return err == nil && fi.IsDir()
}

// writeEntry creates one entry; what exists already (from an upper layer)
// wins. It returns the file bytes written.
func writeEntry(root *os.Root, name string, h *tar.Header, r io.Reader, room int64) (int64, error) {
	mode := fs.FileMode(h.Mode) & (fs.ModePerm | fs.ModeSticky)
	existing, lerr := root.Lstat(name)
	exists := lerr == nil
	switch h.Typeflag {
	case tar.TypeDir:
		if !exists {
			return 0, wrap(name, root.Mkdir(name, 0o755), root.Chmod(name, mode|0o100))
		}
		if existing.IsDir() {
			return 0, wrap(name, root.Chmod(name, mode|0o100))
		}
		return 0, nil
	case tar.TypeReg:
		if exists {
			return 0, nil
		}
		if h.Size > room {
			return 0, errTooLarge
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return 0, wrap(name, err)
		}
		n, err := io.Copy(f, io.LimitReader(r, room+1))
		cerr := f.Close()
		if err != nil {
			return n, fmt.Errorf("%w: %s: %v", errNotTar, name, err)
		}
		if n > room {
			return n, errTooLarge
		}
		return n, wrap(name, cerr, root.Chmod(name, mode&^fs.ModeSticky))
	case tar.TypeSymlink:
		if exists {
			return 0, nil
		}
		return 0, wrap(name, root.Symlink(h.Linkname, name))
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return 0, fmt.Errorf("%w: %s is a device or FIFO (type %q); images may not carry them", errUnsafe, name, h.Typeflag)
	}
	return 0, nil // extended headers, unknown types: nothing to create
}

// wrap is the first non-nil of errs, naming the entry.
func wrap(name string, errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("unpacking %s: %w", name, err)
		}
	}
	return nil
}

// Mount points a sandbox mounts on inside an image's root, made real
// directories (whatever the image has there: a symlink there would lead a
// mount outside the tree); and the /etc files Owl writes for every
// sandbox, made regular files to bind over. Nothing else of the image is
// changed: /var/task and /opt are the image's own (a symlink among them
// resolves inside the sandbox's root).
var (
	mountDirs = []string{"etc", "tmp", "proc", "dev"}
	// EtcFiles are bound over the image's own from Owl's prepared /etc.
	EtcFiles = []string{"passwd", "group", "hosts", "hostname", "nsswitch.conf", "resolv.conf"}
	// etcRemoved are dropped from the image's /etc, as from the host's.
	etcRemoved = []string{"shadow", "gshadow", "shadow-", "gshadow-"}
)

// prepareMountPoints readies an unpacked tree to be a sandbox's root.
func prepareMountPoints(dir string) error {
	for _, d := range mountDirs {
		p := dir + "/" + d
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("preparing /%s: %w", d, err)
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("preparing /%s: %w", d, err)
		}
	}
	for _, f := range EtcFiles {
		p := dir + "/etc/" + f
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("preparing /etc/%s: %w", f, err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return fmt.Errorf("preparing /etc/%s: %w", f, err)
		}
	}
	for _, f := range etcRemoved {
		if err := os.RemoveAll(dir + "/etc/" + f); err != nil {
			return fmt.Errorf("removing /etc/%s: %w", f, err)
		}
	}
	return nil
}
