package vmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure Run.
type Options struct {
	// Kernel is the guest kernel image; empty picks the newest
	// /boot/vmlinuz-* whose modules are installed in /lib/modules.
	Kernel string
	// QEMU is the emulator binary (qemu-system-x86_64 when empty).
	QEMU string
	// MemoryMB and CPUs size the guest (6144 MB and 2 when zero).
	MemoryMB, CPUs int
	// Init is the static (CGO_ENABLED=0) binary that becomes the guest's
	// /init and calls Guest.
	Init string
	// Scratch is a host directory the guest can write (the first share):
	// the test binaries should be in it; the report and the test log are
	// written to it. The caller owns it.
	Scratch string
	// Plan is what the guest runs; Run fills in Modules and prepends the
	// scratch share to Shares.
	Plan Plan
	// Timeout bounds the whole boot and run (40 minutes when zero).
	Timeout time.Duration
	// Silence is how long the console may stay quiet before the guest is
	// taken for hung and stopped (10 heartbeats when zero): its init
	// prints a line every HeartbeatInterval whatever the tests do.
	Silence time.Duration
	// Accel is "kvm" or "tcg"; empty picks kvm when KVMUsable says so.
	Accel string
	// Console receives the guest's serial console as it comes.
	Console io.Writer
	Log     *slog.Logger
}

// modulesFor9p are what mounting the host root needs: the virtio PCI
// transport, 9p over virtio and the 9p filesystem (with their dependencies
// from modules.dep; any of them may be built in).
var modulesFor9p = []string{"virtio_pci", "9pnet_virtio", "9p"}

// Outcome is what a run measured.
type Outcome struct {
	Report *Report
	// Wall is the host's time from starting qemu to its exit.
	Wall time.Duration
	// Accel is "kvm" or "tcg".
	Accel string
	// Kernel is the guest kernel image used.
	Kernel string
}

