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
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Guard answers whether a write of some size fits on the data dir's
// filesystem without going below the reserve. It reads the filesystem's
// free space (statfs, a few µs) on every check, so space freed by anyone
// is usable at once: there is no state to recover.
//
// Writers that stream a file of a size known only as it arrives (request
// bodies spooled to disk) claim space ahead of their writes (Claim, or a
// Writer); every check counts what is claimed and not yet written as
// used, so that such writers together stay above the reserve too.
//
// Space promised elsewhere on the same filesystem and not yet written
// (the sandboxes' /tmp disks, sparse images that grow as functions write)
// is counted as used too: see SetPromised.
type Guard struct {
	dir      string
	reserve  int64
	low      atomic.Bool  // the last check found less than the reserve free
	claimed  atomic.Int64 // bytes claimed by writers and not yet written
	promised atomic.Pointer[func() int64]
}

// New returns a guard of the filesystem holding dir that keeps reserve
// bytes free.
func New(dir string, reserve int64) *Guard {
	return &Guard{dir: dir, reserve: reserve}
}

// SetPromised makes every check count promised() bytes as used: space
// that others may still write on the guarded filesystem without asking
// the guard (the sandboxes' /tmp disks: what their functions have not yet
// written of their size). It is called on every check, so it must be
// cheap and safe for concurrent use.
func (g *Guard) SetPromised(promised func() int64) { g.promised.Store(&promised) }

// usable is the free space less what is claimed and promised.
func (g *Guard) usable() (int64, error) {
	free, err := g.Free()
	if err != nil {
		return 0, err
	}
	if p := g.promised.Load(); p != nil {
		free -= (*p)()
	}
	return free, nil
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
// than the reserve free, counting claimed and promised space as used. A statfs failure
// is returned as is (wrapped).
func (g *Guard) Check(need int64) error {
	free, err := g.usable()
	if err != nil {
		return err
	}
	free -= g.claimed.Load()
	if free-need < g.reserve {
		g.low.Store(true)
		return &LowSpaceError{Dir: g.dir, Free: max(free, 0), Need: need, Reserve: g.reserve}
	}
	g.low.Store(false)
	return nil
}

// Claim reserves n bytes for a write about to happen, or returns a
// *LowSpaceError when they do not fit above the reserve with every other
// claim. The claimant gives the bytes back with Release as it writes them
// (the filesystem then counts them) or once it no longer needs them.
func (g *Guard) Claim(n int64) error {
	free, err := g.usable()
	if err != nil {
		return err
	}
	if claimed := g.claimed.Add(n); free-claimed < g.reserve {
		g.claimed.Add(-n)
		return &LowSpaceError{Dir: g.dir, Free: max(free-claimed+n, 0), Need: n, Reserve: g.reserve}
	}
	return nil
}

// Release gives back n claimed bytes.
func (g *Guard) Release(n int64) { g.claimed.Add(-n) }

// claimStep is the least a Writer claims at a time: one statfs per MiB
// written at most.
const claimStep = 1 << 20

// Writer writes to a file on the guarded filesystem, claiming the space
// of its writes before making them. Close gives back what it claimed and
// did not write; it does not close the file.
type Writer struct {
	g       *Guard
	w       io.Writer
	claimed int64 // claimed and not yet written
}

// NewWriter returns a Writer of w, a file on g's filesystem.
func (g *Guard) NewWriter(w io.Writer) *Writer { return &Writer{g: g, w: w} }

// Claim claims n more bytes ahead of the writes, e.g. a size announced in
// advance, so that a write that cannot fit is refused before it starts.
func (w *Writer) Claim(n int64) error {
	if err := w.g.Claim(n); err != nil {
		return err
	}
	w.claimed += n
	return nil
}

// Write writes p once its space is claimed; a refusal is a
// *LowSpaceError, and nothing of p is written then.
func (w *Writer) Write(p []byte) (int, error) {
	if more := int64(len(p)) - w.claimed; more > 0 {
		if err := w.Claim(max(more, claimStep)); err != nil {
			return 0, err
		}
	}
	n, err := w.w.Write(p)
	w.claimed -= int64(n)
	w.g.Release(int64(n))
	return n, err
}

// Close gives back the space claimed and not written.
func (w *Writer) Close() error {
	w.g.Release(w.claimed)
	w.claimed = 0
	return nil
}

// Allowance checks many small writes that another part makes on the
// guarded filesystem (JetStream's, of the events Owl accepts) against the
// reserve without a statfs each: it claims claimStep at a time and spends
// the claim as the writes are announced, and claims anew when its claim
// is older than allowanceAge, so one statfs per MiB or per allowanceAge
// at most: a disk that others fill below the reserve is refused within
// that time, as a Check would. Near the reserve it claims what one write
// needs only, and a refused write leaves nothing claimed, so the next one
// reads the free space again: space freed is usable at once. Safe for
// concurrent use.
type Allowance struct {
	g    *Guard
	mu   sync.Mutex
	left int64     // claimed and not yet spent
	at   time.Time // when it was claimed
}

// allowanceAge is how long an Allowance's claim stands without a statfs.
const allowanceAge = 10 * time.Millisecond

// NewAllowance returns an Allowance of g; nil when g is nil (no guard:
// every write fits).
func (g *Guard) NewAllowance() *Allowance {
	if g == nil {
		return nil
	}
	return &Allowance{g: g}
}

// Spend announces a write of n bytes about to be made: a *LowSpaceError
// when it does not fit above the reserve with every claim.
func (a *Allowance) Spend(n int64) error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if a.left > 0 && now.Sub(a.at) > allowanceAge {
		a.g.Release(a.left)
		a.left = 0
	}
	if more := n - a.left; more > 0 {
		err := a.g.Claim(max(more, claimStep))
		if err == nil {
			a.left += max(more, claimStep)
		} else if err = a.g.Claim(more); err == nil {
			a.left += more
		} else {
			return err
		}
		a.at = now
	}
	// The write is the filesystem's to count from now on.
	a.left -= n
	a.g.Release(n)
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
