package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cloneFlags are the namespaces every sandbox gets. A user namespace is
// not used yet.
const cloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNET

// initEnv is the environment of the re-executed init (not of the function,
// which gets exactly Spec.Env): an explicit GOMAXPROCS skips the runtime's
// cgroup CPU-limit probing at start-up, and the short-lived init needs no GC.
var initEnv = []string{"GOMAXPROCS=1", "GOGC=off"}

// removeTimeout bounds how long Destroy waits for a cgroup to empty.
const removeTimeout = 10 * time.Second

// Manager creates and tracks the sandboxes of one Owl instance.
// Its methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	cg      *hierarchy
	rootfs  string   // empty dir: mount point of every sandbox's root tmpfs
	devNull *os.File // stdin of every sandbox

	mu       sync.Mutex
	closed   bool                // guarded by mu
	live     map[string]*Sandbox // guarded by mu; a nil value reserves an ID being created
	inflight sync.WaitGroup      // Creates in progress; Close waits for them

	closeOnce sync.Once
	closeErr  error
}

// NewManager detects the cgroup mode (v2, or v1 controllers on v1/hybrid
// hosts) and creates owl/<Instance> in each hierarchy used. It does not
// clean up after a previous run: call CleanupStale for that.
func NewManager(cfg Config) (*Manager, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: creating sandboxes requires root", ErrUnsupported)
	}
	rootfs := filepath.Join(cfg.RootDir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox manager: creating %s: %w", rootfs, err)
	}
	h, err := detectHierarchy(cfg.Instance)
	if err != nil {
		return nil, fmt.Errorf("sandbox manager: %w", err)
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("sandbox manager: %w", err)
	}
	m := &Manager{
		cfg:     cfg,
		log:     log.With("component", "sandbox"),
		cg:      h,
		rootfs:  rootfs,
		devNull: devNull,
		live:    map[string]*Sandbox{},
	}
	m.log.Debug("sandbox manager ready", "instance", cfg.Instance, "cgroup_v2", h.v2, "cgroups", h.dirs)
	return m, nil
}

