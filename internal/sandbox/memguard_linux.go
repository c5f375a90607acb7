package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The memory guard: a sandbox whose memory is exhausted is killed at once.
//
// The kernel's own OOM killer acts only once reclaim has failed repeatedly.
// Until then a cgroup at its limit reclaims and re-faults whatever file
// pages it has (its own program text, the interpreter's libraries), and that
// reclaim runs in the function's context, under its CPU quota: a 128 MB
// function (1/14 of a CPU) can spend seconds at its limit before the kernel
// gives up, all of it billed. Lambda ends such a function at its limit.
//
// So Owl watches for a sandbox reaching its limit — an event, not a poll:
// a v1 memory threshold (cgroup.event_control with an eventfd, fired when
// usage crosses limit − slack) or, on v2, an inotify IN_MODIFY on
// memory.events (the kernel bumps its "high" count whenever usage passes
// memory.high, which the guard sets to limit − slack, and its "max" count
// whenever a charge hits memory.max). When that happens it reads the cgroup's usage and
// memory.stat: if the memory the kernel cannot reclaim without swap (usage
// less the file LRU pages: anonymous memory, tmpfs, kernel memory) is
// within slack of the limit, the function is out of memory and its whole
// cgroup is SIGKILLed — pid 1 dies with "signal: killed", as on Lambda.
// While the cgroup stays near its limit with reclaimable file pages, it is
// checked again every memGuardRecheck; below the threshold nothing runs.

// memGuardEnabled switches the guard off for BenchmarkOOMKill's baseline
// (the kernel's OOM killer alone).
var memGuardEnabled = true

// memGuardRecheck is how often a sandbox near its limit, with file pages
// left to reclaim, is checked again.
const memGuardRecheck = 50 * time.Millisecond

// memSlack is how close to its limit the non-reclaimable memory of a
// sandbox may come before it counts as out of memory: 1/32 of the limit,
// at least 4 MiB and at most 32 MiB (128 MB: 4 MiB; 1769 MB: 32 MiB).
func memSlack(limit uint64) uint64 {
	return min(max(limit/32, 4<<20), 32<<20)
}

// outOfMemory decides from a cgroup's usage and its reclaimable file pages
// whether it has exhausted limit.
func outOfMemory(limit, usage, file uint64) bool {
	slack := memSlack(limit)
	if usage+slack < limit {
		return false
	}
	unreclaimable := usage - min(file, usage)
	return unreclaimable+slack >= limit
}

// nearLimit reports whether usage is within the slack of limit (the guard
// keeps checking while it is).
func nearLimit(limit, usage uint64) bool {
	return usage+memSlack(limit) >= limit
}

// memGuard watches one sandbox's memory cgroup. Its methods are safe for
// concurrent use.
type memGuard struct {
	cg     *cgroup
	w      *memWatcher
	onKill func() // marks the sandbox as killed for memory, before the kill

	mu      sync.Mutex
	limit   uint64      // guarded by mu
	efd     *os.File    // v1: the threshold eventfd; guarded by mu
	wd      int         // v2: the inotify watch; -1 when none; guarded by mu
	recheck *time.Timer // guarded by mu; nil when none is pending
	closed  bool        // guarded by mu
	killed  atomic.Bool
}

// arm starts (or, after raise, restarts) watching for the current limit.
// Arms running one after another each register the latest limit.
func (g *memGuard) arm() error {
	if !memGuardEnabled {
		return nil
	}
	g.mu.Lock()
	if g.closed || g.limit == 0 {
		g.mu.Unlock()
		return nil
	}
	limit := g.limit
	var err error
	if g.cg.h.v2 {
		// v2 reports reaching memory.high (its "high" count), not a
		// threshold: high at limit − slack makes the kernel report when
		// the guard should look, as v1's threshold does. Above it the
		// kernel reclaims page cache first; memory it cannot reclaim
		// there is what the guard kills for anyway.
		err = writeFile(g.cg.memory, "memory.high", strconv.FormatUint(limit-memSlack(limit), 10))
		if err == nil && g.wd < 0 {
			g.wd, err = g.w.watchV2(g)
		}
	} else {
		old := g.efd
		g.efd, err = registerThreshold(g.cg.memory, limit-memSlack(limit))
		if old != nil {
			old.Close() // unregisters the old threshold
		}
		if err == nil {
			go g.waitV1(g.efd)
		}
	}
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("watching memory of cgroup %s: %w", g.cg.name, err)
	}
	// Already near the new limit (a raised limit of a pre-warmed sandbox
	// never crosses the threshold upwards).
	g.check()
	return nil
}

// raise sets the limit the checks judge by, at once, and reports whether
// it changed: then the caller arms for it (until then a crossing of an
// older threshold is judged against the new limit).
func (g *memGuard) raise(limit uint64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.limit == limit {
		return false
	}
	g.limit = limit
	return true
}

// waitV1 reads the threshold eventfd until it is closed, checking the
// cgroup on each crossing.
func (g *memGuard) waitV1(efd *os.File) {
	var buf [8]byte
	for {
		if _, err := efd.Read(buf[:]); err != nil {
			return // closed
		}
		if !exists(g.cg.memory) {
			return // the cgroup is gone (removed by someone else): nothing to watch
		}
		g.check()
	}
}

