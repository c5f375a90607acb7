// Command hostile is a test function that tries to escape its sandbox and
// to exhaust its resources. Its event names the attempt; each answer says
// what the kernel replied, and the test (hostile_test.go) asserts that
// every escape was refused and every exhaustion contained.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/aws/aws-lambda-go/lambda"
	"golang.org/x/sys/unix"
)

type event struct {
	Action  string `json:"action"`
	DataDir string `json:"dataDir"` // Owl's data dir on the host
	HostPid int    `json:"hostPid"` // a host process (Owl)
	Bytes   int    `json:"bytes"`
	Secret  string `json:"secret"`
}

func handle(ctx context.Context, e event) (any, error) {
	switch e.Action {
	case "escapes":
		return escapes(e), nil
	case "status":
		return status(), nil
	case "oom":
		var keep [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	case "forkbomb":
		return forkBomb(), nil
	case "spin":
		for {
		}
	case "filltmp":
		return fillTmp(), nil
	case "openfiles":
		return openFiles(), nil
	case "flood":
		return flood(e.Bytes), nil
	case "x32":
		// exit_group(43) through the x32 ABI. Refused, however the host
		// refuses it (Owl's filter kills the process), it never exits 43.
		unix.RawSyscall(0x40000000|unix.SYS_EXIT_GROUP, foreignExitCode, 0, 0)
		return "x32 syscall returned", nil
	case "int80":
		// exit_group(43) through int 0x80, an i386 syscall: a foreign
		// architecture for the filter (which kills the process) or, on a
		// kernel without IA32 emulation, a fault. It never exits 43.
		if !int80Supported {
			return "unsupported", nil
		}
		return fmt.Sprint("int 0x80 returned ", int80(252, foreignExitCode)), nil
	case "secret":
		// Leave a secret behind in /tmp, keep a process running, and show
		// the environment (whose SECRET variable the test set).
		if err := os.WriteFile("/tmp/secret-"+e.Secret, []byte(e.Secret), 0o644); err != nil {
			return nil, err
		}
		if err := exec.Command("/bin/sleep", "300").Start(); err != nil {
			return nil, err
		}
		return os.Environ(), nil
	case "peek":
		return peek(e.Secret), nil
	}
	return nil, fmt.Errorf("unknown action %q", e.Action)
}

// foreignExitCode is the status the foreign-ABI probes would exit with if
// their syscall took effect.
const foreignExitCode = 43

// errno names how an attempt ended: "ok" or the error.
func errno(err error) string {
	if err == nil {
		return "ok"
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return en.Error()
	}
	return err.Error()
}

func rawErr(_, _ uintptr, e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	return e.Error()
}

func cstr(s string) uintptr {
	b := append([]byte(s), 0)
	return uintptr(unsafe.Pointer(&b[0]))
}

// cloneWith tries a fork with extra clone flags; a child, should one
// appear, exits at once.
func cloneWith(flags uintptr) string {
	r, _, e := unix.RawSyscall6(unix.SYS_CLONE, flags|uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if e == 0 && r == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	if e == 0 {
		var ws unix.WaitStatus
		unix.Wait4(int(r), &ws, 0, nil)
		return "ok"
	}
	return e.Error()
}

func escapes(e event) map[string]string {
	r := map[string]string{}
	for _, dir := range []string{"/", "/usr", "/var/task", "/etc", "/opt", "/var/runtime", "/dev"} {
		r["write "+dir] = errno(os.WriteFile(strings.TrimSuffix(dir, "/")+"/owl-escape", []byte("x"), 0o644))
	}
	_, err := os.ReadFile("/etc/shadow")
	r["read /etc/shadow"] = errno(err)
	_, err = os.ReadDir(e.DataDir)
	r["list data dir"] = errno(err)
	_, err = os.ReadFile(e.DataDir + "/credentials.json")
	r["read credentials"] = errno(err)
	_, err = os.Stat("/root")
	r["stat /root"] = errno(err)
	_, err = os.Stat("/home")
	r["stat /home"] = errno(err)
	_, err = os.Stat("/sys")
	r["stat /sys"] = errno(err)

	// Kernel modules, mounts, namespaces.
	r["init_module"] = rawErr(unix.RawSyscall(unix.SYS_INIT_MODULE, 0, 0, cstr("")))
	devNull, _ := unix.Open("/dev/null", unix.O_RDONLY, 0)
	r["finit_module"] = rawErr(unix.RawSyscall(unix.SYS_FINIT_MODULE, uintptr(devNull), cstr(""), 0))
	r["delete_module"] = rawErr(unix.RawSyscall(unix.SYS_DELETE_MODULE, cstr("ext4"), 0, 0))
	r["mount"] = errno(unix.Mount("tmpfs", "/tmp", "tmpfs", 0, ""))
	r["umount"] = errno(unix.Unmount("/tmp", unix.MNT_DETACH))
	r["fsopen"] = rawErr(unix.RawSyscall(unix.SYS_FSOPEN, cstr("tmpfs"), 0, 0))
	r["unshare user"] = errno(unix.Unshare(unix.CLONE_NEWUSER))
	r["unshare mount"] = errno(unix.Unshare(unix.CLONE_NEWNS))
	r["clone newuser"] = cloneWith(unix.CLONE_NEWUSER)
	r["clone newns"] = cloneWith(unix.CLONE_NEWNS)
	r["clone newpid"] = cloneWith(unix.CLONE_NEWPID)
	r["clone3"] = rawErr(unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0))
	r["plain fork"] = cloneWith(0)
	if fd, err := unix.Open("/proc/self/ns/mnt", unix.O_RDONLY, 0); err == nil {
		r["setns"] = errno(unix.Setns(fd, 0))
		unix.Close(fd)
	} else {
		r["setns"] = "open: " + errno(err)
	}
	r["chroot"] = errno(unix.Chroot("/tmp"))
	r["pivot_root"] = errno(unix.PivotRoot("/tmp", "/tmp"))

	// Other processes and the kernel.
	r["ptrace host pid"] = errno(unix.PtraceAttach(e.HostPid))
	r["ptrace traceme"] = rawErr(unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0, 0, 0, 0))
	r["kill host pid"] = errno(unix.Kill(e.HostPid, 0))
	r["bpf"] = rawErr(unix.RawSyscall(unix.SYS_BPF, 0 /* BPF_MAP_CREATE */, 0, 0))
	r["perf_event_open"] = rawErr(unix.RawSyscall6(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0, 0))
	r["userfaultfd"] = rawErr(unix.RawSyscall(unix.SYS_USERFAULTFD, 0, 0, 0))
	r["io_uring_setup"] = rawErr(unix.RawSyscall(unix.SYS_IO_URING_SETUP, 1, 0, 0))
	_, err = unix.AddKey("user", "owl", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
	r["add_key"] = errno(err)
	_, err = unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	r["keyctl"] = errno(err)
	r["kexec_load"] = rawErr(unix.RawSyscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0))
	r["reboot"] = rawErr(unix.RawSyscall6(unix.SYS_REBOOT, 0, 0, 0, 0, 0, 0)) // bad magic: harmless even if allowed
	r["swapon"] = rawErr(unix.RawSyscall(unix.SYS_SWAPON, cstr("/tmp/swap"), 0, 0))
	r["open_by_handle_at"] = rawErr(unix.RawSyscall6(unix.SYS_OPEN_BY_HANDLE_AT, ^uintptr(99), 0, 0, 0, 0, 0))
	r["setuid 0"] = rawErr(unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0))

	// Raw network access.
	if fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0); err == nil {
		unix.Close(fd)
		r["socket AF_PACKET"] = "ok"
	} else {
		r["socket AF_PACKET"] = errno(err)
	}
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP); err == nil {
		unix.Close(fd)
		r["socket SOCK_RAW"] = "ok"
	} else {
		r["socket SOCK_RAW"] = errno(err)
	}

	// Devices and /proc.
	_, err = os.Stat("/dev/sda")
	r["stat /dev/sda"] = errno(err)
	_, err = os.Stat("/dev/kvm")
	r["stat /dev/kvm"] = errno(err)
	_, err = os.Stat("/dev/mem")
	r["stat /dev/mem"] = errno(err)
	r["mknod block"] = errno(unix.Mknod("/tmp/sda", unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0))))
	r["mknod char"] = errno(unix.Mknod("/tmp/mem", unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1))))
	if b, err := os.ReadFile("/proc/kcore"); err == nil {
		r["read /proc/kcore"] = strconv.Itoa(len(b)) + " bytes"
	} else {
		r["read /proc/kcore"] = errno(err)
	}
	r["write /proc/sysrq-trigger"] = errno(os.WriteFile("/proc/sysrq-trigger", []byte("b"), 0))
	r["write /proc/sys"] = errno(os.WriteFile("/proc/sys/kernel/core_pattern", []byte("|/tmp/x"), 0))
	ents, _ := os.ReadDir("/dev")
	var dev []string
	for _, d := range ents {
		dev = append(dev, d.Name())
	}
	r["/dev"] = strings.Join(dev, " ")
	r["/proc comms"] = strings.Join(procComms(), " ")
	return r
}

