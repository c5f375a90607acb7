package vmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// guestRoot is where the host root is mounted before the switch.
const guestRoot = "/newroot"

// testsCgroup is the leaf cgroup the test binaries run in, like a service
// under systemd: the root cgroup keeps only the init.
const testsCgroup = "/sys/fs/cgroup/v2guest-tests"

// roleEnv marks the init's child that runs the tests; its value is the
// plan (JSON), which the child cannot read from the initramfs after the
// switch. initUptimeEnv carries the init's start time to the report.
const (
	roleEnv       = "V2GUEST_RUNNER_PLAN"
	initUptimeEnv = "V2GUEST_INIT_UPTIME"
)

// InGuest reports whether this process is the guest's init or its test
// runner, which must call Guest instead of acting as the host command.
func InGuest() bool {
	return os.Getpid() == 1 || os.Getenv(roleEnv) != ""
}

// Guest is the guest's /init: as pid 1 it sets up the root, starts a copy
// of itself that runs the plan's tests, reaps every orphan until that copy
// exits, and powers the machine off; it never returns. Orphans are what a
// crashed process leaves (the server tests kill owl serve on purpose), and
// a pid 1 that does not reap them leaves zombies the tests count as leaks.
// Everything goes to the serial console (the kernel gives pid 1
// /dev/console).
func Guest() {
	if plan := os.Getenv(roleEnv); plan != "" {
		os.Exit(runner(plan))
	}
	rep := &Report{InitUptime: uptime()}
	fmt.Printf("v2guest: init started, uptime %.2fs\n", rep.InitUptime)
	plan, err := setUp()
	if err != nil {
		fmt.Printf("v2guest: FAILED to set up the guest: %v\n", err)
		rep.Err = err.Error()
		publish(plan, rep)
		powerOff()
	}
	if err := superviseRunner(plan, rep); err != nil {
		fmt.Printf("v2guest: FAILED: %v\n", err)
		rep.Err = err.Error()
		publish(plan, rep)
	}
	powerOff()
}

// HeartbeatInterval is how often the guest init says it is alive on the
// console; a host that hears nothing for a few of them knows the guest is
// hung (Options.Silence).
const HeartbeatInterval = 30 * time.Second

// heartbeat prints a line every HeartbeatInterval: the init's, so it goes
// on whatever the tests do, as long as the guest kernel runs user space.
func heartbeat() {
	for range time.Tick(HeartbeatInterval) {
		fmt.Printf("v2guest: alive, uptime %.0fs\n", uptime())
	}
}

// shareBound is how long the guest waits for a write to, or a sync of, a
// 9p share before going on without it.
const shareBound = time.Minute

// publish prints rep on the console, where the host reads it, then copies
// it to the scratch share (for a kept scratch directory) if plan has one,
// waiting at most shareBound for 9p.
func publish(plan *Plan, rep *Report) {
	os.Stdout.Write(reportLine(rep))
	if plan == nil || len(plan.Shares) == 0 {
		return
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return
	}
	path := filepath.Join(plan.Shares[0].Path, reportFile)
	bounded("writing the report to the scratch share", func() error { return writeFile(path, b) })
}

// bounded runs f and waits for it at most shareBound; past that, f is
// left to finish (or not) in the background, the kernel is asked which
// tasks are blocked, and the guest goes on: a stalled 9p request must not
// stop the tests, the report or the power-off.
func bounded(what string, f func() error) {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			fmt.Printf("v2guest: %s: %v\n", what, err)
		}
	case <-time.After(shareBound):
		fmt.Printf("v2guest: %s: no answer after %v; going on without it\n", what, shareBound)
		dumpBlockedTasks()
	}
}

// dumpBlockedTasks has the kernel print every task in uninterruptible or
// killable sleep, with its kernel stack, on the console (sysrq w), with
// the console's log level raised for it (the guest boots with
// loglevel=4, which would hide it): the diagnosis of a guest that stopped
// making progress.
func dumpBlockedTasks() {
	const printk = "/proc/sys/kernel/printk"
	old, err := os.ReadFile(printk)
	if err == nil {
		_ = os.WriteFile(printk, []byte("7"), 0)
	}
	fmt.Println("v2guest: blocked tasks (sysrq w):")
	if err := os.WriteFile("/proc/sysrq-trigger", []byte("w"), 0); err != nil {
		fmt.Printf("v2guest: sysrq w: %v\n", err)
	}
	if f := strings.Fields(string(old)); len(f) > 0 {
		time.Sleep(time.Second) // the console drains what was printed at the raised level
		_ = os.WriteFile(printk, []byte(f[0]), 0)
	}
}

