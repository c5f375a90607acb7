package sandbox

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Pre-warmed sandboxes (Spec.Slots) and their specialisation.
//
// A sandbox created with Spec.Slots gets no code, layers or /tmp: its
// /var/task, /opt and /tmp are bind mounts of three host directories, the
// slots, under <RootDir>/slots/<ID>/. Each slot is a mount point of its own
// on the host, in a peer group of its own (shared), and the sandbox's bind
// of it is a *slave* of that group: a mount that the host later puts on the
// slot propagates into the sandbox, one way. Specialize uses that to attach
// a function's code (read-only), layers (read-only) and a /tmp disk of the
// function's size (tmpdisk_linux.go) to a sandbox whose runtime is already running.
//
// What keeps this safe:
//   - Propagation is host → sandbox only (slave). The sandbox cannot mount
//     anything (no capabilities, seccomp) and could not propagate back anyway.
//   - <RootDir>/slots is a private mount on the host, so slot mounts do not
//     spread to the host's other mount namespaces (e.g. systemd services').
//   - The mounts attached to a slot are made read-only, nosuid and nodev
//     before they are attached (a propagated mount keeps its own flags; a
//     remount afterwards would not reach the sandbox's copy).
//   - Slots are owned by root, unmounted and removed by Destroy, and by
//     CleanupStale/Close after a crash.

// slotNames are the slots of a pre-warmed sandbox and where the sandbox
// sees them.
var slotNames = [...]struct{ name, path string }{
	{"task", "/var/task"},
	{"opt", "/opt"},
	{"tmp", "/tmp"},
}

func (m *Manager) slotsRoot() string { return filepath.Join(m.cfg.RootDir, "slots") }

// ensureSlotsRoot makes <RootDir>/slots a private mount (once).
func (m *Manager) ensureSlotsRoot() error {
	m.slotsMu.Lock()
	defer m.slotsMu.Unlock()
	if m.slotsReady {
		return nil
	}
	root := m.slotsRoot()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", root, err)
	}
	mps, err := mountPoints(root)
	if err != nil {
		return err
	}
	if !containsString(mps, root) {
		if err := unix.Mount(root, root, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding %s: %w", root, err)
		}
	}
	if err := unix.Mount("", root, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making %s private: %w", root, err)
	}
	m.slotsReady = true
	return nil
}

// makeSlots creates the slots of sandbox id: each a shared mount point of
// its own. It returns their parent directory.
func (m *Manager) makeSlots(id string) (dir string, err error) {
	if err := m.ensureSlotsRoot(); err != nil {
		return "", err
	}
	dir = filepath.Join(m.slotsRoot(), id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating slots: %w (left by a previous run? Manager.CleanupStale removes it)", err)
	}
	defer func() {
		if err != nil {
			_ = removeSlots(dir)
		}
	}()
	for _, s := range slotNames {
		p := filepath.Join(dir, s.name)
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", fmt.Errorf("creating slot: %w", err)
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND, ""); err != nil {
			return "", fmt.Errorf("binding slot %s: %w", p, err)
		}
		// Private first: a peer group of its own, not the parent's.
		if err := unix.Mount("", p, "", unix.MS_PRIVATE, ""); err != nil {
			return "", fmt.Errorf("slot %s: %w", p, err)
		}
		if err := unix.Mount("", p, "", unix.MS_SHARED, ""); err != nil {
			return "", fmt.Errorf("sharing slot %s: %w", p, err)
		}
	}
	return dir, nil
}

