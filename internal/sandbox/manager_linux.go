package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

const (
	// removeTimeout bounds how long Destroy waits for a cgroup to empty.
	removeTimeout = 10 * time.Second
	// spareRetry is how long the spare refill waits after a failure.
	spareRetry = time.Second
)

// Manager creates and tracks the sandboxes of one Owl instance.
// Its methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	cg      *hierarchy
	rootfs  string   // empty dir: mount point of every sandbox's root tmpfs
	devNull *os.File // stdin of every sandbox
	nonce   string   // names this Manager's spare cgroups (v2)
	net     *network // the egress network; nil without Config.Egress
	mem     *memWatcher
	tmp     *tmpDisks // every sandbox's /tmp

	mu           sync.Mutex
	closed       bool                // guarded by mu
	live         map[string]*Sandbox // guarded by mu; a nil value reserves an ID being created
	spareCgroups map[string]bool     // guarded by mu; v2 cgroups named for a spare (until the spare or its sandbox is gone)
	spareSeq     int                 // guarded by mu

	slotsMu    sync.Mutex // guards slotsReady
	slotsReady bool       // <RootDir>/slots is a private mount

	etcMu    sync.Mutex        // serialises building the /etc directories
	etcDirs  map[[2]int]string // guarded by etcMu; uid:gid → prepared /etc
	inflight sync.WaitGroup    // Creates in progress; Close waits for them

	spares     chan *initProc // started inits waiting for a Spec; only refill sends
	refillKick chan struct{}  // cap 1: "a spare was taken"
	stopRefill chan struct{}  // closed by Close
	refillDone chan struct{}  // closed when the refill goroutine has exited

	closeOnce sync.Once
	closeErr  error
}

// NewManager detects the cgroup mode (v2, or v1 controllers on v1/hybrid
// hosts) and creates owl/<Instance> in each hierarchy used. With
// Config.Spares > 0 it starts keeping that many inits ready in the
// background. It does not clean up after a previous run: call CleanupStale.
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
	mkfs, err := findMkfs()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	var netw *network
	if cfg.Egress != nil {
		if netw, err = setupNetwork(cfg.Instance, cfg.Egress, log.With("component", "sandbox")); err != nil {
			return nil, fmt.Errorf("sandbox manager: %w", err)
		}
	}
	h, err := detectHierarchy(cfg.Instance)
	if err == nil {
		if err = h.limitMemory(cfg.MemoryBudgetMB); err != nil {
			err = fmt.Errorf("capping the sandboxes' memory at %d MB: %w", cfg.MemoryBudgetMB, err)
		}
	}
	var devNull *os.File
	if err == nil {
		devNull, err = os.Open(os.DevNull)
	}
	if err != nil {
		if netw != nil {
			_ = netw.teardown()
		}
		return nil, fmt.Errorf("sandbox manager: %w", err)
	}
	nonce := make([]byte, 4)
	rand.Read(nonce)
	m := &Manager{
		cfg:          cfg,
		log:          log.With("component", "sandbox"),
		cg:           h,
		rootfs:       rootfs,
		devNull:      devNull,
		nonce:        hex.EncodeToString(nonce),
		net:          netw,
		mem:          newMemWatcher(h.v2, log.With("component", "sandbox")),
		live:         map[string]*Sandbox{},
		spareCgroups: map[string]bool{},
		etcDirs:      map[[2]int]string{},
		spares:       make(chan *initProc, cfg.Spares),
		refillKick:   make(chan struct{}, 1),
		stopRefill:   make(chan struct{}),
		refillDone:   make(chan struct{}),
	}
	// The default identity's /etc is built now, off the first cold start.
	if _, err = m.etcDir(DefaultUID, DefaultGID); err == nil {
		m.tmp, err = newTmpDisks(filepath.Join(cfg.RootDir, tmpDisksDir, m.nonce), mkfs, cfg.TmpSpares, m.log)
	}
	if err != nil {
		devNull.Close()
		if netw != nil {
			_ = netw.teardown()
		}
		return nil, fmt.Errorf("sandbox manager: %w", err)
	}
	if cfg.Spares > 0 {
		m.refillKick <- struct{}{}
		go m.refill()
	} else {
		close(m.refillDone)
	}
	m.log.Debug("sandbox manager ready", "instance", cfg.Instance, "cgroup_v2", h.v2, "cgroups", h.dirs, "spares", cfg.Spares)
	return m, nil
}

