package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Sandbox is one running process tree in its own namespaces and cgroup.
// Its methods are safe for concurrent use.
type Sandbox struct {
	id   string
	m    *Manager
	cg   *cgroup
	cmd  *exec.Cmd
	ln   net.Listener
	veth *vethLink // egress network; nil without Spec.Egress (or until Specialize)
	out  *os.File
	// slots is the host directory of a pre-warmed sandbox's slots (Spec.Slots); "" otherwise.
	slots string
	// ctl is a DeferExec sandbox's end of the control socket to its
	// waiting init, until Specialize has it exec the command; nil
	// otherwise. Guarded by mu.
	ctl         *os.File
	specialized bool     // guarded by mu
	tmp         *tmpDisk // its /tmp; nil for a pre-warmed one until Specialize

	done chan struct{} // closed by reap once pid 1 is reaped
	// Written by reap before done is closed, read only after.
	exitErr   error
	oomKilled bool

	guard     *memGuard   // kills the sandbox when its memory is exhausted; nil until armed
	memKilled atomic.Bool // the guard killed it

	mu        sync.Mutex // serializes Freeze, Thaw and the start of Destroy
	frozen    bool       // guarded by mu
	destroyed bool       // guarded by mu

	destroyOnce sync.Once
	destroyErr  error
}

// reap waits for pid 1 to exit, records how, and closes done.
func (s *Sandbox) reap(pidf *os.File) {
	if pidf != nil {
		if rc, err := pidf.SyscallConn(); err == nil {
			// Readable once the process has exited; WNOWAIT leaves the
			// reaping to cmd.Wait below, which then does not block.
			_ = rc.Read(func(fd uintptr) bool {
				var info unix.Siginfo
				err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
				if err == unix.EAGAIN || err == unix.EINTR {
					return false
				}
				return err != nil || info.Signo != 0
			})
		}
		pidf.Close()
	}
	err := s.cmd.Wait()
	n, _ := s.cg.oomKills()
	s.exitErr = err
	s.oomKilled = n > 0 || s.memKilled.Load()
	close(s.done)
}

// ID returns Spec.ID.
func (s *Sandbox) ID() string { return s.id }

// Pid returns the host pid of the sandbox's pid 1 (the entrypoint).
func (s *Sandbox) Pid() int { return s.cmd.Process.Pid }

// Listener returns the Runtime API listener, bound to Spec.RuntimeAPIAddr
// inside the sandbox's network namespace: only the sandbox can connect.
// Connections queue in its backlog until the caller accepts them. Destroy
// closes it.
func (s *Sandbox) Listener() net.Listener { return s.ln }

// Output returns the read end of the one pipe that the entrypoint's stdout
// and stderr (and those of its children) write to. The caller owns reading
// it, and must keep reading: a full pipe (64 KiB) blocks the function's
// writes. It is non-blocking and pollable (read deadlines work); the write
// end is not held by Owl, so it reports EOF once every process of the
// sandbox has exited. Read what is left after Done and before Destroy,
// which closes it.
func (s *Sandbox) Output() *os.File { return s.out }

// Done is closed once the sandbox's pid 1 has exited and been reaped; the
// whole pid namespace is gone by then.
func (s *Sandbox) Done() <-chan struct{} { return s.done }

// ExitError reports how pid 1 ended, once Done is closed: nil for exit
// status 0, else an *exec.ExitError ("exit status 3", "signal: killed").
// It returns nil before Done is closed.
func (s *Sandbox) ExitError() error {
	select {
	case <-s.done:
		return s.exitErr
	default:
		return nil
	}
}

// OOMKilled reports whether the kernel killed a process of the sandbox for
// exceeding the memory limit (pid 1 or a child of it). After Done it is
// final; before, it is the current state.
func (s *Sandbox) OOMKilled() bool {
	select {
	case <-s.done:
		return s.oomKilled
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return false
	}
	n, _ := s.cg.oomKills()
	return n > 0 || s.memKilled.Load()
}