// procComms lists "pid:comm" of every process this sandbox can see.
func procComms() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + d.Name() + "/comm")
		out = append(out, d.Name()+":"+strings.TrimSpace(string(comm)))
	}
	return out
}

// status reports /proc/self/status's privilege lines and the rlimits.
func status() map[string]string {
	r := map[string]string{}
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (strings.HasPrefix(k, "Cap") || k == "NoNewPrivs" || k == "Seccomp" || k == "Uid" || k == "Gid" || k == "Groups") {
			r[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	for name, res := range map[string]int{"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_CORE": unix.RLIMIT_CORE} {
		var l unix.Rlimit
		unix.Getrlimit(res, &l)
		r[name] = fmt.Sprintf("%d %d", l.Cur, l.Max)
	}
	return r
}

// forkBomb forks until the kernel refuses, then kills the children: how
// many it got and how it was refused. The children are raw forks that only
// wait in ppoll (no exec, no Go runtime of their own), so a thousand cost
// little CPU.
func forkBomb() map[string]any {
	var pids []int
	var err syscall.Errno
	for len(pids) < 5000 {
		var pid int
		pid, err = forkAndWait()
		if err != 0 {
			break
		}
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	for _, pid := range pids {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
	}
	return map[string]any{"started": len(pids), "err": errno(err)}
}

// forkAndWait forks a child that blocks forever. The child runs only the
// raw syscalls below, on this function's stack (nosplit: it must not call
// into the Go runtime of a process that has one thread left).
//
//go:nosplit
func forkAndWait() (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r == 0 {
		for {
			syscall.RawSyscall6(unix.SYS_PPOLL, 0, 0, 0, 0, 0, 0)
		}
	}
	return int(r), 0
}

// fillTmp writes /tmp full, then frees it.
func fillTmp() map[string]any {
	f, err := os.Create("/tmp/fill")
	if err != nil {
		return map[string]any{"err": "create: " + errno(err)}
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = 'x'
	}
	written := 0
	for {
		var n int
		n, err = f.Write(buf)
		written += n
		if err != nil {
			break
		}
	}
	f.Close()
	os.Remove("/tmp/fill")
	return map[string]any{"written": written, "err": errno(err)}
}

// openFiles opens /dev/null until the kernel refuses.
func openFiles() map[string]any {
	var fds []int
	var err error
	for len(fds) < 100000 {
		var fd int
		fd, err = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fds = append(fds, fd)
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	return map[string]any{"opened": len(fds), "err": errno(err)}
}

// flood writes n bytes of 100-byte lines to stdout.
func flood(n int) map[string]any {
	line := strings.Repeat("flood", 19) + "0123\n"
	chunk := []byte(strings.Repeat(line, 640))
	start := time.Now()
	written := 0
	for written < n {
		w, err := os.Stdout.Write(chunk)
		written += w
		if err != nil {
			return map[string]any{"written": written, "err": errno(err)}
		}
	}
	return map[string]any{"written": written, "ms": time.Since(start).Milliseconds()}
}

// peek is what another function can find of a secret left by one.
func peek(secret string) map[string]any {
	tmp, _ := os.ReadDir("/tmp")
	var names []string
	for _, d := range tmp {
		names = append(names, d.Name())
	}
	_, err := os.ReadFile("/tmp/secret-" + secret)
	env := os.Environ()
	var task []string
	ents, _ := os.ReadDir("/var/task")
	for _, d := range ents {
		task = append(task, d.Name())
	}
	return map[string]any{"tmp": names, "read": errno(err), "procs": procComms(), "env": env, "task": task,
		"envHasSecret": strings.Contains(strings.Join(env, "\n"), secret)}
}

func main() {
	lambda.Start(handle)
}
