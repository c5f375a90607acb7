package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	cgroups "github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"
)

// Cgroups are managed by hand rather than with containerd/cgroups' cgroup1 and
// cgroup2 packages: those pull in cilium/ebpf, godbus, go-systemd, protobuf
// and the OCI runtime-spec, which are not in go.sum (the build fails), and
// they would write more files per sandbox than the few below. Only the root
// package's mode detection is used. Everything here is plain file I/O on
// cgroupfs, four controllers on v1 (memory, pids, cpu, freezer) and one
// directory on v2.

const (
	cgroupV2Root = "/sys/fs/cgroup"
	owlCgroup    = "owl"
)

// v1Controllers are the only v1 hierarchies Owl creates cgroups in.
var v1Controllers = [...]string{"memory", "pids", "cpu", "freezer"}

// v2Controllers are enabled for owl/ and owl/<instance>/ on v2; the freezer
// is built into v2.
var v2Controllers = [...]string{"memory", "pids", "cpu"}

// hierarchy is where this instance's cgroups live: owl/<instance> under the
// root of each v1 controller used, or under the v2 root. Immutable after
// detectHierarchy.
type hierarchy struct {
	v2 bool
	// memory, pids, cpu and freezer are the instance directories of those
	// controllers; on v2 they are all the same directory. dirs holds each
	// distinct one once (v1 controllers may share a hierarchy).
	memory, pids, cpu, freezer string
	dirs                       []string
	// memsw: v1 memory.memsw.* exists (swap accounting); swapMax: v2
	// memory.swap.max exists; killFile: v2 cgroup.kill exists (5.14+).
	memsw, swapMax, killFile bool
}

// detectHierarchy finds the cgroup mode at runtime and creates
// owl/<instance> in each hierarchy used.
func detectHierarchy(instance string) (*hierarchy, error) {
	switch mode := cgroups.Mode(); mode {
	case cgroups.Unified:
		return newV2Hierarchy(cgroupV2Root, instance)
	case cgroups.Legacy, cgroups.Hybrid:
		// On hybrid hosts the v2 mount has no controllers: use the v1 ones.
		return newV1Hierarchy(instance)
	default:
		return nil, fmt.Errorf("%w: no cgroup filesystem at %s", ErrUnsupported, cgroupV2Root)
	}
}

func newV1Hierarchy(instance string) (*hierarchy, error) {
	mounts, err := v1Mounts()
	if err != nil {
		return nil, err
	}
	h := &hierarchy{}
	for _, ctrl := range v1Controllers {
		mnt, ok := mounts[ctrl]
		if !ok {
			return nil, fmt.Errorf("%w: cgroup v1 controller %q is not mounted", ErrUnsupported, ctrl)
		}
		dir := filepath.Join(mnt, owlCgroup, instance)
		switch ctrl {
		case "memory":
			h.memory = dir
		case "pids":
			h.pids = dir
		case "cpu":
			h.cpu = dir
		case "freezer":
			h.freezer = dir
		}
		if !slices.Contains(h.dirs, dir) {
			h.dirs = append(h.dirs, dir)
		}
	}
	for _, dir := range h.dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
	}
	h.memsw = exists(filepath.Join(h.memory, "memory.memsw.limit_in_bytes"))
	if !exists(filepath.Join(h.cpu, "cpu.cfs_quota_us")) {
		return nil, fmt.Errorf("%w: the cgroup v1 cpu controller has no CPU bandwidth control (CONFIG_CFS_BANDWIDTH)", ErrUnsupported)
	}
	return h, nil
}

// v1Mounts maps each v1 controller to its mount point, from mountinfo.
func v1Mounts() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	mounts := map[string]string{}
	for line := range strings.Lines(string(data)) {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, sf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(sf) < 3 || sf[0] != "cgroup" {
			continue
		}
		for opt := range strings.SplitSeq(sf[2], ",") {
			if _, seen := mounts[opt]; !seen {
				mounts[opt] = unescapeMountinfo(pf[4])
			}
		}
	}
	return mounts, nil
}

