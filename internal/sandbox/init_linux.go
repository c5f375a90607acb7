package sandbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The parent (Manager.Create) and the in-sandbox init talk over a unix
// stream socket, the init's fd 3, in frames of [kind byte][uint32 length]
// [payload]:
//
//	init → parent   frameHello   the init runs (its Go runtime is up)
//	parent → init   frameConfig  initConfig as JSON, with the /tmp mount's
//	                             fd (SCM_RIGHTS) unless pre-warmed
//	init → parent   frameReady   setup done; or frameFailed + initFailure
//	parent → init   frameGo      the cgroup and the Runtime API listener exist;
//	                             for a DeferExec sandbox sent only by
//	                             Specialize, with execCommand as JSON
//	init → parent   EOF          exec succeeded (fd 3 is close-on-exec);
//	                             or frameExecFailed + initFailure
//
// EOF from the parent at any point means "give up": the init exits.
const (
	frameHello      = 'h'
	frameConfig     = 'c'
	frameReady      = 'r'
	frameFailed     = 'e'
	frameGo         = 'g'
	frameExecFailed = 'x'

	initSyncFD   = 3
	maxFrameSize = 1 << 20
)

// initConfig is what the init needs to build the sandbox; plain data.
type initConfig struct {
	Root    string `json:"root"` // host mount point for the root tmpfs
	CodeDir string `json:"code_dir"`
	// EtcDir is the prepared minimal /etc (see etcDir), bound read-only.
	EtcDir string `json:"etc_dir"`
	// OptDir is bound read-only at /opt when set.
	OptDir string `json:"opt_dir,omitempty"`
	// RuntimeDir is bound read-only at /var/runtime when set.
	RuntimeDir string   `json:"runtime_dir,omitempty"`
	Argv       []string `json:"argv"`
	Env        []string `json:"env"`
	// TmpFD says the config frame carries /tmp: a detached mount's fd
	// (tmpdisk_linux.go) that the init moves onto /tmp.
	TmpFD    bool   `json:"tmp_fd,omitempty"`
	UID      int    `json:"uid"`
	GID      int    `json:"gid"`
	Hostname string `json:"hostname"`
	// Slots, for a pre-warmed sandbox, is the host directory of its slots
	// (task, opt, tmp): bound at /var/task, /opt and /tmp as slaves of the
	// host's slot mounts instead of CodeDir, OptDir and a tmpfs.
	Slots string `json:"slots,omitempty"`
	// Image is an unpacked image bound read-only as the root instead of
	// the tmpfs (image_linux.go); WorkDir the working directory ("" is
	// /var/task).
	Image   string `json:"image,omitempty"`
	WorkDir string `json:"work_dir,omitempty"`
	// JoinCgroups are v1 cgroup directories whose tasks file the init
	// writes "0" to (see joinCgroups); empty on v2 (CLONE_INTO_CGROUP).
	JoinCgroups []string `json:"join_cgroups,omitempty"`
}

// execCommand is the payload of a DeferExec sandbox's frameGo: what the
// waiting init execs, once the function's mounts are in place.
type execCommand struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
}

// initFailure carries an init error across the process boundary, keeping
// the errno so that errors.Is works in the parent.
type initFailure struct {
	Msg   string `json:"msg"`
	Errno int    `json:"errno,omitempty"`
}

// initError is an initFailure on the parent side.
type initError struct {
	msg   string
	errno syscall.Errno
}

func (e *initError) Error() string { return e.msg }

func (e *initError) Unwrap() error {
	if e.errno == 0 {
		return nil
	}
	return e.errno
}