// CleanupStale kills every process left in this instance's sandbox cgroups
// (a previous Owl process that was killed or crashed) and removes those
// cgroups, returning how many it removed. Sandboxes and spares of this
// Manager are left alone. Call it at start-up, before serving. Mounts and
// namespaces need no cleanup: they die with the processes.
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
		mine = mine || m.spareCgroups[name]
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
	// A crashed run's /tmp templates and half-made images.
	if n, err := cleanupStaleTmp(filepath.Join(m.cfg.RootDir, tmpDisksDir), m.tmp.dir); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		m.log.Info("removed stale /tmp disk directories", "count", n)
	}
	// After the kills above: the slots of pre-warmed sandboxes.
	if n, err := m.cleanupStaleSlots(); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		m.log.Info("removed stale pre-warm slots", "count", n)
	}
	if m.net != nil {
		// After the kills above: a stale veth mostly vanishes with its
		// sandbox's network namespace; what remains is deleted here.
		n, err := m.net.cleanupStale()
		if n > 0 {
			m.log.Info("removed stale sandbox veths", "count", n)
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("sandbox cleanup: %w", err)
	}
	return removed, nil
}

// Close destroys every live sandbox of this Manager (waiting for Creates in
// progress), kills its spares and removes the owl/<Instance> cgroups.
// Create fails with ErrClosed afterwards. Idempotent.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		close(m.stopRefill)
		<-m.refillDone
		m.inflight.Wait()

		var errs []error
		for len(m.spares) > 0 {
			errs = append(errs, m.discard(<-m.spares))
		}
		m.mu.Lock()
		var all []*Sandbox
		for _, s := range m.live {
			if s != nil {
				all = append(all, s)
			}
		}
		m.mu.Unlock()
		destroyErrs := make([]error, len(all))
		var wg sync.WaitGroup
		for i, s := range all {
			wg.Go(func() { destroyErrs[i] = s.Destroy() })
		}
		wg.Wait()
		errs = append(errs, destroyErrs...)
		m.mem.close()
		if m.net != nil {
			errs = append(errs, m.net.teardown())
		}
		errs = append(errs, m.closeSlots(), m.tmp.close(), m.cg.removeInstance(), m.devNull.Close())
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

// TmpPromisedBytes is what the functions of the live sandboxes may still
// write to their /tmp disks: sparse images on the RootDir's filesystem,
// which grow as they write (an fstatfs per live sandbox).
func (m *Manager) TmpPromisedBytes() int64 { return m.tmp.unwrittenBytes() }

