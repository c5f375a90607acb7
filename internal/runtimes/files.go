package runtimes

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// bootstraps are Owl's own runtime files, installed as /var/runtime.
//
//go:embed python/bootstrap.py node/bootstrap.mjs
var bootstraps embed.FS

// Install writes Owl's runtime files into dir (created if needed), which
// sandboxes then see read-only at /var/runtime. It rewrites them on every
// start, so an upgraded owl binary brings its bootstraps along.
func Install(dir string) error {
	return fs.WalkDir(bootstraps, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, path)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := bootstraps.ReadFile(path)
		if err != nil {
			return err
		}
		tmp := dst + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return fmt.Errorf("installing runtime file %s: %w", path, err)
		}
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("installing runtime file %s: %w", path, err)
		}
		return nil
	})
}