func writeFrame(w io.Writer, kind byte, payload []byte) error {
	buf := make([]byte, 5+len(payload))
	buf[0] = kind
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame; io.EOF only when the peer closed cleanly
// between frames.
func readFrame(r io.Reader) (kind byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	return readFramePayload(r, hdr)
}

// readFramePayload reads the payload of the frame whose header is hdr.
func readFramePayload(r io.Reader, hdr [5]byte) (kind byte, payload []byte, err error) {
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrameSize {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds %d", n, maxFrameSize)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("reading frame: %w", err)
	}
	return hdr[0], payload, nil
}

// rawFD is a blocking fd without the os.File poller (the init is one
// thread doing one thing at a time).
type rawFD int

func (fd rawFD) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(fd), p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (fd rawFD) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := unix.Write(int(fd), p[written:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

// MaybeRunInit runs the in-sandbox init and never returns when the process
// was started as one (os.Args[0] == "owl-sandbox-init"); otherwise it
// returns immediately. The owl main and every TestMain of a package whose
// tests create sandboxes must call it first thing: the Manager re-executes
// /proc/self/exe as the init (runc's pattern).
//
// The init runs as pid 1 of the new namespaces: it reads its config from
// the parent, builds the mounts, sets hostname and identity, reports
// readiness, waits for the parent's go-ahead and execs the entrypoint,
// which then is pid 1. Failures are reported to the parent (Create returns
// them) and the init exits non-zero with a message on stderr.
func MaybeRunInit() {
	if len(os.Args) == 0 || os.Args[0] != initArg0 {
		return
	}
	// All credential, prctl and exec calls must happen on one thread.
	runtime.LockOSThread()
	if err := runInit(rawFD(initSyncFD)); err != nil {
		os.Stderr.WriteString(initArg0 + ": " + err.Error() + "\n")
	}
	os.Exit(1)
}

// runInit returns only on failure.
func runInit(ctl rawFD) error {
	if err := writeFrame(ctl, frameHello, nil); err != nil {
		return fmt.Errorf("must be started by owl: writing to fd %d: %w", initSyncFD, err)
	}
	kind, payload, tmpFD, err := readFrameFD(ctl)
	if err != nil || kind != frameConfig {
		return fmt.Errorf("must be started by owl: reading config from fd %d: %v (kind %q)", initSyncFD, err, kind)
	}
	var cfg initConfig
	if err := json.Unmarshal(payload, &cfg); err != nil {
		return reportFailure(ctl, frameFailed, fmt.Errorf("decoding config: %w", err))
	}
	if cfg.TmpFD != (tmpFD >= 0) {
		return reportFailure(ctl, frameFailed, fmt.Errorf("config frame: /tmp's mount fd expected %v, received %v", cfg.TmpFD, tmpFD >= 0))
	}
	if err := setupSandbox(&cfg, tmpFD); err != nil {
		return reportFailure(ctl, frameFailed, err)
	}
	if err := writeFrame(ctl, frameReady, nil); err != nil {
		return fmt.Errorf("reporting ready: %w", err)
	}
	// The parent has made the Runtime API listener; a DeferExec sandbox
	// waits here until it is specialised.
	kind, payload, err = readFrame(ctl)
	if err != nil || kind != frameGo {
		return fmt.Errorf("parent gave up before go: %v", err)
	}
	argv, env := cfg.Argv, cfg.Env
	if len(payload) > 0 {
		var c execCommand
		if err := json.Unmarshal(payload, &c); err != nil || len(c.Argv) == 0 {
			return reportFailure(ctl, frameExecFailed, fmt.Errorf("decoding the command: %v", err))
		}
		argv, env = c.Argv, c.Env
		// The working directory is the empty slot the code was mounted on.
		if err := enterWorkDir(&cfg); err != nil {
			return reportFailure(ctl, frameExecFailed, err)
		}
	}
	if len(argv) == 0 {
		return reportFailure(ctl, frameExecFailed, errors.New("no command"))
	}
	closeExtraFDsOnExec()
	err = unix.Exec(argv[0], argv, env)
	return reportFailure(ctl, frameExecFailed, fmt.Errorf("exec %s: %w", argv[0], err))
}

// readFrameFD reads one frame and the fd sent with it (SCM_RIGHTS), or -1.
// The fd arrives with the frame's first byte, so the header is read with
// recvmsg; it is close-on-exec.
func readFrameFD(ctl rawFD) (kind byte, payload []byte, fd int, err error) {
	fd = -1
	var hdr [5]byte
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn int
	for {
		n, oobn, _, _, err = unix.Recvmsg(int(ctl), hdr[:], oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 0, nil, -1, err
	}
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr == nil && len(msgs) == 1 {
			if fds, ferr := unix.ParseUnixRights(&msgs[0]); ferr == nil && len(fds) == 1 {
				fd = fds[0]
			}
		}
		if fd < 0 {
			return 0, nil, -1, errors.New("unexpected control message with the config")
		}
	}
	if n == 0 {
		return 0, nil, fd, io.EOF
	}
	if _, err := io.ReadFull(ctl, hdr[n:]); err != nil {
		return 0, nil, fd, err
	}
	kind, payload, err = readFramePayload(ctl, hdr)
	return kind, payload, fd, err
}

func reportFailure(ctl rawFD, kind byte, err error) error {
	f := initFailure{Msg: err.Error()}
	var errno unix.Errno
	if errors.As(err, &errno) {
		f.Errno = int(errno)
	}
	b, _ := json.Marshal(f)
	_ = writeFrame(ctl, kind, b)
	return err
}

// hostRuntimeDirs are bound read-only into every sandbox (symlinks on
// merged-usr hosts are recreated instead; missing ones are skipped). /etc
// is not among them: see etc_linux.go.
var hostRuntimeDirs = [...]string{"usr", "bin", "sbin", "lib", "lib64"}

// devNodes are bound from the host's /dev.
var devNodes = [...]string{"null", "zero", "full", "random", "urandom"}

const (
	rootTmpfsOpts = "mode=755,size=1m,nr_inodes=256"
	devTmpfsOpts  = "mode=755,size=64k,nr_inodes=64"
	shmTmpfsOpts  = "mode=1777,size=64m"
)

// setupSandbox runs in the init, in its fresh mount/pid/uts/ipc/net
// namespaces, as root. Everything it mounts lives only in the private mount
// namespace and disappears with it.
//
// It is long because the order of its mounts and pivot is the security
// argument (docs/security.md): one function reads as that sequence.
func setupSandbox(cfg *initConfig, tmpFD int) error {
	if err := joinCgroups(cfg.JoinCgroups); err != nil {
		return err
	}
	// Nothing mounted here may reach the host. A pre-warmed sandbox keeps
	// receiving from the host (slave) until its root is built, for its
	// slots; everything else is made private below.
	propagation := uintptr(unix.MS_PRIVATE)
	if cfg.Slots != "" {
		propagation = unix.MS_SLAVE
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|propagation, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	root := cfg.Root
	if cfg.Image != "" {
		if err := mountImageRoot(cfg); err != nil {
			return err
		}
	} else if err := mountTmpfsRoot(cfg); err != nil {
		return err
	}
	if cfg.Slots != "" || cfg.CodeDir == "" {
		// Attached last, below; or the image's own.
	} else if err := bindReadOnly(cfg.CodeDir, root+"/var/task"); err != nil {
		return fmt.Errorf("mounting /var/task from %s: %w", cfg.CodeDir, err)
	}
	if cfg.OptDir != "" && cfg.Slots == "" {
		if err := bindReadOnly(cfg.OptDir, root+"/opt"); err != nil {
			return fmt.Errorf("mounting /opt from %s: %w", cfg.OptDir, err)
		}
	}
	if cfg.RuntimeDir != "" {
		if err := unix.Mkdir(root+"/var/runtime", 0o755); err != nil && (cfg.Image == "" || err != unix.EEXIST) {
			return fmt.Errorf("creating /var/runtime: %w", err)
		}
		if err := bindReadOnly(cfg.RuntimeDir, root+"/var/runtime"); err != nil {
			return fmt.Errorf("mounting /var/runtime from %s: %w", cfg.RuntimeDir, err)
		}
	}
	if tmpFD >= 0 {
		// A disk of its own, already mounted nosuid,nodev (tmpdisk_linux.go).
		err := unix.MoveMount(tmpFD, "", unix.AT_FDCWD, root+"/tmp", unix.MOVE_MOUNT_F_EMPTY_PATH)
		unix.Close(tmpFD)
		if err != nil {
			return fmt.Errorf("mounting /tmp: %w", err)
		}
	}
	if err := unix.Mount("proc", root+"/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	if err := maskProc(root + "/proc"); err != nil {
		return err
	}
	if err := setupDev(root + "/dev"); err != nil {
		return err
	}
	if cfg.Slots != "" {
		if err := attachSlots(root, cfg.Slots); err != nil {
			return err
		}
	}
	if err := pivotRoot(root); err != nil {
		return err
	}
	// /opt stays an empty directory of the read-only root (layers later).
	// An image's root holds its programs: not noexec.
	rootFlags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if cfg.Image != "" {
		rootFlags &^= unix.MS_NOEXEC
	}
	if err := unix.Mount("", "/", "", rootFlags, ""); err != nil {
		return fmt.Errorf("remounting / read-only: %w", err)
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("setting hostname: %w", err)
	}
	arch, ok := nativeSeccompArch()
	if !ok {
		return fmt.Errorf("seccomp filter: architecture %s is not supported", runtime.GOARCH)
	}
	filter, err := buildSeccompFilter(arch)
	if err != nil {
		return err
	}
	if err := setIdentity(cfg); err != nil {
		return err
	}
	return lockDown(filter)
}

// attachSlots makes everything in the new root private, then binds the
// slots: a bind of a slave mount (the namespace's copy of a shared host
// slot) is a slave of the same peer group, so what the host later mounts on
// a slot appears here. Read-only, nosuid, nodev: the empty slots are never
// written; what is attached later brings its own flags.
func attachSlots(root, slots string) error {
	if err := unix.Mount("", root, "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the root private: %w", err)
	}
	for _, s := range [...][2]string{{"task", "/var/task"}, {"opt", "/opt"}, {"tmp", "/tmp"}} {
		if err := bindReadOnly(slots+"/"+s[0], root+s[1]); err != nil {
			return fmt.Errorf("mounting slot %s: %w", s[1], err)
		}
	}
	return nil
}

// joinCgroups moves the calling thread — the one that will exec the
// entrypoint, which then is the whole process — into the v1 cgroups.
//
// Why not have the parent write the pid to cgroup.procs: moving a whole
// process takes the global cgroup_threadgroup_rwsem for writing, which waits
// for an RCU grace period unless another migration happened moments before:
// 5-8 ms on an idle host here (HZ=250), more than the rest of Create. A
// thread moving itself ("0" to tasks) skips that lock (~20-100 µs). The
// init's other Go threads stay behind and die at exec.
func joinCgroups(dirs []string) error {
	for _, d := range dirs {
		if err := writeFile(d, "tasks", "0"); err != nil {
			return fmt.Errorf("joining cgroup: %w", err)
		}
	}
	return nil
}

// addHostDir mirrors host /<name> into the new root.
func addHostDir(root, name string) error {
	host := "/" + name
	var st unix.Stat_t
	if err := unix.Lstat(host, &st); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return fmt.Errorf("inspecting host %s: %w", host, err)
	}
	dst := root + "/" + name
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		target, err := os.Readlink(host)
		if err != nil {
			return fmt.Errorf("reading host symlink %s: %w", host, err)
		}
		if err := unix.Symlink(target, dst); err != nil {
			return fmt.Errorf("creating symlink /%s -> %s: %w", name, target, err)
		}
		return nil
	case unix.S_IFDIR:
		if err := unix.Mkdir(dst, 0o755); err != nil {
			return fmt.Errorf("creating /%s: %w", name, err)
		}
		if err := bindReadOnly(host, dst); err != nil {
			return fmt.Errorf("mounting /%s: %w", name, err)
		}
		return nil
	default:
		return nil
	}
}

// bindReadOnly bind-mounts src (with its submounts) on dst, read-only,
// nosuid and nodev all the way down.
func bindReadOnly(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	err := unix.MountSetattr(unix.AT_FDCWD, dst, unix.AT_RECURSIVE, &attr)
	if err == unix.ENOSYS {
		// Before Linux 5.12: only the top mount becomes read-only.
		err = unix.Mount("", dst, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
	}
	if err != nil {
		return fmt.Errorf("making read-only: %w", err)
	}
	return nil
}

// setupDev builds a minimal /dev: a few host nodes, the fd symlinks and a
// small /dev/shm. No tty, no pts.
func setupDev(dev string) error {
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, devTmpfsOpts); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	for _, n := range devNodes {
		dst := dev + "/" + n
		if err := unix.Mknod(dst, unix.S_IFREG|0o666, 0); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", n, err)
		}
		if err := unix.Mount("/dev/"+n, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mounting /dev/%s: %w", n, err)
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"},
	}
	for _, l := range links {
		if err := unix.Symlink(l[0], dev+"/"+l[1]); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", l[1], err)
		}
	}
	if err := unix.Mkdir(dev+"/shm", 0o1777); err != nil {
		return fmt.Errorf("creating /dev/shm: %w", err)
	}
	if err := unix.Mount("tmpfs", dev+"/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, shmTmpfsOpts); err != nil {
		return fmt.Errorf("mounting /dev/shm: %w", err)
	}
	// Nothing may be added to /dev later (the nodes are bind mounts of
	// their own and stay writable; /dev/shm is a mount of its own too).
	if err := unix.Mount("", dev, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("making /dev read-only: %w", err)
	}
	return nil
}