// forget drops a destroyed sandbox.
func (m *Manager) forget(s *Sandbox) {
	m.mu.Lock()
	if m.live[s.id] == s {
		delete(m.live, s.id)
	}
	delete(m.spareCgroups, s.cg.name)
	m.mu.Unlock()
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
	if spec.Egress && m.net == nil {
		return nil, fmt.Errorf("sandbox %s: Spec.Egress needs a Manager with Config.Egress: %w", spec.ID, ErrNoEgress)
	}
	if spec.Slots {
		spec.CodeDir, spec.OptDir = "", ""
	} else if spec.Image != "" && spec.CodeDir == "" {
		// The image's own /var/task.
	} else if fi, err := os.Stat(spec.CodeDir); err != nil {
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
	// The /tmp disk it took is made again once it is up, not meanwhile.
	defer m.tmp.refillSoon()
	s, spare, err := m.create(ctx, spec)
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
	m.log.Debug("sandbox created", "sandbox", spec.ID, "pid", s.Pid(), "cgroup", s.cg.name, "spare", spare, "took", time.Since(start))
	return s, nil
}

// create uses a spare init if one is ready (retrying with a fresh one if
// the spare turns out dead), else starts one.
func (m *Manager) create(ctx context.Context, spec Spec) (_ *Sandbox, spare bool, _ error) {
	lim := limits{memoryBytes: uint64(spec.MemoryMB) << 20, pidsMax: spec.PidsMax, memoryMB: spec.MemoryMB}
	if spec.Slots {
		// The slots must exist before the init's mount namespace is
		// cloned: a spare init's namespace predates them.
		s, err := m.createFrom(ctx, spec, lim, nil)
		return s, false, err
	}
	select {
	case p := <-m.spares:
		// Refill once this Create is done, not competing with it for CPU.
		defer m.kickRefill()
		s, err := m.createFrom(ctx, spec, lim, p)
		if !errors.Is(err, errInitDied) || ctx.Err() != nil {
			return s, true, err
		}
		m.log.Warn("spare sandbox init was dead; starting a fresh one", "sandbox", spec.ID, "err", err)
	default:
	}
	s, err := m.createFrom(ctx, spec, lim, nil)
	return s, false, err
}

// createFrom builds the sandbox from a spare init p, or from a fresh one
// when p is nil. undo holds the rollback steps.
func (m *Manager) createFrom(ctx context.Context, spec Spec, lim limits, p *initProc) (_ *Sandbox, err error) {
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	removeCgroup := func(cg *cgroup) func() {
		return func() {
			ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
			defer cancel()
			if err := cg.remove(ctx); err != nil {
				m.log.Warn("rolling back sandbox cgroup", "sandbox", spec.ID, "err", err)
			}
			m.mu.Lock()
			delete(m.spareCgroups, cg.name)
			m.mu.Unlock()
		}
	}

	var cg *cgroup
	if p != nil && p.cg != nil {
		// A v2 spare was cloned into its cgroup; only the limits are new.
		cg = p.cg
		undo = append(undo, removeCgroup(cg))
		if err := cg.setLimits(lim); err != nil {
			p.kill()
			return nil, err
		}
	} else {
		cg = m.cg.sandbox(spec.ID)
		if err := cg.create(lim); err != nil {
			if p != nil {
				p.kill()
			}
			if errors.Is(err, unix.EEXIST) {
				return nil, fmt.Errorf("%w (left by a previous run? Manager.CleanupStale removes it)", err)
			}
			return nil, err
		}
		undo = append(undo, removeCgroup(cg))
	}
	var slots string
	if spec.Slots {
		if slots, err = m.makeSlots(spec.ID); err != nil {
			if p != nil {
				p.kill()
			}
			return nil, err
		}
		undo = append(undo, func() {
			if err := removeSlots(slots); err != nil {
				m.log.Warn("rolling back sandbox slots", "sandbox", spec.ID, "err", err)
			}
		})
	}
	if p == nil {
		var v2cg *cgroup
		if m.cg.v2 {
			v2cg = cg
		}
		if p, err = m.startInit(v2cg); err != nil {
			return nil, err
		}
	}
	undo = append(undo, p.kill)
	s, err := m.configure(ctx, spec, cg, p, slots)
	if err != nil {
		return nil, err
	}
	s.slots = slots
	s.armMemGuard(lim.memoryBytes)
	return s, nil
}

// initProc is a started init waiting for its config: the costly part of a
// sandbox (clone with new namespaces, exec of the owl binary, the Go
// runtime's start-up and package initialization).
type initProc struct {
	cmd   *exec.Cmd
	ctl   *os.File // parent end of the control socket
	out   *os.File // read end of the output pipe
	pidfd int      // -1 without pidfd support (Linux < 5.10)
	pidf  *os.File // pidfd in the netpoller, for reap (nil without); owns pidfd
	cg    *cgroup  // v2: the cgroup it was cloned into; nil on v1
	hello bool     // its frameHello was read (spares: it is up and waiting)
}

// startInit starts an init: on v2 cloned into cg, on v1 (cg nil) in Owl's
// cgroups until it joins its sandbox's by itself.
func (m *Manager) startInit(cg *cgroup) (_ *initProc, err error) {
	ctl, initCtl, err := syncPair()
	if err != nil {
		return nil, err
	}
	defer initCtl.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		ctl.Close()
		return nil, fmt.Errorf("creating output pipe: %w", err)
	}
	defer outW.Close()
	p := &initProc{ctl: ctl, out: outR, pidfd: -1, cg: cg}
	attr := &syscall.SysProcAttr{
		Cloneflags: cloneFlags,
		Setsid:     true,
		Pdeathsig:  syscall.SIGKILL,
	}
	if cg != nil {
		fd, err := cg.openDir()
		if err != nil {
			ctl.Close()
			outR.Close()
			return nil, err
		}
		defer unix.Close(fd)
		attr.UseCgroupFD, attr.CgroupFD = true, fd
	}
	p.cmd = &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{initArg0},
		Env:         initEnv,
		Stdin:       m.devNull,
		Stdout:      outW,
		Stderr:      outW,
		ExtraFiles:  []*os.File{initCtl},
		SysProcAttr: attr,
	}
	if err := p.cmd.Start(); err != nil {
		ctl.Close()
		outR.Close()
		return nil, fmt.Errorf("starting sandbox init: %w", err)
	}
	// A pidfd of our own, non-blocking for the netpoller. Not a dup of
	// os/exec's (SysProcAttr.PidFD): that would share the file status
	// flags and make cmd.Wait's blocking waitid fail with EAGAIN. The pid
	// cannot be recycled before we wait for it.
	if fd, err := unix.PidfdOpen(p.cmd.Process.Pid, unix.PIDFD_NONBLOCK); err == nil {
		p.pidfd = fd
		p.pidf = os.NewFile(uintptr(fd), "pidfd")
	}
	return p, nil
}