// Run boots the guest, lets it run the plan and returns its report. The
// error is non-nil when the guest did not boot, did not finish, timed out
// or a test binary failed; the outcome is returned whenever the guest
// reported anything. qemu never outlives Run.
//
// It is long because booting, watching and reaping qemu share its
// process and scratch directory; one function keeps their cleanup in one
// place.
func Run(ctx context.Context, o Options) (*Outcome, error) {
	if o.QEMU == "" {
		o.QEMU = "qemu-system-x86_64"
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 6144
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.Timeout == 0 {
		o.Timeout = 40 * time.Minute
	}
	if o.Silence == 0 {
		o.Silence = 10 * HeartbeatInterval
	}
	if o.Console == nil {
		o.Console = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	kernel, release, err := findKernel(o.Kernel)
	if err != nil {
		return nil, err
	}
	qemu, err := exec.LookPath(o.QEMU)
	if err != nil {
		return nil, fmt.Errorf("finding qemu (apt-get install qemu-system-x86): %w", err)
	}
	// The initramfs lives beside the scratch directory's contents but is
	// not needed by the guest once booted.
	initrd := filepath.Join(o.Scratch, "initramfs.cpio")
	plan := o.Plan
	plan.Shares = append([]Share{{Tag: "scratch", Path: o.Scratch}}, plan.Shares...)
	if err := writeInitramfs(initrd, o.Init, filepath.Join("/lib/modules", release), &plan); err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(o.Scratch, reportFile))
	accel := o.Accel
	if accel == "" {
		accel = "tcg"
		if ok, why := KVMUsable(qemu, kernel); ok {
			accel = "kvm"
		} else if KVMAvailable() {
			o.Log.Warn("/dev/kvm is here but qemu cannot run a guest on it; using TCG", "why", why)
		}
	}
	args := qemuArgs(accel, kernel, initrd, o.MemoryMB, o.CPUs, plan.Shares)
	o.Log.Info("booting the cgroup v2 guest", "kernel", kernel, "accel", accel, "memory_mb", o.MemoryMB, "cpus", o.CPUs,
		"tests", len(plan.Tests), "timeout", o.Timeout)
	o.Log.Debug("qemu", "argv", append([]string{qemu}, args...))

	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
	// The console goes to o.Console as it comes and to the test log in the
	// scratch directory; its last 64 kB are kept for the error of a guest
	// that did not boot, and the report is read off it.
	logf, err := os.Create(filepath.Join(o.Scratch, testLogFile))
	if err != nil {
		return nil, fmt.Errorf("creating the test log: %w", err)
	}
	defer logf.Close()
	tail := &tailBuffer{max: 64 << 10}
	watch := newConsoleWatch()
	out := io.MultiWriter(o.Console, tail, watch, logf)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, out, out
	// qemu dies with this process, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	var runErr error
	hung := false
	select {
	case runErr = <-exited:
	case <-watch.silent(o.Silence, stopWatch):
		// The guest kernel stopped running user space: even the init's
		// heartbeat is gone. Seen twice under TCG, mid-test, with qemu
		// busy; nothing in the guest reports it, so the host must.
		hung = true
		o.Log.Error("the guest is silent; stopping qemu", "silent_for", o.Silence)
		_ = cmd.Process.Kill()
		runErr = <-exited
	case <-watch.final:
		// The guest has said its last word; it powers off next. A power-off
		// that hangs (a sync on a stalled share) costs powerOffGrace, not
		// the rest of the timeout.
		select {
		case runErr = <-exited:
		case <-time.After(powerOffGrace):
			o.Log.Warn("the guest reported its end but did not power off; stopping qemu", "waited", powerOffGrace)
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	oc := &Outcome{Wall: time.Since(start), Accel: accel, Kernel: kernel}
	rep, repErr := watch.lastReport(), error(nil)
	if rep == nil {
		rep, repErr = ReadReport(o.Scratch)
	}
	if repErr == nil {
		oc.Report = rep
	}
	switch {
	case rep.final():
		// Whatever ended qemu, the guest finished and reported.
	case hung:
		return oc, fmt.Errorf("the guest hung: no console output for %v, its init's heartbeat included (%s); console tail:\n%s", o.Silence, progress(rep), tail)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return oc, fmt.Errorf("the guest did not finish within %v (%s); console tail:\n%s", o.Timeout, progress(rep), tail)
	case ctx.Err() != nil:
		return oc, fmt.Errorf("interrupted (%s): %w", progress(rep), ctx.Err())
	case runErr != nil:
		return oc, fmt.Errorf("qemu failed: %w; console tail:\n%s", runErr, tail)
	case repErr != nil:
		return oc, fmt.Errorf("the guest did not boot or did not report (%w); console tail:\n%s", repErr, tail)
	default:
		return oc, fmt.Errorf("the guest stopped before running every test (%s); console tail:\n%s", progress(rep), tail)
	}
	if rep.Err != "" {
		return oc, fmt.Errorf("the guest init failed: %s", rep.Err)
	}
	var failed []string
	for _, r := range rep.Results {
		if r.Failed() {
			failed = append(failed, fmt.Sprintf("%s (exit %d %s)", r.Name, r.ExitCode, r.Err))
		}
	}
	if len(failed) > 0 {
		return oc, fmt.Errorf("tests failed in the cgroup v2 guest: %s", strings.Join(failed, ", "))
	}
	return oc, nil
}

func progress(rep *Report) string {
	if rep == nil {
		return "no report"
	}
	return fmt.Sprintf("%d test binaries finished", len(rep.Results))
}

// KVMAvailable reports whether qemu can use KVM here (/dev/kvm opens);
// without it the guest runs under TCG, some 20 times slower.
func KVMAvailable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// KVMUsable reports whether qemu can run the guest kernel (empty: the
// one Run would pick) under KVM here, and if not, why. /dev/kvm opening
// is not enough: nested under another hypervisor, KVM may refuse what qemu
// sets up for a vCPU (qemu aborts: "failed to set MSR 0x10a"), or run
// real mode and then never get the kernel past its decompressor. So the
// kernel boots, without an initramfs, until it panics for want of a root
// (panic=-1 reboots, -no-reboot exits): some seconds under TCG, one under
// KVM. probeTimeout bounds a KVM that hangs.
func KVMUsable(qemu, kernel string) (bool, string) {
	if !KVMAvailable() {
		return false, "/dev/kvm does not open"
	}
	kernel, _, err := findKernel(kernel)
	if err != nil {
		return false, err.Error()
	}
	if err := probe(qemu, "kvm", kernel); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// probeTimeout is how long the probe kernel may take to panic: ten times
// what it takes under TCG on a loaded 2-vCPU machine.
const probeTimeout = time.Minute

// probe boots kernel under accel until it panics: nil when it did.
func probe(qemu, accel, kernel string) error {
	cpu := kvmCPU
	if accel != "kvm" {
		cpu = "max"
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", "q35", "-m", "256", "-smp", "1", "-serial", "stdio", "-nic", "none",
		"-accel", accel, "-cpu", cpu, "-kernel", kernel, "-append", "console=ttyS0 panic=-1 loglevel=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	tail := &tailBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = tail, tail
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("the probe kernel did not get to its panic under %s within %v; console tail:\n%s", accel, probeTimeout, tail)
	case err != nil:
		return fmt.Errorf("the probe kernel did not run under %s (%w); console tail:\n%s", accel, err, tail)
	case !strings.Contains(tail.String(), "Kernel panic"):
		return fmt.Errorf("the probe kernel ended under %s without its panic; console tail:\n%s", accel, tail)
	}
	return nil
}

// kvmCPU is the guest CPU under KVM: the host's, without
// arch-capabilities, an MSR a KVM nested under another hypervisor may
// refuse to set (the guest needs nothing it says).
const kvmCPU = "host,-arch-capabilities"

// qemuArgs is the command line: no default devices, no network, the
// serial console on stdout, 9p shares, a power-off (or a panic: panic=-1
// reboots, which -no-reboot turns into an exit) ending qemu.
func qemuArgs(accel, kernel, initrd string, memMB, cpus int, shares []Share) []string {
	cmdline := "console=ttyS0 cgroup_no_v1=all panic=-1 quiet loglevel=4 rdinit=/init"
	if accel != "kvm" {
		// Under TCG the emulated TSC is no clock to keep time by: a guest
		// on it saw its monotonic clock leap 6 h 13 min forward mid-test
		// (every timeout fired at once), and by all signs twice stood
		// still for many minutes (nothing timed out at all, package doc).
		// The HPET it falls back to is slower to read but keeps time.
		cmdline += " tsc=unstable"
	}
	args := []string{"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", "q35", "-m", strconv.Itoa(memMB), "-smp", strconv.Itoa(cpus),
		"-serial", "stdio", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd,
		"-append", cmdline,
		"-virtfs", "local,path=/,mount_tag=" + rootTag + ",security_model=none,readonly=on,multidevs=remap",
	}
	if accel == "kvm" {
		args = append(args, "-accel", "kvm", "-cpu", kvmCPU)
	} else {
		args = append(args, "-accel", "tcg,thread=multi", "-cpu", "max")
	}
	for _, s := range shares {
		args = append(args, "-virtfs", "local,path="+s.Path+",mount_tag="+s.Tag+",security_model=none,multidevs=remap")
	}
	return args
}

// findKernel returns the kernel image and its release (the name after
// "vmlinuz-"), which must have modules in /lib/modules/<release>.
func findKernel(image string) (string, string, error) {
	if image != "" {
		release := strings.TrimPrefix(filepath.Base(image), "vmlinuz-")
		if _, err := os.Stat(filepath.Join("/lib/modules", release, "modules.dep")); err != nil {
			return "", "", fmt.Errorf("kernel %s: its modules: %w", image, err)
		}
		return image, release, nil
	}
	images, _ := filepath.Glob("/boot/vmlinuz-*")
	var usable []string
	for _, img := range images {
		release := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
		if _, err := os.Stat(filepath.Join("/lib/modules", release, "modules.dep")); err == nil {
			usable = append(usable, img)
		}
	}
	if len(usable) == 0 {
		return "", "", errors.New("no /boot/vmlinuz-* with modules in /lib/modules (apt-get install linux-image-amd64)")
	}
	slices.SortFunc(usable, compareVersions)
	img := usable[len(usable)-1]
	return img, strings.TrimPrefix(filepath.Base(img), "vmlinuz-"), nil
}

// compareVersions orders kernel images by the numbers in their names
// (6.1.0-9 before 6.1.0-10).
func compareVersions(a, b string) int {
	na, nb := versionNumbers(a), versionNumbers(b)
	if c := slices.Compare(na, nb); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func versionNumbers(s string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

// writeInitramfs writes the guest's initramfs: /init, /dev/console (the
// kernel opens it for init's stdio), the mount points, the modules for 9p
// (decompressed) and the plan.
func writeInitramfs(path, initBin, modDir string, plan *Plan) error {
	initData, err := os.ReadFile(initBin)
	if err != nil {
		return fmt.Errorf("reading the guest init: %w", err)
	}
	deps, err := LoadModuleDeps(modDir)
	if err != nil {
		return err
	}
	mods, err := deps.Resolve(modulesFor9p...)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w := NewCPIOWriter(&buf)
	for _, d := range []string{"dev", "proc", "sys", initramfsModules} {
		if err := w.AddDir(d, 0o755); err != nil {
			return err
		}
	}
	if err := w.AddCharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := w.AddFile("init", 0o755, initData); err != nil {
		return err
	}
	plan.Modules = nil
	for i, m := range mods {
		data, err := ReadModule(filepath.Join(modDir, m))
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%s/%02d-%s.ko", initramfsModules, i, ModuleName(m))
		if err := w.AddFile(name, 0o644, data); err != nil {
			return err
		}
		plan.Modules = append(plan.Modules, "/"+name)
	}
	pj, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return err
	}
	if err := w.AddFile(initramfsPlan, 0o644, pj); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing the initramfs: %w", err)
	}
	return nil
}

// powerOffGrace is how long Run waits for qemu to exit after the guest's
// final report.
const powerOffGrace = 2 * time.Minute

// consoleWatch reads the report lines (reportLinePrefix) off the guest's
// console as it comes, and closes final at the guest's last word.
type consoleWatch struct {
	mu      sync.Mutex
	line    []byte // the console since the last newline
	report  *Report
	final   chan struct{}
	finaled bool
	last    time.Time // when the console last said anything
}

func newConsoleWatch() *consoleWatch {
	return &consoleWatch{final: make(chan struct{}), last: time.Now()}
}

// silent returns a channel closed once the console has said nothing for
// d; its watch ends with stop, or at the guest's last word.
func (c *consoleWatch) silent(d time.Duration, stop <-chan struct{}) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		t := time.NewTicker(d / 8)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-c.final:
				return
			case <-t.C:
			}
			c.mu.Lock()
			quiet := time.Since(c.last)
			c.mu.Unlock()
			if quiet >= d {
				close(ch)
				return
			}
		}
	}()
	return ch
}

func (c *consoleWatch) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = time.Now()
	c.line = append(c.line, p...)
	start := 0
	for {
		i := bytes.IndexByte(c.line[start:], '\n')
		if i < 0 {
			break
		}
		if r, ok := parseReportLine(string(c.line[start : start+i])); ok {
			c.report = r
			if r.final() && !c.finaled {
				c.finaled = true
				close(c.final)
			}
		}
		start += i + 1
	}
	c.line = append(c.line[:0], c.line[start:]...)
	if len(c.line) > 1<<20 { // no report is this long: a line of something else
		c.line = c.line[:0]
	}
	return len(p), nil
}

// lastReport is the last report the guest printed, nil if none.
func (c *consoleWatch) lastReport() *Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.report
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