// superviseRunner starts the test runner (this binary, through
// /proc/self/exe: /init is not in the new root) and reaps children until
// it exits.
func superviseRunner(plan *Plan, rep *Report) error {
	pj, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{roleEnv + "=" + string(pj), initUptimeEnv + "=" + strconv.FormatFloat(rep.InitUptime, 'f', 3, 64)}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr // files: no copying goroutines to wait for
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the test runner: %w", err)
	}
	go heartbeat()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("waiting for the test runner: %w", err)
		}
		if pid == cmd.Process.Pid {
			if ws.Exited() && ws.ExitStatus() == 0 {
				return nil
			}
			return fmt.Errorf("the test runner ended with status %v", ws)
		}
	}
}

// runner runs the tests of the plan in pjson and writes the report.
func runner(pjson string) int {
	var plan Plan
	if err := json.Unmarshal([]byte(pjson), &plan); err != nil {
		fmt.Printf("v2guest: runner: parsing the plan: %v\n", err)
		return 1
	}
	rep := &Report{ReadyUptime: uptime()}
	rep.InitUptime, _ = strconv.ParseFloat(os.Getenv(initUptimeEnv), 64)
	fmt.Printf("v2guest: root switched, uptime %.2fs; running %d test binaries\n", rep.ReadyUptime, len(plan.Tests))
	runTests(&plan, rep)
	return 0
}