// kill ends an init that will not become a sandbox and releases its files.
func (p *initProc) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.ctl.Close()
	p.out.Close()
	if p.pidf != nil {
		p.pidf.Close()
	}
}

// configure turns the init into the sandbox: config, listener, go, exec.
// It is long because it is one exchange with the init, step by step, each
// step's failure undoing the same things; split, the steps would pass that
// state around.
func (m *Manager) configure(ctx context.Context, spec Spec, cg *cgroup, p *initProc, slots string) (_ *Sandbox, err error) {
	etc, err := m.etcDir(spec.UID, spec.GID)
	if err != nil {
		return nil, err
	}
	var tmp *tmpDisk
	if slots == "" {
		if tmp, err = m.tmp.take(spec.TmpMB); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				m.tmp.release(tmp)
			}
		}()
	}
	ic := initConfig{
		Root:       m.rootfs,
		EtcDir:     etc,
		CodeDir:    spec.CodeDir,
		RuntimeDir: spec.RuntimeDir,
		OptDir:     spec.OptDir,
		Argv:       spec.Argv,
		Env:        spec.Env,
		TmpFD:      tmp != nil,
		UID:        spec.UID,
		GID:        spec.GID,
		Hostname:   Hostname,
		Slots:      slots,
		Image:      spec.Image,
		WorkDir:    spec.WorkDir,
	}
	if !m.cg.v2 {
		ic.JoinCgroups = cg.dirs
	}
	config, err := json.Marshal(ic)
	if err != nil {
		return nil, fmt.Errorf("encoding init config: %w", err)
	}

	// While the init joins its cgroup (v1) and builds its mounts, the
	// parent makes the listener.
	stop := context.AfterFunc(ctx, func() { p.ctl.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := sendConfig(p.ctl, config, tmp); err != nil {
		return nil, initDied(ctx, p, cg, "sending config", err)
	}
	var veth *vethLink
	var inside func() error
	if spec.Egress {
		// Overlaps with the init's mounts, like the listener.
		veth, err = m.net.attach(p.cmd.Process.Pid)
		inside = func() error { return m.net.configureInside(veth) }
		defer func() {
			if err != nil && veth != nil {
				// The caller's rollback kills the init: the pair goes.
				m.net.detach(veth)
			}
		}()
	}
	var ln net.Listener
	if err == nil {
		ln, err = listenInNetns(p.pidfd, p.cmd.Process.Pid, spec.RuntimeAPIAddr, inside)
	}
	if errors.Is(err, unix.ESRCH) {
		// The init exited before its netns could be entered: it may have
		// reported why (e.g. /var/task not readable by the function user)
		// before exiting, and that is the error worth returning.
		kind, payload, ferr := readFrame(p.ctl)
		if ferr == nil && kind == frameHello {
			kind, payload, ferr = readFrame(p.ctl)
		}
		if ferr == nil && kind == frameFailed {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
			return nil, decodeInitFailure(payload)
		}
		return nil, initDied(ctx, p, cg, "creating the Runtime API listener", err)
	}
	if err != nil {
		return nil, err
	}
	kind, payload, err := readFrame(p.ctl)
	if err == nil && kind == frameHello && !p.hello {
		kind, payload, err = readFrame(p.ctl)
	}
	switch {
	case err != nil:
		ln.Close()
		return nil, initDied(ctx, p, cg, "waiting for sandbox init", err)
	case kind == frameFailed:
		ln.Close()
		return nil, decodeInitFailure(payload)
	case kind != frameReady:
		ln.Close()
		return nil, fmt.Errorf("sandbox init: unexpected frame %q", kind)
	}
	var ctl *os.File // kept for Specialize: the init waits for its command
	if spec.DeferExec {
		ctl = p.ctl
	} else {
		if step, err := startEntrypoint(p.ctl, nil); err != nil {
			ln.Close()
			if step != "" {
				return nil, initDied(ctx, p, cg, step, err)
			}
			return nil, err
		}
		p.ctl.Close()
	}

	s := &Sandbox{
		ctl:  ctl,
		id:   spec.ID,
		m:    m,
		cg:   cg,
		cmd:  p.cmd,
		ln:   ln,
		veth: veth,
		out:  p.out,
		tmp:  tmp,
		done: make(chan struct{}),
	}
	go s.reap(p.pidf)
	return s, nil
}

// startEntrypoint tells a ready init to exec (command: an execCommand for
// a DeferExec sandbox, else nil) and waits until it did. A broken
// conversation returns the step it broke in with the error; an entrypoint
// that could not be exec'd wraps ErrInvalidEntrypoint (step "").
func startEntrypoint(ctl *os.File, command []byte) (step string, err error) {
	if err := writeFrame(ctl, frameGo, command); err != nil {
		return "starting entrypoint", err
	}
	// EOF: fd 3 was closed by a successful exec.
	kind, payload, err := readFrame(ctl)
	switch {
	case err == io.EOF:
		return "", nil
	case err != nil:
		return "waiting for exec", err
	case kind == frameExecFailed:
		return "", fmt.Errorf("%w: %w", ErrInvalidEntrypoint, decodeInitFailure(payload))
	default:
		return "", fmt.Errorf("sandbox init: unexpected frame %q", kind)
	}
}

// sendConfig writes the config frame, with /tmp's mount fd when there is
// one (it reaches the init with the frame's first byte).
func sendConfig(ctl *os.File, config []byte, tmp *tmpDisk) error {
	if tmp == nil {
		return writeFrame(ctl, frameConfig, config)
	}
	var frame bytes.Buffer
	if err := writeFrame(&frame, frameConfig, config); err != nil {
		return err
	}
	rc, err := ctl.SyscallConn()
	if err != nil {
		return fmt.Errorf("sending config: %w", err)
	}
	buf, rights := frame.Bytes(), unix.UnixRights(int(tmp.mnt.Fd()))
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		for len(buf) > 0 {
			var n int
			n, serr = unix.SendmsgN(int(fd), buf, rights, nil, 0)
			if serr == unix.EAGAIN {
				return false
			}
			if serr == unix.EINTR {
				continue
			}
			if serr != nil {
				return true
			}
			buf, rights = buf[n:], nil
		}
		return true
	})
	if err != nil {
		return err
	}
	return serr
}

