package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/owl-project/owl/internal/registry"
)

// layersDir returns the directory a function's layers make up as /opt
// (holding a reference on it for the caller, see codecache.go):
// each layer is unpacked once per node (like code, by sha256) and the
// layers are merged in order, later ones overriding earlier files, into a
// read-only directory named by the list. "" when the function has none.
func (c *codeCache) layersDir(ctx context.Context, layers []registry.FunctionLayer) (string, error) {
	if len(layers) == 0 {
		return "", nil
	}
	h := sha256.New()
	for _, l := range layers {
		h.Write([]byte(l.CodeSha256Hex + "\n"))
	}
	dir := filepath.Join(c.dataDir, "opt", hex.EncodeToString(h.Sum(nil)))
	srcs := make([]string, 0, len(layers))
	defer func() { c.unref(srcs...) }() // the merged tree links to their files
	for _, l := range layers {
		src, err := c.codeDir(ctx, l.CodeSha256Hex)
		if err != nil {
			return "", fmt.Errorf("layer %s: %w", l.ARN, err)
		}
		srcs = append(srcs, src)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := os.Stat(dir); err == nil {
		c.refLocked(dir)
		return dir, nil
	}
	tmp := dir + ".partial"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", tmp, err)
	}
	for _, src := range srcs {
		if err := mergeTree(src, tmp); err != nil {
			_ = os.RemoveAll(tmp)
			return "", fmt.Errorf("merging layers: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("merging layers: %w", err)
	}
	c.refLocked(dir)
	return dir, nil
}

// mergeTree copies src's tree into dst, replacing what is there. Files are
// hard links into the (read-only, immutable) unpacked layer; symlinks are
// recreated (codezip has checked they stay inside the layer).
func mergeTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if st, err := os.Lstat(target); err == nil && !st.IsDir() {
				if err := os.Remove(target); err != nil {
					return err
				}
			}
			if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			_ = os.RemoveAll(target)
			return os.Symlink(link, target)
		default:
			_ = os.RemoveAll(target)
			return os.Link(p, target)
		}
	})
}