// armMemGuard arms the sandbox's memory guard (memguard_linux.go) for
// limit: at creation, and again when Specialize changes the limit. Without
// it the kernel's OOM killer still enforces the limit, only later: a
// failure is logged, once per Manager.
//
// On cgroup v1 the arming runs in the background: registering a threshold
// waits for an RCU grace period (~10 ms here, more than the rest of a
// sandbox's creation or specialisation). The limit applies to the guard's
// checks at once (a crossing of an older threshold is judged against it),
// the kernel enforces it meanwhile, and the arming ends with a check of
// the usage it may have missed. Destroy waits for it (the guard's lock).
// On v2 it is a write of memory.high, done at once.
func (s *Sandbox) armMemGuard(limit uint64) {
	if s.guard == nil {
		s.guard = s.m.mem.guard(s.cg, func() { s.memKilled.Store(true) })
	}
	if !s.guard.raise(limit) {
		return // unchanged: a spare specialised to its own 128 MB
	}
	arm := func() {
		if err := s.guard.arm(); err != nil {
			s.m.mem.warnOnce(err)
		}
	}
	if s.m.cg.v2 {
		arm()
		return
	}
	go arm()
}

// MaxMemoryBytes returns the peak memory use of the sandbox's cgroup
// (memory.max_usage_in_bytes on v1, memory.peak on v2). It works until
// Destroy, including after Done.
func (s *Sandbox) MaxMemoryBytes() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return 0, fmt.Errorf("sandbox %s: %w", s.id, ErrDestroyed)
	}
	v, err := s.cg.peakMemory()
	if err != nil {
		return 0, fmt.Errorf("sandbox %s: %w", s.id, err)
	}
	return v, nil
}

// Freeze stops every process of the sandbox (cgroup freezer) and returns
// once they are all stopped. A frozen sandbox uses no CPU.
func (s *Sandbox) Freeze() error { return s.setFrozen(s.cg.freeze, true) }

// Thaw resumes a frozen sandbox.
func (s *Sandbox) Thaw() error { return s.setFrozen(s.cg.thaw, false) }

// setFrozen runs the cgroup's freeze or thaw (op) unless the sandbox is
// destroyed, and records the state it leaves the sandbox in.
func (s *Sandbox) setFrozen(op func() error, frozen bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return fmt.Errorf("sandbox %s: %w", s.id, ErrDestroyed)
	}
	if err := op(); err != nil {
		return fmt.Errorf("sandbox %s: %w", s.id, err)
	}
	s.frozen = frozen
	return nil
}

// Destroy kills the sandbox (SIGKILL to pid 1 ends its whole pid namespace;
// anything else left in the cgroup is killed too), waits until it is
// reaped, closes the listener and the output and removes the cgroup.
// Idempotent, safe to call concurrently and whether or not Done has fired.
func (s *Sandbox) Destroy() error {
	s.destroyOnce.Do(func() {
		s.destroyErr = s.destroy()
		if s.destroyErr != nil {
			s.destroyErr = fmt.Errorf("sandbox %s: destroying: %w", s.id, s.destroyErr)
			s.m.log.Warn("destroying sandbox", "sandbox", s.id, "err", s.destroyErr)
		}
	})
	return s.destroyErr
}

func (s *Sandbox) destroy() error {
	s.mu.Lock()
	s.destroyed = true
	frozen := s.frozen
	if s.ctl != nil {
		s.ctl.Close() // a waiting init gives up
		s.ctl = nil
	}
	s.cg.closePeak()
	guard := s.guard
	s.mu.Unlock()
	if guard != nil {
		guard.close()
	}
	var errs []error
	// A throttled sandbox (a busy loop that used its CPU quota) would act
	// on SIGKILL only in the next quota period, up to a second later.
	s.cg.unthrottle()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errs = append(errs, fmt.Errorf("killing pid 1: %w", err))
	}
	if frozen {
		// On v1, frozen tasks die only once thawed.
		if err := s.cg.thaw(); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
		}
	}
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	if err := s.cg.remove(ctx); err != nil {
		errs = append(errs, err)
	}
	if s.veth != nil {
		s.m.net.detach(s.veth)
	}
	if s.slots != "" {
		if err := removeSlots(s.slots); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	tmp := s.tmp
	s.mu.Unlock()
	if tmp != nil {
		// Its filesystem, loop device and image go once the sandbox's
		// mount namespace is gone too (the kernel's, a moment later).
		s.m.tmp.release(tmp)
	}
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	if err := s.out.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		errs = append(errs, err)
	}
	s.m.forget(s)
	return errors.Join(errs...)
}