// errInitDied marks an init that died or hung up before reporting.
var errInitDied = errors.New("sandbox init exited without reporting")

// initDied explains a broken conversation with the init: ctx ended, or the
// init died (e.g. killed by the memory limit while starting).
func initDied(ctx context.Context, p *initProc, cg *cgroup, step string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", step, ctxErr)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, unix.EPIPE) ||
		errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.ESRCH) {
		_ = p.cmd.Process.Kill()
		werr := p.cmd.Wait()
		if n, _ := cg.oomKills(); n > 0 {
			return fmt.Errorf("%s: %w: killed by the memory limit", step, errInitDied)
		}
		return fmt.Errorf("%s: %w: %v", step, errInitDied, werr)
	}
	return fmt.Errorf("%s: %w", step, err)
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

// Spares: inits started ahead of time, identical until they get a Spec, so
// that Create skips the clone and the init's start-up (~2 ms with a small
// binary, ~3-5 ms more with the whole owl binary's package initialization).
// One goroutine keeps Config.Spares of them; Create takes one without
// waiting and falls back to starting its own.

func (m *Manager) kickRefill() {
	select {
	case m.refillKick <- struct{}{}:
	default:
	}
}

func (m *Manager) refill() {
	defer close(m.refillDone)
	keepReady(m.spares, m.refillKick, m.stopRefill, func() (*initProc, error) {
		p, err := m.newSpare()
		if err == nil {
			if err = awaitHello(p); err != nil {
				err = errors.Join(err, m.discard(p))
			}
		}
		return p, err
	}, func(p *initProc) { m.discard(p) }, m.log, "starting a spare sandbox init")
}

