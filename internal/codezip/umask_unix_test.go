//go:build unix

package codezip

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
)

// TestModesIgnoreUmask: the daemon may run with a strict umask (systemd's
// UMask=0077), but the sandbox user must still read the code.
func TestModesIgnoreUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	zb := mkzip(t, file("bootstrap", "x", 0o700), file("lib/a.py", "a", 0o600), dir("empty/"))
	dest := filepath.Join(t.TempDir(), "code")
	if _, err := Extract(zb, dest, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{
		".":         fs.ModeDir | 0o755,
		"bootstrap": 0o755,
		"lib":       fs.ModeDir | 0o755,
		"lib/a.py":  0o644,
		"empty":     fs.ModeDir | 0o755,
	} {
		if got := perm(t, filepath.Join(dest, name)); got != want {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}
}
