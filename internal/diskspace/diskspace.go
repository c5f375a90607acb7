// Package diskspace watches the free space of Owl's data directory and
// refuses, before they start, the writes that would eat into a reserve
// kept for deletions and the store's own housekeeping (tombstones,
// compaction's rewritten blocks, index files). Refusing first is what keeps
// a full disk a state rather than a wedge: JetStream marks a stream that
// once failed a write with ENOSPC as broken until it is reloaded, so the
// store must never be the one to find out that the disk is full.
package diskspace

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Guard answers whether a write of some size fits on the data dir's
// filesystem without going below the reserve. It reads the filesystem's
// free space (statfs, a few µs) on every check, so space freed by anyone
// is usable at once: there is no state to recover.
type Guard struct {
	dir     string
	reserve int64
	low     atomic.Bool // the last check found less than the reserve free
}

// New returns a guard of the filesystem holding dir that keeps reserve
// bytes free.
func New(dir string, reserve int64) *Guard {
	return &Guard{dir: dir, reserve: reserve}
}

// Reserve is the space the guard keeps free, in bytes.
func (g *Guard) Reserve() int64 { return g.reserve }

// Dir is the directory whose filesystem the guard watches.
func (g *Guard) Dir() string { return g.dir }

// Free returns the bytes available to Owl on the data dir's filesystem.
func (g *Guard) Free() (int64, error) {
	return FreeBytes(g.dir)
}

// FreeBytes is the space available to an unprivileged writer on dir's
// filesystem (statfs f_bavail).
func FreeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// TotalBytes is the size of dir's filesystem.
func TotalBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Blocks) * int64(st.Bsize), nil
}

// LowSpaceError says a write was refused because it would leave less than
// the reserve free.
type LowSpaceError struct {
	Dir     string
	Free    int64 // bytes free when checked
	Need    int64 // bytes the write needs
	Reserve int64 // bytes kept free
}

func (e *LowSpaceError) Error() string {
	if e.Need > 0 {
		return fmt.Sprintf("the data directory %s has %s free; this write needs %s and %s stay reserved for deletions",
			e.Dir, MB(e.Free), MB(e.Need), MB(e.Reserve))
	}
	return fmt.Sprintf("the data directory %s has %s free, below the %s reserved for deletions",
		e.Dir, MB(e.Free), MB(e.Reserve))
}

// IsLow reports whether err is (or wraps) a LowSpaceError.
func IsLow(err error) bool {
	var le *LowSpaceError
	return errors.As(err, &le)
}

// Check returns a *LowSpaceError when writing need bytes would leave less
// than the reserve free. A statfs failure is returned as is (wrapped).
func (g *Guard) Check(need int64) error {
	free, err := g.Free()
	if err != nil {
		return err
	}
	if free-need < g.reserve {
		g.low.Store(true)
		return &LowSpaceError{Dir: g.dir, Free: free, Need: need, Reserve: g.reserve}
	}
	g.low.Store(false)
	return nil
}

// Low reports whether the free space is below the reserve right now.
func (g *Guard) Low() bool { return g.Check(0) != nil }

// WasLow reports what the last check found, without a statfs: for hot
// paths that only need a hint (the log publisher checks for real when it
// is set).
func (g *Guard) WasLow() bool { return g.low.Load() }

// MB renders bytes as megabytes (MiB) for messages, or kilobytes below one.
func MB(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%d KB", (b+1023)>>10)
	}
	return fmt.Sprintf("%d MB", b>>20)
}

// Sizing of the store at start. The log stream's limit derives from the
// space Owl may use (free space plus what its store already holds, less
// the reserve): an eighth of it, between MinLogBytes and MaxLogBytes. A
// data dir where that budget is below MinStartBytes does not start.
const (
	MinLogBytes   = 16 << 20
	MaxLogBytes   = 1 << 30
	MinCodeBytes  = 64 << 20
	MinStartBytes = MinLogBytes + MinCodeBytes
)

// Plan is the store's sizing for one start.
type Plan struct {
	Free, StoreBytes, Reserve int64
	// LogBytes is the log stream's MaxBytes.
	LogBytes int64
}

// PlanStart sizes the store of dataDir, whose JetStream files take
// storeBytes already, keeping reserve free. It fails with one line saying
// how much is needed when the disk is too small.
func PlanStart(dataDir string, storeBytes, reserve int64) (Plan, error) {
	free, err := FreeBytes(dataDir)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Free: free, StoreBytes: storeBytes, Reserve: reserve}
	budget := free + storeBytes - reserve
	if budget < MinStartBytes {
		return p, fmt.Errorf("the data directory %s has %s free; Owl needs at least %s there (%s reserved for deletions (--disk-reserve/OWL_DISK_RESERVE) + %s for logs + %s for code): free space, or choose another --data/OWL_DATA",
			dataDir, MB(free), MB(reserve+MinStartBytes-storeBytes), MB(reserve), MB(MinLogBytes), MB(MinCodeBytes))
	}
	p.LogBytes = min(MaxLogBytes, max(MinLogBytes, budget/8))
	return p, nil
}