func newV2Hierarchy(root, instance string) (*hierarchy, error) {
	avail, err := readFile(root, "cgroup.controllers")
	if err != nil {
		return nil, err
	}
	have := strings.Fields(string(avail))
	for _, c := range v2Controllers {
		if !slices.Contains(have, c) {
			return nil, fmt.Errorf("%w: cgroup v2 controller %q is not available in %s/cgroup.controllers",
				ErrUnsupported, c, root)
		}
	}
	// Controllers must be enabled in the subtree_control of every ancestor.
	owl := filepath.Join(root, owlCgroup)
	dir := filepath.Join(owl, instance)
	for _, d := range []string{root, owl, dir} {
		if d != root {
			if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("creating cgroup %s: %w", d, err)
			}
		}
		if err := enableV2Controllers(d); err != nil {
			return nil, err
		}
	}
	h := &hierarchy{v2: true, memory: dir, pids: dir, cpu: dir, freezer: dir, dirs: []string{dir}}
	h.swapMax = exists(filepath.Join(dir, "memory.swap.max"))
	h.killFile = exists(filepath.Join(dir, "cgroup.kill"))
	return h, nil
}

// enableV2Controllers enables v2Controllers for dir's children, writing only
// what is missing (a write to a cgroup namespace root that has processes
// fails with EBUSY even when nothing changes).
func enableV2Controllers(dir string) error {
	cur, err := readFile(dir, "cgroup.subtree_control")
	if err != nil {
		return err
	}
	have := strings.Fields(string(cur))
	var add []string
	for _, c := range v2Controllers {
		if !slices.Contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := writeFile(dir, "cgroup.subtree_control", strings.Join(add, " ")); err != nil {
		return fmt.Errorf("enabling cgroup v2 controllers (a cgroup namespace root with processes in it cannot delegate them): %w", err)
	}
	return nil
}

// sandbox returns the (not yet created) cgroup of the named sandbox.
func (h *hierarchy) sandbox(name string) *cgroup {
	c := &cgroup{h: h, name: name}
	c.memory = filepath.Join(h.memory, name)
	c.pids = filepath.Join(h.pids, name)
	c.cpu = filepath.Join(h.cpu, name)
	c.freezer = filepath.Join(h.freezer, name)
	for _, d := range h.dirs {
		c.dirs = append(c.dirs, filepath.Join(d, name))
	}
	return c
}

// children lists the cgroup names under the instance directories.
func (h *hierarchy) children() ([]string, error) {
	var names []string
	for _, d := range h.dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("listing cgroups: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() && !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	return names, nil
}

// removeInstance removes the owl/<instance> directories (owl/ is shared
// with other instances and stays).
func (h *hierarchy) removeInstance() error {
	var errs []error
	for _, d := range h.dirs {
		if err := unix.Rmdir(d); err != nil && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// cgroup is one sandbox's cgroup: a directory per v1 controller, or one v2
// directory. Its methods are safe for concurrent use (plain file I/O).
type cgroup struct {
	h                          *hierarchy
	name                       string
	memory, pids, cpu, freezer string
	dirs                       []string
	peakFD                     int // open peak-memory file, 0 when not open
	// memoryMB is the last setLimits', for limitCPU.
	memoryMB int
}

// closePeak closes the cached peak-memory file.
func (c *cgroup) closePeak() {
	if c.peakFD > 0 {
		unix.Close(c.peakFD)
		c.peakFD = 0
	}
}

// limits are what a cgroup enforces.
type limits struct {
	memoryBytes uint64
	pidsMax     int
	memoryMB    int // for the CPU weight
}

// create makes the cgroup directories and writes the limits; on failure it
// removes what it made. An existing directory is an error (a live sandbox
// with the same ID, or a stale one for CleanupStale).
func (c *cgroup) create(l limits) error {
	if err := c.mkdir(); err != nil {
		return err
	}
	if err := c.setLimits(l); err != nil {
		for _, d := range c.dirs {
			_ = unix.Rmdir(d)
		}
		return err
	}
	return nil
}

// mkdir makes the cgroup directories, all or none.
func (c *cgroup) mkdir() error {
	for i, d := range c.dirs {
		if err := unix.Mkdir(d, 0o755); err != nil {
			for _, made := range c.dirs[:i] {
				_ = unix.Rmdir(made)
			}
			return fmt.Errorf("creating cgroup %s: %w", d, err)
		}
	}
	return nil
}

// setLimits writes the memory (no swap), pids and CPU weight limits, and
// lifts the CPU quota: the runtime's init may use every CPU of the host
// (within its 10 s), as Lambda gives an on-demand init more CPU than its
// memory's share; limitCPU applies the quota once the runtime is ready.
func (c *cgroup) setLimits(l limits) error {
	mem := strconv.FormatUint(l.memoryBytes, 10)
	pids := strconv.Itoa(l.pidsMax)
	c.memoryMB = l.memoryMB
	if c.h.v2 {
		if err := writeFile(c.memory, "memory.max", mem); err != nil {
			return err
		}
		if c.h.swapMax {
			if err := writeFile(c.memory, "memory.swap.max", "0"); err != nil {
				return err
			}
		}
		if err := writeFile(c.pids, "pids.max", pids); err != nil {
			return err
		}
		if err := writeFile(c.cpu, "cpu.weight", strconv.FormatUint(cpuWeight(l.memoryMB), 10)); err != nil {
			return err
		}
		return c.writeQuota(-1)
	}
	if c.h.memsw {
		// Raising a limit (Sandbox.Specialize): memory+swap first, or the
		// kernel refuses a memory limit above it. Fails when lowering,
		// which then works in the order below.
		_ = writeFile(c.memory, "memory.memsw.limit_in_bytes", mem)
	}
	if err := writeFile(c.memory, "memory.limit_in_bytes", mem); err != nil {
		return err
	}
	if c.h.memsw {
		// memory+swap = memory: no swap. Must follow limit_in_bytes.
		if err := writeFile(c.memory, "memory.memsw.limit_in_bytes", mem); err != nil {
			return err
		}
	} else if err := writeFile(c.memory, "memory.swappiness", "0"); err != nil {
		return err
	}
	if err := writeFile(c.pids, "pids.max", pids); err != nil {
		return err
	}
	if err := writeFile(c.cpu, "cpu.shares", strconv.FormatUint(cpuShares(l.memoryMB), 10)); err != nil {
		return err
	}
	return c.writeQuota(-1)
}

// limitCPU applies the CPU quota of the last setLimits' memory size.
func (c *cgroup) limitCPU() error {
	return c.writeQuota(cpuQuotaUs(c.memoryMB, runtime.NumCPU()))
}

// writeQuota writes a CPU quota per CPUPeriodUs; -1 lifts it.
func (c *cgroup) writeQuota(quota int64) error {
	if c.h.v2 {
		q := "max"
		if quota >= 0 {
			q = strconv.FormatInt(quota, 10)
		}
		return writeFile(c.cpu, "cpu.max", q+" "+strconv.Itoa(CPUPeriodUs))
	}
	// A new v1 cgroup starts with the kernel's 100 ms period, not its
	// parent's.
	if err := writeFile(c.cpu, "cpu.cfs_period_us", strconv.Itoa(CPUPeriodUs)); err != nil {
		return err
	}
	return writeFile(c.cpu, "cpu.cfs_quota_us", strconv.FormatInt(quota, 10))
}

// openDir opens the v2 directory for CLONE_INTO_CGROUP.
func (c *cgroup) openDir() (int, error) {
	fd, err := unix.Open(c.memory, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening cgroup %s: %w", c.memory, err)
	}
	return fd, nil
}

// addProc moves a whole process into the cgroup. Sandboxes do not use it
// (v1: the init joins by itself, see joinCgroups; v2: CLONE_INTO_CGROUP):
// on v1 it can take milliseconds.
func (c *cgroup) addProc(pid int) error {
	p := strconv.Itoa(pid)
	for _, d := range c.dirs {
		if err := writeFile(d, "cgroup.procs", p); err != nil {
			return err
		}
	}
	return nil
}

// freeze stops every process in the cgroup and returns once they all are.
func (c *cgroup) freeze() error {
	if c.h.v2 {
		return c.setFrozen("cgroup.freeze", "1", func() (bool, error) {
			v, err := readKey(c.freezer, "cgroup.events", "frozen")
			return v == 1, err
		})
	}
	return c.setFrozen("freezer.state", "FROZEN", func() (bool, error) {
		b, err := readFile(c.freezer, "freezer.state")
		return string(bytes.TrimSpace(b)) == "FROZEN", err
	})
}

// thaw resumes the cgroup's processes.
func (c *cgroup) thaw() error {
	if c.h.v2 {
		return writeFile(c.freezer, "cgroup.freeze", "0")
	}
	return writeFile(c.freezer, "freezer.state", "THAWED")
}

// setFrozen writes the freeze request and polls until done() reports the
// cgroup frozen. Freezing is asynchronous: tasks freeze when they next
// return to user space or wake up. v1 can stay in FREEZING; re-writing the
// request retries, and after a deadline it gives up and thaws.
func (c *cgroup) setFrozen(file, val string, done func() (bool, error)) error {
	const timeout = 2 * time.Second
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Microsecond
	for i := 0; ; i++ {
		if i == 0 || i%16 == 0 {
			if err := writeFile(c.freezer, file, val); err != nil {
				return err
			}
		}
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			_ = c.thaw()
			return fmt.Errorf("freezing cgroup %s: not frozen after %v", c.freezer, timeout)
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Millisecond)
	}
}

// procs lists the processes in the cgroup (all controllers on v1).
func (c *cgroup) procs() ([]int, error) {
	var pids []int
	for _, d := range c.dirs {
		b, err := readFile(d, "cgroup.procs")
		if err != nil {
			return nil, err
		}
		for f := range strings.FieldsSeq(string(b)) {
			pid, err := strconv.Atoi(f)
			if err == nil && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

// kill SIGKILLs everything in the cgroup: cgroup.kill on v2 5.14+,
// otherwise freeze (so nothing forks or exits and recycles a pid while we
// read the list), kill each, thaw (frozen tasks die only once thawed on v1).
// The CPU quota is lifted first: a task that used its quota cannot run —
// so cannot freeze, nor act on SIGKILL — until the next period, up to a
// second later.
func (c *cgroup) kill() error {
	c.unthrottle()
	if c.h.v2 && c.h.killFile {
		return writeFile(c.freezer, "cgroup.kill", "1")
	}
	freezeErr := c.freeze()
	pids, err := c.procs()
	for _, pid := range pids {
		if kerr := unix.Kill(pid, unix.SIGKILL); kerr != nil && kerr != unix.ESRCH {
			err = errors.Join(err, fmt.Errorf("killing pid %d: %w", pid, kerr))
		}
	}
	if freezeErr == nil {
		err = errors.Join(err, c.thaw())
	}
	return err
}

// unthrottle lifts the cgroup's CPU quota (best effort: it is about to be
// killed).
func (c *cgroup) unthrottle() {
	if c.h.v2 {
		_ = writeFile(c.cpu, "cpu.max", "max")
		return
	}
	_ = writeFile(c.cpu, "cpu.cfs_quota_us", "-1")
}

// remove deletes the cgroup directories. A directory still holding tasks
// (EBUSY) gets its processes killed and is retried until ctx is done; a
// missing one is fine.
func (c *cgroup) remove(ctx context.Context) error {
	var errs []error
	for _, d := range c.dirs {
		if err := rmdirKilling(ctx, c, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func rmdirKilling(ctx context.Context, c *cgroup, dir string) error {
	wait := 50 * time.Microsecond
	for i := 0; ; i++ {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY {
			return fmt.Errorf("removing cgroup %s: %w", dir, err)
		}
		// EBUSY: tasks (or a nested cgroup) remain. Exiting tasks leave the
		// cgroup shortly; kill stragglers, but not on every retry.
		if i%8 == 0 {
			if err := c.kill(); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("removing cgroup %s: %w", dir, err)
			}
		}
		if i%64 == 63 {
			removeNested(dir)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("removing cgroup %s: still busy: %w", dir, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Millisecond)
	}
}

// removeNested removes sub-cgroups (sandboxed code cannot make them; a
// stale tree from elsewhere might have).
func removeNested(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			sub := filepath.Join(dir, e.Name())
			removeNested(sub)
			_ = unix.Rmdir(sub)
		}
	}
}

// oomKills is how many processes the kernel OOM-killed in this cgroup.
func (c *cgroup) oomKills() (uint64, error) {
	if c.h.v2 {
		return readKey(c.memory, "memory.events", "oom_kill")
	}
	return readKey(c.memory, "memory.oom_control", "oom_kill")
}

// peakMemory is the cgroup's peak memory use in bytes. It is read after
// every invocation, so the file stays open (fd caches it; the caller
// serialises calls and closes fd with closePeak).
func (c *cgroup) peakMemory() (uint64, error) {
	name := "memory.max_usage_in_bytes"
	if c.h.v2 {
		name = "memory.peak" // Linux 5.19+
	}
	if c.peakFD <= 0 {
		fd, err := unix.Open(c.memory+"/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("reading %s/%s: %w", c.memory, name, err)
		}
		c.peakFD = fd
	}
	var buf [32]byte
	n, err := unix.Pread(c.peakFD, buf[:], 0)
	for err == unix.EINTR {
		n, err = unix.Pread(c.peakFD, buf[:], 0)
	}
	if err != nil {
		return 0, fmt.Errorf("reading %s/%s: %w", c.memory, name, err)
	}
	b := buf[:n]
	v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing %s/%s: %w", c.memory, name, err)
	}
	return v, nil
}

// writeFile writes val to dir/name in one write(2), without the os.File
// machinery (cgroup files are written on the sandbox start path).
func writeFile(dir, name, val string) error {
	p := dir + "/" + name
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		for {
			_, err = unix.Write(fd, []byte(val))
			if err != unix.EINTR {
				break
			}
		}
		unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("writing %q to %s: %w", val, p, err)
	}
	return nil
}

// readFile reads a small cgroup file.
func readFile(dir, name string) ([]byte, error) {
	p := dir + "/" + name
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// readKey reads the value of "key value" in a flat-keyed cgroup file
// (memory.events, memory.oom_control, cgroup.events); 0 if absent.
func readKey(dir, name, key string) (uint64, error) {
	b, err := readFile(dir, name)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing %s in %s/%s: %w", key, dir, name, err)
			}
			return n, nil
		}
	}
	return 0, nil
}

func exists(p string) bool {
	return unix.Access(p, unix.F_OK) == nil
}

// limitMemory caps the memory of all this instance's sandboxes together
// (owl/<instance>), without swap; 0 removes the cap. Admission may
// overcommit the budget: when the sandboxes together reach it, the kernel
// OOM-kills function processes inside this cgroup, never Owl or the host.
func (h *hierarchy) limitMemory(mb int) error {
	val := "max"
	if !h.v2 {
		val = "-1"
	}
	if mb > 0 {
		val = strconv.FormatUint(uint64(mb)<<20, 10)
	}
	if h.v2 {
		if err := writeFile(h.memory, "memory.max", val); err != nil {
			return err
		}
		if h.swapMax {
			return writeFile(h.memory, "memory.swap.max", "0")
		}
		return nil
	}
	if !h.memsw {
		return writeFile(h.memory, "memory.limit_in_bytes", val)
	}
	// memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes:
	// raise memsw first when growing, lower it last when shrinking.
	if err := writeFile(h.memory, "memory.limit_in_bytes", val); err == nil {
		return writeFile(h.memory, "memory.memsw.limit_in_bytes", val)
	}
	if err := writeFile(h.memory, "memory.memsw.limit_in_bytes", val); err != nil {
		return err
	}
	return writeFile(h.memory, "memory.limit_in_bytes", val)
}