// check kills the sandbox if it is out of memory, and schedules another
// check while it is near its limit.
func (g *memGuard) check() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.killed.Load() || g.limit == 0 {
		return
	}
	usage, err := g.cg.memoryUsage()
	if err != nil {
		return // the cgroup is going away
	}
	if !nearLimit(g.limit, usage) {
		return
	}
	file, err := g.cg.fileMemory()
	if err != nil {
		return
	}
	if outOfMemory(g.limit, usage, file) {
		g.killed.Store(true)
		g.onKill()
		if err := g.cg.kill(); err != nil && !errors.Is(err, unix.ENOENT) {
			g.w.log.Warn("killing a sandbox out of memory", "cgroup", g.cg.name, "err", err)
		}
		g.w.log.Debug("sandbox out of memory: killed", "cgroup", g.cg.name,
			"limit", g.limit, "usage", usage, "file", file)
		return
	}
	if g.recheck == nil {
		g.recheck = time.AfterFunc(memGuardRecheck, func() {
			g.mu.Lock()
			g.recheck = nil
			g.mu.Unlock()
			g.check()
		})
	}
}

// close stops watching. Idempotent.
func (g *memGuard) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	if g.recheck != nil {
		g.recheck.Stop()
		g.recheck = nil
	}
	if g.efd != nil {
		g.efd.Close()
		g.efd = nil
	}
	if g.wd >= 0 {
		g.w.unwatchV2(g.wd)
		g.wd = -1
	}
}

// registerThreshold asks cgroup v1 to signal an eventfd whenever the
// memory usage of dir crosses threshold bytes.
func registerThreshold(dir string, threshold uint64) (*os.File, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	usage, err := unix.Open(dir+"/memory.usage_in_bytes", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("opening %s/memory.usage_in_bytes: %w", dir, err)
	}
	defer unix.Close(usage)
	line := strconv.Itoa(efd) + " " + strconv.Itoa(usage) + " " + strconv.FormatUint(threshold, 10)
	if err := writeFile(dir, "cgroup.event_control", line); err != nil {
		unix.Close(efd)
		return nil, err
	}
	// Non-blocking, so reads park in the netpoller, not on a thread.
	return os.NewFile(uintptr(efd), "memory-threshold"), nil
}

// memoryUsage is the cgroup's current memory use in bytes.
func (c *cgroup) memoryUsage() (uint64, error) {
	name := "memory.usage_in_bytes"
	if c.h.v2 {
		name = "memory.current"
	}
	b, err := readFile(c.memory, name)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
}

// fileMemory is the cgroup's memory on the file LRU lists: page cache the
// kernel can reclaim. tmpfs (shmem) pages live on the anonymous lists and
// are not in it: without swap they cannot be reclaimed.
func (c *cgroup) fileMemory() (uint64, error) {
	b, err := readFile(c.memory, "memory.stat")
	if err != nil {
		return 0, err
	}
	var sum uint64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && (k == "active_file" || k == "inactive_file") {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing %s in %s/memory.stat: %w", k, c.memory, err)
			}
			sum += n
		}
	}
	return sum, nil
}

// memWatcher is the Manager's half of the memory guards: on v2 one inotify
// instance watching every sandbox's memory.events, read by one goroutine.
type memWatcher struct {
	log *slog.Logger
	v2  bool

	warned atomic.Bool // a guard could not be armed (logged once)

	mu     sync.Mutex
	ino    *os.File          // v2 only; nil until the first watch
	guards map[int]*memGuard // v2: by watch descriptor; guarded by mu
	done   chan struct{}     // closed when the reader has exited (v2, once started)
}

func newMemWatcher(v2 bool, log *slog.Logger) *memWatcher {
	return &memWatcher{log: log, v2: v2, guards: map[int]*memGuard{}}
}

// warnOnce logs the first failure to arm a guard.
func (w *memWatcher) warnOnce(err error) {
	if w.warned.CompareAndSwap(false, true) {
		w.log.Warn("memory guard unavailable: functions that exhaust their memory are left to the kernel's OOM killer, which can take seconds", "err", err)
	}
}

// guard returns a (not yet armed) guard of cg.
func (w *memWatcher) guard(cg *cgroup, onKill func()) *memGuard {
	return &memGuard{cg: cg, w: w, onKill: onKill, wd: -1}
}

// watchV2 adds g's memory.events to the inotify instance.
func (w *memWatcher) watchV2(g *memGuard) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ino == nil {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return -1, fmt.Errorf("inotify: %w", err)
		}
		w.ino = os.NewFile(uintptr(fd), "inotify-memory-events")
		w.done = make(chan struct{})
		go w.readV2(w.ino, w.done)
	}
	wd, err := unix.InotifyAddWatch(int(w.ino.Fd()), g.cg.memory+"/memory.events", unix.IN_MODIFY)
	if err != nil {
		return -1, fmt.Errorf("inotify on %s/memory.events: %w", g.cg.memory, err)
	}
	w.guards[wd] = g
	return wd, nil
}

func (w *memWatcher) unwatchV2(wd int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.guards, wd)
	if w.ino != nil {
		// Fails harmlessly when the cgroup is already gone (IN_IGNORED).
		_, _ = unix.InotifyRmWatch(int(w.ino.Fd()), uint32(wd))
	}
}

// readV2 dispatches memory.events modifications to their guards.
func (w *memWatcher) readV2(ino *os.File, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := ino.Read(buf)
		if err != nil {
			return // closed
		}
		var due []*memGuard
		w.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if g, ok := w.guards[int(ev.Wd)]; ok && ev.Mask&unix.IN_MODIFY != 0 {
				due = append(due, g)
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		w.mu.Unlock()
		for _, g := range due {
			g.check()
		}
	}
}

// close stops the v2 reader. Guards must be closed first.
func (w *memWatcher) close() {
	w.mu.Lock()
	ino, done := w.ino, w.done
	w.ino = nil
	w.mu.Unlock()
	if ino != nil {
		ino.Close()
		<-done
	}
}