// CleanupStale kills every process left in this instance's sandbox cgroups
// (a previous Owl process that was killed or crashed) and removes those
// cgroups, returning how many it removed. Sandboxes of this Manager are
// left alone. Call it at start-up, before serving. Mounts and namespaces
// need no cleanup: they die with the processes.
func (m *Manager) CleanupStale(ctx context.Context) (int, error) {
	names, err := m.cg.children()
	if err != nil {
		return 0, fmt.Errorf("sandbox cleanup: %w", err)
	}
	removed := 0
	var errs []error
	for _, name := range names {
		m.mu.Lock()
		_, mine := m.live[name]
		m.mu.Unlock()
		if mine {
			continue
		}
		cg := m.cg.sandbox(name)
		pids, _ := cg.procs()
		if err := cg.kill(); err != nil && !errors.Is(err, unix.ENOENT) {
			m.log.Warn("killing stale sandbox", "sandbox", name, "err", err)
		}
		if err := cg.remove(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
		m.log.Info("removed stale sandbox", "sandbox", name, "killed", len(pids))
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("sandbox cleanup: %w", err)
	}
	return removed, nil
}

// Close destroys every live sandbox of this Manager (waiting for Creates in
// progress) and removes the owl/<Instance> cgroups. Create fails with
// ErrClosed afterwards. Idempotent.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.inflight.Wait()

		m.mu.Lock()
		var all []*Sandbox
		for _, s := range m.live {
			if s != nil {
				all = append(all, s)
			}
		}
		m.mu.Unlock()
		errs := make([]error, len(all))
		var wg sync.WaitGroup
		for i, s := range all {
			wg.Go(func() { errs[i] = s.Destroy() })
		}
		wg.Wait()
		errs = append(errs, m.cg.removeInstance(), m.devNull.Close())
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

func (m *Manager) forget(s *Sandbox) {
	m.mu.Lock()
	if m.live[s.id] == s {
		delete(m.live, s.id)
	}
	m.mu.Unlock()
}

// Sandbox is one running process tree in its own namespaces and cgroup.
// Its methods are safe for concurrent use.
type Sandbox struct {
	id  string
	m   *Manager
	cg  *cgroup
	cmd *exec.Cmd
	ln  net.Listener
	out *os.File

	done chan struct{} // closed by reap once pid 1 is reaped
	// Written by reap before done is closed, read only after.
	exitErr   error
	oomKilled bool

	mu        sync.Mutex // serializes Freeze, Thaw and the start of Destroy
	frozen    bool       // guarded by mu
	destroyed bool       // guarded by mu

	destroyOnce sync.Once
	destroyErr  error
}

// Create starts a sandbox running spec.Argv and returns once the entrypoint
// has been exec'd as pid 1 of the sandbox's namespaces, inside its cgroup,
// with the Runtime API listener ready. On any failure everything is rolled
// back and the error names the sandbox and the step. An entrypoint that
// cannot be exec'd gives an error wrapping ErrInvalidEntrypoint.
func (m *Manager) Create(ctx context.Context, spec Spec) (*Sandbox, error) {
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(spec.CodeDir); err != nil {
		return nil, fmt.Errorf("sandbox %s: code dir: %w", spec.ID, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("sandbox %s: code dir %s is not a directory", spec.ID, spec.CodeDir)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, fmt.Errorf("sandbox %s: %w", spec.ID, ErrClosed)
	}
	if _, dup := m.live[spec.ID]; dup {
		m.mu.Unlock()
		return nil, fmt.Errorf("sandbox %s: ID already in use", spec.ID)
	}
	m.live[spec.ID] = nil
	m.inflight.Add(1)
	m.mu.Unlock()
	defer m.inflight.Done()

	start := time.Now()
	s, err := m.start(ctx, spec)
	m.mu.Lock()
	if err != nil {
		delete(m.live, spec.ID)
	} else {
		m.live[spec.ID] = s
	}
	m.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", spec.ID, err)
	}
	m.log.Debug("sandbox created", "sandbox", spec.ID, "pid", s.Pid(), "took", time.Since(start))
	return s, nil
}

// start does the work of Create; undo holds the rollback steps.
func (m *Manager) start(ctx context.Context, spec Spec) (_ *Sandbox, err error) {
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	cg := m.cg.sandbox(spec.ID)
	if err := cg.create(limits{memoryBytes: uint64(spec.MemoryMB) << 20, pidsMax: spec.PidsMax, memoryMB: spec.MemoryMB}); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("%w (left by a previous run? Manager.CleanupStale removes it)", err)
		}
		return nil, err
	}
	undo = append(undo, func() {
		ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
		defer cancel()
		if err := cg.remove(ctx); err != nil {
			m.log.Warn("rolling back sandbox cgroup", "sandbox", spec.ID, "err", err)
		}
	})

	config, err := json.Marshal(initConfig{
		Root:     m.rootfs,
		CodeDir:  spec.CodeDir,
		Argv:     spec.Argv,
		Env:      spec.Env,
		TmpMB:    spec.TmpMB,
		UID:      spec.UID,
		GID:      spec.GID,
		Hostname: Hostname,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding init config: %w", err)
	}

	ctl, initCtl, err := syncPair()
	if err != nil {
		return nil, err
	}
	defer ctl.Close() // only needed until the entrypoint runs
	outR, outW, err := os.Pipe()
	if err != nil {
		initCtl.Close()
		return nil, fmt.Errorf("creating output pipe: %w", err)
	}
	undo = append(undo, func() { outR.Close() })

	pidfd := -1
	attr := &syscall.SysProcAttr{
		Cloneflags: cloneFlags,
		Setsid:     true,
		Pdeathsig:  syscall.SIGKILL,
		PidFD:      &pidfd,
	}
	if m.cg.v2 {
		fd, err := cg.openDir()
		if err != nil {
			initCtl.Close()
			outW.Close()
			return nil, err
		}
		defer unix.Close(fd)
		attr.UseCgroupFD, attr.CgroupFD = true, fd
	}
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{initArg0},
		Env:         initEnv,
		Stdin:       m.devNull,
		Stdout:      outW,
		Stderr:      outW,
		ExtraFiles:  []*os.File{initCtl},
		SysProcAttr: attr,
	}
	err = cmd.Start()
	initCtl.Close()
	outW.Close()
	if err != nil {
		return nil, fmt.Errorf("starting sandbox init: %w", err)
	}
	var pidf *os.File
	if pidfd >= 0 {
		pidf = pollablePidfd(pidfd)
	}
	undo = append(undo, func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if pidf != nil {
			pidf.Close()
		}
	})

	// While the init builds its mounts, the parent does its share.
	stop := context.AfterFunc(ctx, func() { ctl.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := writeFrame(ctl, frameConfig, config); err != nil {
		return nil, m.initDied(ctx, cmd, cg, "sending config", err)
	}
	if !m.cg.v2 {
		if err := cg.addProc(cmd.Process.Pid); err != nil {
			return nil, err
		}
	}
	ln, err := listenInNetns(pidfd, cmd.Process.Pid, spec.RuntimeAPIAddr)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { ln.Close() })

	kind, payload, err := readFrame(ctl)
	switch {
	case err != nil:
		return nil, m.initDied(ctx, cmd, cg, "waiting for sandbox init", err)
	case kind == frameFailed:
		return nil, decodeInitFailure(payload)
	case kind != frameReady:
		return nil, fmt.Errorf("sandbox init: unexpected frame %q", kind)
	}
	if err := writeFrame(ctl, frameGo, nil); err != nil {
		return nil, m.initDied(ctx, cmd, cg, "starting entrypoint", err)
	}
	// EOF: fd 3 was closed by a successful exec.
	kind, payload, err = readFrame(ctl)
	switch {
	case err == io.EOF:
	case err != nil:
		return nil, m.initDied(ctx, cmd, cg, "waiting for exec", err)
	case kind == frameExecFailed:
		return nil, fmt.Errorf("%w: %w", ErrInvalidEntrypoint, decodeInitFailure(payload))
	default:
		return nil, fmt.Errorf("sandbox init: unexpected frame %q", kind)
	}

	s := &Sandbox{
		id:   spec.ID,
		m:    m,
		cg:   cg,
		cmd:  cmd,
		ln:   ln,
		out:  outR,
		done: make(chan struct{}),
	}
	go s.reap(pidf)
	return s, nil
}