// removeSlots unmounts everything on and under a sandbox's slot directory
// and removes it. It never deletes files below a mount point: only empty
// directories are removed.
func removeSlots(dir string) error {
	var errs []error
	mps, err := mountPoints(dir)
	if err != nil {
		return err
	}
	// Deepest (and latest) first.
	for i := len(mps) - 1; i >= 0; i-- {
		if err := unix.Unmount(mps[i], unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", mps[i], err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, s := range slotNames {
		if err := os.Remove(filepath.Join(dir, s.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cleanupStaleSlots removes the slots of sandboxes that are not this
// Manager's (a crashed previous run); it returns how many.
func (m *Manager) cleanupStaleSlots() (int, error) {
	return removeEntries(m.slotsRoot(), func(name string) bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		_, mine := m.live[name]
		return mine
	}, removeSlots)
}

// removeEntries removes with remove each entry of dir that keep does not
// claim; it returns how many it removed. A missing dir has none.
func removeEntries(dir string, keep func(name string) bool, remove func(path string) error) (int, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range ents {
		if keep(e.Name()) {
			continue
		}
		if err := remove(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// closeSlots unmounts and removes <RootDir>/slots once every sandbox is
// gone (Close).
func (m *Manager) closeSlots() error {
	root := m.slotsRoot()
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := m.cleanupStaleSlots()
	mps, merr := mountPoints(root)
	if merr != nil {
		return errors.Join(err, merr)
	}
	for i := len(mps) - 1; i >= 0; i-- {
		if uerr := unix.Unmount(mps[i], unix.MNT_DETACH); uerr != nil && uerr != unix.EINVAL {
			err = errors.Join(err, fmt.Errorf("unmounting %s: %w", mps[i], uerr))
		}
	}
	if rerr := os.Remove(root); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// mountPoints lists the mount points of this mount namespace at or below
// dir, in mount order (parents before children).
func mountPoints(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// Stable by depth: parents first, mount order among equals.
	sort.SliceStable(out, func(i, j int) bool { return strings.Count(out[i], "/") < strings.Count(out[j], "/") })
	return out, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// attachReadOnly mounts a read-only, nosuid, nodev copy of src (with its
// submounts) on the slot: the flags are set on the detached copy, before
// it is attached, so that the copy propagated into the sandbox has them.
func attachReadOnly(src, slot string) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	defer unix.Close(fd)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("making %s read-only: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, slot, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attaching %s to %s: %w", src, slot, err)
	}
	return nil
}

// Specialize gives a pre-warmed sandbox (Spec.Slots) a function's code,
// layers, /tmp, limits and network. The runtime inside sees the mounts at
// once (it must enter /var/task again: its working directory is the empty
// slot beneath). A DeferExec sandbox's waiting init then enters /var/task
// and execs sp.Argv with exactly sp.Env. A sandbox is specialised at most
// once. On error the caller destroys the sandbox: it is in an unknown
// state.
func (s *Sandbox) Specialize(sp Specialization) error {
	if sp.TmpMB == 0 {
		sp.TmpMB = DefaultTmpMB
	}
	if sp.PidsMax == 0 {
		sp.PidsMax = DefaultPidsMax
	}
	switch {
	case !filepath.IsAbs(sp.CodeDir):
		return fmt.Errorf("sandbox %s: specialize: CodeDir must be an absolute path, got %q", s.id, sp.CodeDir)
	case sp.OptDir != "" && !filepath.IsAbs(sp.OptDir):
		return fmt.Errorf("sandbox %s: specialize: OptDir must be an absolute path, got %q", s.id, sp.OptDir)
	case sp.MemoryMB < MinMemoryMB:
		return fmt.Errorf("sandbox %s: specialize: MemoryMB must be at least %d, got %d", s.id, MinMemoryMB, sp.MemoryMB)
	case sp.TmpMB < 1 || sp.TmpMB > MaxTmpMB:
		return fmt.Errorf("sandbox %s: specialize: TmpMB must be between 1 and %d, got %d", s.id, MaxTmpMB, sp.TmpMB)
	case sp.Egress && s.m.net == nil:
		return fmt.Errorf("sandbox %s: specialize: %w", s.id, ErrNoEgress)
	}
	command, err := s.checkCommand(sp)
	if err != nil {
		return fmt.Errorf("sandbox %s: specialize: %w", s.id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.destroyed:
		return fmt.Errorf("sandbox %s: %w", s.id, ErrDestroyed)
	case s.slots == "":
		return fmt.Errorf("sandbox %s: specialize: not a pre-warmed sandbox (Spec.Slots)", s.id)
	case s.specialized:
		return fmt.Errorf("sandbox %s: specialize: already specialized", s.id)
	case s.veth != nil && !sp.Egress:
		return fmt.Errorf("sandbox %s: specialize: it was created with Egress, the function has none", s.id)
	}
	select {
	case <-s.done:
		return fmt.Errorf("sandbox %s: specialize: the sandbox has exited", s.id)
	default:
	}
	s.specialized = true
	defer s.m.tmp.refillSoon() // the /tmp disk it takes, once done
	start := time.Now()
	if err := s.specialize(sp); err != nil {
		return fmt.Errorf("sandbox %s: specialize: %w", s.id, err)
	}
	attached := time.Since(start)
	if command != nil {
		if err := s.execCommand(command); err != nil {
			return fmt.Errorf("sandbox %s: specialize: %w", s.id, err)
		}
	}
	s.m.log.Debug("sandbox specialized", "sandbox", s.id, "attached", attached, "took", time.Since(start))
	return nil
}

// execTimeout bounds the waiting init's exec of its command.
const execTimeout = 10 * time.Second

// checkCommand validates and encodes the command of a DeferExec sandbox
// (Specialization.Argv and Env), which only such a sandbox takes; nil for
// another sandbox.
func (s *Sandbox) checkCommand(sp Specialization) ([]byte, error) {
	s.mu.Lock()
	waiting := s.ctl != nil
	s.mu.Unlock()
	switch {
	case !waiting && len(sp.Argv)+len(sp.Env) > 0:
		return nil, errors.New("a command (Spec.Argv, Spec.Env) is only for a sandbox created with DeferExec")
	case !waiting:
		return nil, nil
	}
	if err := validateCommand(sp.Argv, sp.Env); err != nil {
		return nil, err
	}
	b, err := json.Marshal(execCommand{Argv: sp.Argv, Env: sp.Env})
	if err != nil {
		return nil, fmt.Errorf("encoding the command: %w", err)
	}
	return b, nil
}

// execCommand has the waiting init exec command, once the function's
// mounts, limits and network are in place; s.mu is held.
func (s *Sandbox) execCommand(command []byte) error {
	ctl := s.ctl
	s.ctl = nil
	defer ctl.Close()
	_ = ctl.SetDeadline(time.Now().Add(execTimeout))
	step, err := startEntrypoint(ctl, command)
	if step != "" {
		return fmt.Errorf("%s: %w: %w", step, errInitDied, err)
	}
	return err
}

// specialize attaches /tmp and /opt before the code: a runtime waiting for
// its code finds the rest in place when the code appears.
func (s *Sandbox) specialize(sp Specialization) error {
	tmp, err := s.m.tmp.take(sp.TmpMB)
	if err != nil {
		return err
	}
	s.tmp = tmp // Destroy releases it
	// Already nosuid,nodev (tmpdisk_linux.go): propagated as it is.
	if err := unix.MoveMount(int(tmp.mnt.Fd()), "", unix.AT_FDCWD, filepath.Join(s.slots, "tmp"), unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mounting /tmp: %w", err)
	}
	if sp.OptDir != "" {
		if err := attachReadOnly(sp.OptDir, filepath.Join(s.slots, "opt")); err != nil {
			return err
		}
	}
	if err := attachReadOnly(sp.CodeDir, filepath.Join(s.slots, "task")); err != nil {
		return err
	}
	lim := limits{memoryBytes: uint64(sp.MemoryMB) << 20, pidsMax: sp.PidsMax, memoryMB: sp.MemoryMB}
	if err := s.cg.setLimits(lim); err != nil {
		return fmt.Errorf("setting limits: %w", err)
	}
	s.armMemGuard(lim.memoryBytes)
	if sp.Egress && s.veth == nil {
		veth, err := s.m.net.attach(s.cmd.Process.Pid)
		if err != nil {
			return err
		}
		s.veth = veth // Destroy detaches it
		pid := s.cmd.Process.Pid
		if err := inNetns(func() error { return enterNetns(-1, pid) }, func() error { return s.m.net.configureInside(veth) }); err != nil {
			return err
		}
	}
	return nil
}