// keepReady keeps ready full of what newOne makes, each time kick wakes
// it, until stop is closed; after a failure (logged as what) it waits
// spareRetry. What it made when stop closed goes to drop. Only it may send
// on ready: then its sends never block.
func keepReady[T any](ready chan T, kick, stop <-chan struct{}, newOne func() (T, error), drop func(T), log *slog.Logger, what string) {
	for {
		select {
		case <-stop:
			return
		case <-kick:
		}
		for len(ready) < cap(ready) {
			v, err := newOne()
			if err != nil {
				log.Warn(what, "err", err)
				select {
				case <-stop:
					return
				case <-time.After(spareRetry):
				}
				continue
			}
			select {
			case <-stop:
				drop(v)
				return
			case ready <- v:
			}
		}
	}
}

// newSpare starts a spare init; on v2 in a cgroup of its own, created now
// (it cannot be renamed later, so it is named after the spare, not the
// sandbox it will become).
func (m *Manager) newSpare() (*initProc, error) {
	if !m.cg.v2 {
		return m.startInit(nil)
	}
	m.mu.Lock()
	m.spareSeq++
	name := "@spare-" + m.nonce + "-" + strconv.Itoa(m.spareSeq)
	m.spareCgroups[name] = true
	m.mu.Unlock()
	cg := m.cg.sandbox(name)
	err := cg.mkdir()
	var p *initProc
	if err == nil {
		if p, err = m.startInit(cg); err != nil {
			_ = cg.remove(context.Background())
		}
	}
	if err != nil {
		m.mu.Lock()
		delete(m.spareCgroups, name)
		m.mu.Unlock()
		return nil, err
	}
	return p, nil
}

// spareHelloTimeout bounds a spare's start-up.
const spareHelloTimeout = 10 * time.Second

// awaitHello waits until the spare's init runs, so that a spare handed to
// Create has already paid for its start-up.
func awaitHello(p *initProc) error {
	p.ctl.SetReadDeadline(time.Now().Add(spareHelloTimeout))
	kind, _, err := readFrame(p.ctl)
	p.ctl.SetReadDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("waiting for a spare sandbox init: %w", err)
	}
	if kind != frameHello {
		return fmt.Errorf("waiting for a spare sandbox init: unexpected frame %q", kind)
	}
	p.hello = true
	return nil
}

// discard kills a spare that will not be used and removes its cgroup.
func (m *Manager) discard(p *initProc) error {
	p.kill()
	if p.cg == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	err := p.cg.remove(ctx)
	m.mu.Lock()
	delete(m.spareCgroups, p.cg.name)
	m.mu.Unlock()
	return err
}
