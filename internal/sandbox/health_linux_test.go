package sandbox

import (
	"errors"
	"os"
	"testing"
)

// Check is what a health probe asks: usable until a directory it creates
// sandboxes in vanishes, and not after Close.
func TestManagerCheck(t *testing.T) {
	m := newTestManager(t)
	if err := m.Check(); err != nil {
		t.Fatalf("Check of a fresh manager: %v", err)
	}
	if err := os.Remove(m.rootfs); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Check without the root mount point: %v, want ErrNotExist", err)
	}
	if err := os.Mkdir(m.rootfs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Errorf("Check after the mount point is back: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); !errors.Is(err, ErrClosed) {
		t.Errorf("Check after Close: %v, want ErrClosed", err)
	}
}

// FindNft finds the command where NewManager does.
func TestFindNftExported(t *testing.T) {
	want, werr := findNft()
	got, gerr := FindNft()
	if got != want || (werr == nil) != (gerr == nil) {
		t.Errorf("FindNft() = %q, %v; findNft() = %q, %v", got, gerr, want, werr)
	}
}