// setUp mounts what the tests need and switches into the host root. The
// plan is returned as soon as it is read, so a later failure can still be
// reported on the scratch share if that is mounted.
//
// It is long because it is the guest's boot script, one mount after the
// other in the order the kernel allows them.
func setUp() (*Plan, error) {
	for _, m := range []struct{ src, dst, typ string }{
		{"devtmpfs", "/dev", "devtmpfs"}, {"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"},
	} {
		if err := mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			return nil, err
		}
	}
	b, err := os.ReadFile("/" + initramfsPlan)
	if err != nil {
		return nil, fmt.Errorf("reading the plan: %w", err)
	}
	var plan Plan
	if err := json.Unmarshal(b, &plan); err != nil {
		return nil, fmt.Errorf("parsing the plan: %w", err)
	}
	for _, m := range plan.Modules {
		if err := loadModule(m); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(guestRoot, 0o755); err != nil {
		return nil, err
	}
	// Read-only, cached: nothing changes the host root while the guest runs.
	if err := mount9p(rootTag, guestRoot, unix.MS_RDONLY, "cache=loose"); err != nil {
		return nil, err
	}
	r := func(p string) string { return filepath.Join(guestRoot, p) }
	for _, m := range []struct{ src, dst, typ, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", "nsdelegate,memory_recursiveprot"},
		{"devtmpfs", "/dev", "devtmpfs", ""},
	} {
		if err := mount(m.src, r(m.dst), m.typ, 0, m.data); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"/dev/pts", "/dev/shm"} {
		if err := os.MkdirAll(r(d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := mount("devpts", r("/dev/pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return nil, err
	}
	for _, d := range append([]string{"/dev/shm"}, plan.Tmpfs...) {
		if err := mount("tmpfs", r(d), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
			return nil, err
		}
	}
	// Shares go over the tmpfs mounts (the scratch directory is usually
	// under /tmp), so their mount points are made first.
	for _, s := range plan.Shares {
		if err := os.MkdirAll(r(s.Path), 0o755); err != nil {
			return &plan, fmt.Errorf("making the mount point of share %s: %w", s.Tag, err)
		}
		if err := mount9p(s.Tag, r(s.Path), 0, ""); err != nil {
			return &plan, err
		}
	}
	if err := switchRoot(guestRoot); err != nil {
		return &plan, err
	}
	if len(plan.Hide) > 0 {
		const empty = "/run/v2guest-hidden"
		if err := os.WriteFile(empty, nil, 0o444); err != nil {
			return &plan, fmt.Errorf("hiding files: %w", err)
		}
		for _, p := range plan.Hide {
			if err := mount(empty, p, "", unix.MS_BIND, ""); err != nil {
				return &plan, fmt.Errorf("hiding %s: %w", p, err)
			}
		}
	}
	// Modules the tests need (veth, bridge, nf_tables...) are loaded on
	// demand by the kernel through the host root's modprobe, which finds
	// the guest kernel's /lib/modules/<release> there.
	if err := os.WriteFile("/proc/sys/kernel/modprobe", []byte("/sbin/modprobe"), 0); err != nil {
		return &plan, fmt.Errorf("setting the modprobe helper: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return &plan, err
	}
	if err := unix.Sethostname([]byte("v2guest")); err != nil {
		return &plan, fmt.Errorf("setting the hostname: %w", err)
	}
	if err := os.Mkdir(testsCgroup, 0o755); err != nil {
		return &plan, fmt.Errorf("creating the tests' cgroup: %w", err)
	}
	return &plan, nil
}

func mount(src, dst, typ string, flags uintptr, data string) error {
	if err := unix.Mount(src, dst, typ, flags, data); err != nil {
		return fmt.Errorf("mounting %s (%s) on %s: %w", src, typ, dst, err)
	}
	return nil
}

// mount9p mounts a virtio-9p share. The virtio device may still be probing
// right after its driver loaded, so a missing tag is retried for a while.
func mount9p(tag, dst string, flags uintptr, extra string) error {
	data := "trans=virtio,version=9p2000.L,msize=262144"
	if extra != "" {
		data += "," + extra
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := unix.Mount(tag, dst, "9p", flags, data)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.ENOENT) || time.Now().After(deadline) {
			return fmt.Errorf("mounting 9p share %q on %s: %w", tag, dst, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// loadModule loads an (uncompressed) module file from the initramfs.
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("loading module: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("loading module %s: %w", path, err)
	}
	return nil
}

// switchRoot makes dir the root, as switch_root does: move it over /,
// chroot into it. The initramfs stays in memory underneath (it is small);
// pivot_root is not possible from the initramfs, and is not needed: the
// sandboxes' own pivot_root works because the new root is a mount with a
// parent.
func switchRoot(dir string) error {
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("switching root: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switching root: moving %s to /: %w", dir, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switching root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switching root: %w", err)
	}
	return nil
}

// loopbackUp brings lo up (the server tests listen on 127.0.0.1).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: reading flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}

// runTests runs the plan's test binaries one after the other, their output
// straight on the console (the host keeps a copy in the scratch
// directory), and publishes the report after each.
func runTests(plan *Plan, rep *Report) {
	cg, err := unix.Open(testsCgroup, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		rep.Err = fmt.Sprintf("opening the tests' cgroup: %v", err)
		publish(plan, rep)
		return
	}
	defer unix.Close(cg)
	for _, t := range plan.Tests {
		fmt.Printf("v2guest: === %s: %s %s (in %s)\n", t.Name, t.Binary, strings.Join(t.Args, " "), t.Dir)
		res := runTest(t, plan.Env, cg)
		fmt.Printf("v2guest: === %s: exit %d after %.1fs %s\n", t.Name, res.ExitCode, res.Seconds, res.Err)
		rep.Results = append(rep.Results, res)
		publish(plan, rep)
	}
	rep.Done = true
	publish(plan, rep)
}

// runTest runs one test binary with the console as its stdout and stderr:
// files, so no copying goroutine stands between the test and the console
// (an earlier copy to a log on the 9p share stalled once and silenced the
// guest). Past its timeout the kernel's blocked tasks are printed and the
// binary's process group killed.
func runTest(t TestRun, env []string, cgroupFD int) Result {
	res := Result{Name: t.Name, ExitCode: -1}
	timeout := time.Duration(t.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.Binary, t.Args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = t.Dir, env, os.Stdout, os.Stdout
	// In a process group of its own, so a timeout kills what it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, UseCgroupFD: true, CgroupFD: cgroupFD}
	cmd.Cancel = func() error {
		fmt.Printf("v2guest: %s ran past its %v timeout\n", t.Name, timeout)
		dumpBlockedTasks()
		return unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
	}
	start := time.Now()
	err := cmd.Run()
	res.Seconds = time.Since(start).Seconds()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.Err = fmt.Sprintf("killed after the %v timeout", timeout)
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	case err != nil:
		res.Err = err.Error()
	default:
		res.ExitCode = 0
	}
	return res
}

// uptime is the time since the guest booted (CLOCK_BOOTTIME, which needs
// no /proc), in seconds.
func uptime() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return float64(ts.Nano()) / 1e9
}

// powerOff flushes the shares (waiting at most shareBound for them) and
// stops the machine (qemu then exits).
func powerOff() {
	bounded("syncing the shares", func() error { unix.Sync(); return nil })
	fmt.Println("v2guest: powering off")
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Printf("v2guest: power off: %v\n", err)
	}
	// pid 1 must not exit; the kernel would panic (and qemu, run with
	// -no-reboot and panic=-1, would stop anyway).
	select {}
}