// pivotRoot makes root the new / and detaches the old one, without a
// put_old directory: pivot_root(".", ".") stacks the old root on top of
// the new one, and the unmount removes it (as runc does).
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("entering new root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root to %s: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("entering /: %w", err)
	}
	return nil
}

// setIdentity drops root: an empty capability bounding set (while root can
// still drop it), no supplementary groups, then gid, then uid.
// Only for the calling thread, on purpose: it is the thread that execs, and
// exec ends the others (which run only Go runtime code meanwhile); syscall's
// all-threads setters cost ~0.2 ms here. Changing credentials clears the
// parent-death signal, so it is set again: if Owl dies, the sandbox dies.
// The working directory is entered as the function's user.
func setIdentity(cfg *initConfig) error {
	if err := dropBoundingSet(); err != nil {
		return err
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("clearing supplementary groups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(cfg.GID), uintptr(cfg.GID), uintptr(cfg.GID)); e != 0 {
		return fmt.Errorf("setting gid %d: %w", cfg.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(cfg.UID), uintptr(cfg.UID), uintptr(cfg.UID)); e != 0 {
		return fmt.Errorf("setting uid %d: %w", cfg.UID, e)
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("setting parent-death signal: %w", err)
	}
	return enterWorkDir(cfg)
}

// enterWorkDir enters the entrypoint's working directory, as the
// function's user.
func enterWorkDir(cfg *initConfig) error {
	wd := cfg.WorkDir
	if wd == "" {
		wd = "/var/task"
	}
	if err := unix.Chdir(wd); err != nil {
		return fmt.Errorf("entering %s as %d:%d: %w", wd, cfg.UID, cfg.GID, err)
	}
	return nil
}

// closeExtraFDsOnExec marks every fd above stderr close-on-exec, so that
// the entrypoint inherits only 0, 1 and 2 (fd 3 closing tells the parent
// that exec succeeded).
func closeExtraFDsOnExec() {
	if unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	// Before Linux 5.11.
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
}

// decodeInitFailure turns a failure frame into an error for the parent.
func decodeInitFailure(payload []byte) *initError {
	var f initFailure
	if err := json.Unmarshal(payload, &f); err != nil {
		return &initError{msg: "undecodable init failure: " + strings.TrimSpace(string(payload))}
	}
	return &initError{msg: f.Msg, errno: syscall.Errno(f.Errno)}
}
