package codezip

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Extract validates zipBytes as Inspect does and unpacks it into dir, which
// must not exist or be an empty directory (which is replaced); its parent
// must exist.
//
// The tree is built in a fresh sibling directory (dir + ".partial-*") and
// renamed to dir only when complete, so dir either appears whole or not at
// all; on any error the partial directory is removed. Directories get 0755,
// files 0755 if any execute bit was set in the zip and 0644 otherwise
// (readable by the sandbox's unprivileged user whatever the umask; no
// setuid, setgid, sticky or world-writable bits), links are created as
// links. All writes go through an [os.Root] and never through a link.
// Contents are counted as they inflate and refused past lim.MaxUnzipped.
//
// Refusals are [*Error]; other errors are the platform's.
func Extract(zipBytes []byte, dir string, lim Limits) (Info, error) {
	s, err := scan(bytes.NewReader(zipBytes), int64(len(zipBytes)), lim)
	if err != nil {
		return Info{}, err
	}
	dir = filepath.Clean(dir)
	existed, err := checkDest(dir)
	if err != nil {
		return Info{}, err
	}
	partial, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".partial-")
	if err != nil {
		return Info{}, fmt.Errorf("codezip: creating work directory for %q: %w", dir, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(partial) // removes links, never follows them
		}
	}()
	if err := os.Chmod(partial, dirPerm); err != nil {
		return Info{}, fmt.Errorf("codezip: %w", err)
	}
	if err := s.unpack(partial, lim); err != nil {
		return Info{}, err
	}
	if existed {
		// os.Rename refuses to replace a directory; rmdir refuses a
		// non-empty one, so a destination filled since checkDest survives.
		if err := os.Remove(dir); err != nil {
			return Info{}, fmt.Errorf("codezip: replacing empty destination: %w", err)
		}
	}
	if err := os.Rename(partial, dir); err != nil {
		return Info{}, fmt.Errorf("codezip: moving code into place: %w", err)
	}
	done = true
	return s.info, nil
}

// checkDest fails unless dir is absent or an empty directory (not a link),
// and reports whether it exists.
func checkDest(dir string) (bool, error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("codezip: checking destination: %w", err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("codezip: destination %q is not a directory: %w", dir, fs.ErrExist)
	}
	f, err := os.Open(dir)
	if err != nil {
		return false, fmt.Errorf("codezip: checking destination: %w", err)
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return false, fmt.Errorf("codezip: destination %q is not empty: %w", dir, fs.ErrExist)
	}
	return true, nil
}

// unpack writes the scanned tree into the empty directory dir: directories,
// then files at their real (link-free) paths, then links, so no write ever
// passes through a link even if the model were wrong — and os.Root would
// refuse one that escaped.
func (s *scanned) unpack(dir string, lim Limits) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("codezip: %w", err)
	}
	defer root.Close()

	if err := mkdirs(root, s.info.tree.root, ""); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	var written int64
	for i, e := range s.info.Entries {
		if !e.Mode.IsRegular() {
			continue
		}
		if err := writeFile(root, s.nodes[i].path(), e.Mode, s.files[i], &written, lim, buf); err != nil {
			return err
		}
	}
	for i, e := range s.info.Entries {
		if e.Mode&fs.ModeSymlink == 0 {
			continue
		}
		if err := root.Symlink(e.Target, s.nodes[i].path()); err != nil {
			return fmt.Errorf("codezip: %w", err)
		}
	}
	return root.Close()
}

// mkdirs creates the directories below n, whose path is p, parents first.
func mkdirs(root *os.Root, n *node, p string) error {
	for name, c := range n.children {
		if !c.mode.IsDir() {
			continue
		}
		cp := name
		if p != "" {
			cp = p + "/" + name
		}
		if err := root.Mkdir(cp, dirPerm); err != nil {
			return fmt.Errorf("codezip: %w", err)
		}
		if err := root.Chmod(cp, dirPerm); err != nil { // the umask may have cut it
			return fmt.Errorf("codezip: %w", err)
		}
		if err := mkdirs(root, c, cp); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(root *os.Root, p string, mode fs.FileMode, zf *zip.File, written *int64, lim Limits, buf []byte) error {
	f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("codezip: %w", err)
	}
	defer f.Close()
	if err := copyEntry(f, zf, written, lim, buf); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil { // the umask may have cut it
		return fmt.Errorf("codezip: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("codezip: %w", err)
	}
	return nil
}