// syncPair makes the parent/init socket pair: the parent's end is
// non-blocking (deadlines work, for ctx), the init's end is blocking.
func syncPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("creating init socket pair: %w", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("creating init socket pair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "sandbox-sync"), os.NewFile(uintptr(fds[1]), "sandbox-sync-init"), nil
}

// pollablePidfd wraps a pidfd so that reap can wait for the exit in the
// netpoller instead of blocking an OS thread per sandbox in waitid.
func pollablePidfd(fd int) *os.File {
	_ = unix.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), "pidfd")
}

// initDied explains a broken conversation with the init: ctx ended, or the
// init died (e.g. killed by the memory limit while starting).
func (m *Manager) initDied(ctx context.Context, cmd *exec.Cmd, cg *cgroup, step string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", step, ctxErr)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) {
		_ = cmd.Process.Kill()
		werr := cmd.Wait()
		if n, _ := cg.oomKills(); n > 0 {
			return fmt.Errorf("%s: sandbox init was killed by the memory limit", step)
		}
		return fmt.Errorf("%s: sandbox init exited without reporting: %v", step, werr)
	}
	return fmt.Errorf("%s: %w", step, err)
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
	s.oomKilled = n > 0
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
	return n > 0
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
func (s *Sandbox) Freeze() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return fmt.Errorf("sandbox %s: %w", s.id, ErrDestroyed)
	}
	if err := s.cg.freeze(); err != nil {
		return fmt.Errorf("sandbox %s: %w", s.id, err)
	}
	s.frozen = true
	return nil
}

// Thaw resumes a frozen sandbox.
func (s *Sandbox) Thaw() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return fmt.Errorf("sandbox %s: %w", s.id, ErrDestroyed)
	}
	if err := s.cg.thaw(); err != nil {
		return fmt.Errorf("sandbox %s: %w", s.id, err)
	}
	s.frozen = false
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
	s.mu.Unlock()
	var errs []error
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
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	if err := s.out.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		errs = append(errs, err)
	}
	s.m.forget(s)
	return errors.Join(errs...)
}
