// Command probe runs inside test sandboxes and reports what it sees.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/owl-project/owl/internal/sandbox/probereport"
)

// Facts and Hardening are what the tests decode.
type (
	Facts     = probereport.Facts
	Hardening = probereport.Hardening
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: probe facts|hardening|x32|connect|alloc|tick|sleep|exit|spawn")
	}
	switch os.Args[1] {
	case "facts":
		facts()
	case "hardening":
		hardening()
	case "x32": // a syscall of the x32 ABI: the filter kills the process
		syscall.RawSyscall(0x40000000|syscall.SYS_GETPID, 0, 0, 0)
		fmt.Println("x32 syscall returned")
	case "connect": // connect <addr> <msg>
		c, err := net.Dial("tcp", os.Args[2])
		if err != nil {
			fail(err.Error())
		}
		c.Write([]byte(os.Args[3]))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		fmt.Printf("reply %s\n", buf[:n])
	case "alloc": // alloc <MB> [progress]: touch that much memory (saying so after each MB)
		mb, _ := strconv.Atoi(os.Args[2])
		progress := len(os.Args) > 3 && os.Args[3] == "progress"
		chunks := allocMB(mb, progress)
		fmt.Printf("allocated %d MB\n", len(chunks))
	case "fill": // fill <MB> [marker]: list /tmp, leave a marker file, write MB to /tmp, say so, then sleep
		fill(atoi(os.Args[2]), os.Args[3:])
	case "hold": // hold <MB>: touch that much memory, say so, then keep it
		held = allocMB(atoi(os.Args[2]), false)
		fmt.Printf("holding %d MB\n", len(held))
		sleepForever()
	case "tick":
		for i := 0; ; i++ {
			fmt.Printf("tick %d\n", i)
			time.Sleep(2 * time.Millisecond)
		}
	case "sleep":
		fmt.Println("sleeping")
		sleepForever()
	case "exit":
		code, _ := strconv.Atoi(os.Args[2])
		fmt.Fprintln(os.Stderr, "exiting with", code)
		os.Exit(code)
	case "spawn": // spawn <n>: start n sleeping children, then sleep
		n, _ := strconv.Atoi(os.Args[2])
		for i := 0; i < n; i++ {
			if err := exec.Command(os.Args[0], "sleep").Start(); err != nil {
				fail(err.Error())
			}
		}
		fmt.Println("spawned")
		sleepForever()
	default:
		fail("unknown mode " + os.Args[1])
	}
}

// sleepForever blocks; unlike select {}, the runtime does not call it a
// deadlock.
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

// fill says what /tmp holds ("tmp-entries" and the names), leaves a
// marker file there, writes mb MiB to /tmp/fill and says "filled", or
// "fill failed after N MB: error" and exits 3; then it sleeps.
func fill(mb int, marker []string) {
	ents, _ := os.ReadDir("/tmp")
	names := []string{}
	for _, e := range ents {
		names = append(names, e.Name())
	}
	fmt.Printf("tmp-entries %d %s\n", len(names), strings.Join(names, ","))
	if len(marker) > 0 {
		if err := os.WriteFile("/tmp/"+marker[0], []byte("secret"), 0o644); err != nil {
			fail(err.Error())
		}
	}
	chunk := make([]byte, 1<<20)
	f, err := os.Create("/tmp/fill")
	if err != nil {
		fail(err.Error())
	}
	for i := range mb {
		if _, err := f.Write(chunk); err != nil {
			fmt.Printf("fill failed after %d MB: %v\n", i, err)
			os.Exit(3)
		}
	}
	if err := f.Sync(); err != nil {
		fmt.Printf("fill failed after %d MB: %v\n", mb, err)
		os.Exit(3)
	}
	fmt.Println("filled")
	sleepForever()
}

// mountOf is the filesystem type and options of the mount at dir (the
// topmost: the last listed).
func mountOf(dir string) string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	found := ""
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 6 && fields[4] == dir && len(tail) >= 3 {
			found = tail[0] + " " + fields[5] + " " + tail[2]
		}
	}
	return found
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "probe:", msg)
	os.Exit(2)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func facts() {
	f := Facts{
		UID: os.Getuid(), GID: os.Getgid(), EUID: os.Geteuid(), EGID: os.Getegid(),
		Pid: os.Getpid(), PPid: os.Getppid(), Env: os.Environ(),
		WriteErrs: map[string]string{},
	}
	f.Groups, _ = os.Getgroups()
	f.Hostname, _ = os.Hostname()
	f.Cwd, _ = os.Getwd()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			f.Procs = append(f.Procs, pid)
		}
	}
	for _, dir := range []string{"/", "/usr", "/etc", "/var/task", "/opt", "/dev", "/tmp", "/dev/shm"} {
		p := dir + "/probe-write-test"
		err := os.WriteFile(p, []byte("x"), 0o644)
		if err == nil {
			os.Remove(p)
		}
		f.WriteErrs[dir] = errString(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/tmp", &st); err == nil {
		f.TmpBytes = st.Bavail * uint64(st.Bsize)
	}
	f.TmpMount = mountOf("/tmp")
	if fi, err := os.Stat("/tmp"); err == nil {
		f.TmpMode = uint32(fi.Mode().Perm())
		if fi.Mode()&os.ModeSticky != 0 {
			f.TmpMode |= 0o1000
		}
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		f.Interfaces = append(f.Interfaces, i.Name)
		if i.Name == "lo" {
			f.LoUp = i.Flags&net.FlagUp != 0
		}
	}
	if addr := os.Getenv("HOST_ADDR"); addr != "" {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		f.HostDial = errString(err)
	}
	if w, err := os.OpenFile("/dev/null", os.O_WRONLY, 0); err != nil {
		f.DevNull = err.Error()
	} else {
		_, err = w.Write([]byte("x"))
		f.DevNull = errString(err)
		w.Close()
	}
	if r, err := os.Open("/dev/urandom"); err != nil {
		f.Urandom = err.Error()
	} else {
		b := make([]byte, 16)
		_, err = r.Read(b)
		f.Urandom = errString(err)
		r.Close()
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, e := range fds {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		f.FDs = append(f.FDs, e.Name()+"->"+target)
	}
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
				f.CapEff = strings.TrimSpace(v)
			}
		}
	}
	root, _ := os.ReadDir("/")
	for _, e := range root {
		name := e.Name()
		if e.Type()&os.ModeSymlink != 0 {
			t, _ := os.Readlink("/" + name)
			name += "->" + t
		}
		f.RootEntries = append(f.RootEntries, name)
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(mi)), "\n") {
			fields := strings.Fields(line)
			if len(fields) > 5 {
				f.Mountpoints = append(f.Mountpoints, fields[4]+" "+fields[5])
			}
		}
	}
	json.NewEncoder(os.Stdout).Encode(f)
}

func hardening() {
	h := Hardening{Status: map[string]string{}, Rlimits: map[string][2]uint64{}, Syscalls: map[string]string{},
		Reads: map[string]string{}, Writes: map[string]string{}}
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (strings.HasPrefix(k, "Cap") || k == "NoNewPrivs" || k == "Seccomp") {
			h.Status[k] = strings.TrimSpace(v)
		}
	}
	for name, r := range map[string]int{"nofile": syscall.RLIMIT_NOFILE, "core": syscall.RLIMIT_CORE} {
		var l syscall.Rlimit
		syscall.Getrlimit(r, &l)
		h.Rlimits[name] = [2]uint64{l.Cur, l.Max}
	}
	errno := func(_, _ uintptr, e syscall.Errno) string {
		if e == 0 {
			return ""
		}
		return e.Error()
	}
	tmpfs := []byte("tmpfs\x00")
	target := []byte("/tmp\x00")
	h.Syscalls["mount"] = errno(syscall.RawSyscall6(syscall.SYS_MOUNT, uintptr(unsafe.Pointer(&tmpfs[0])), uintptr(unsafe.Pointer(&target[0])), uintptr(unsafe.Pointer(&tmpfs[0])), 0, 0, 0))
	h.Syscalls["unshare"] = errno(syscall.RawSyscall(syscall.SYS_UNSHARE, syscall.CLONE_NEWUSER, 0, 0))
	h.Syscalls["clone3"] = errno(syscall.RawSyscall(unix.SYS_CLONE3, 0, 0, 0))
	h.Syscalls["ptrace"] = errno(syscall.RawSyscall6(syscall.SYS_PTRACE, syscall.PTRACE_TRACEME, 0, 0, 0, 0, 0))
	h.Syscalls["keyctl"] = errno(syscall.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, 0, 0))
	h.Syscalls["bpf"] = errno(syscall.RawSyscall(unix.SYS_BPF, 0, 0, 0))
	h.Syscalls["setuid0"] = errno(syscall.RawSyscall(syscall.SYS_SETUID, 0, 0, 0))
	if fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0); err == nil {
		syscall.Close(fd)
		h.Syscalls["packet socket"] = ""
	} else {
		h.Syscalls["packet socket"] = err.Error()
	}
	ents, _ := os.ReadDir("/etc")
	for _, e := range ents {
		h.Etc = append(h.Etc, e.Name())
	}
	ents, _ = os.ReadDir("/dev")
	for _, e := range ents {
		h.Dev = append(h.Dev, e.Name())
	}
	b, _ := os.ReadFile("/etc/passwd")
	h.Passwd = string(b)
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/etc/shadow", "/proc/acpi"} {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			ents, err := os.ReadDir(p)
			h.Reads[p] = fmt.Sprintf("%d entries %v", len(ents), err)
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			h.Reads[p] = err.Error()
		} else {
			h.Reads[p] = fmt.Sprintf("%d bytes", len(b))
		}
	}
	for _, p := range []string{"/proc/sys/kernel/hostname", "/proc/sysrq-trigger", "/dev/owl-test", "/etc/owl-test"} {
		h.Writes[p] = errString(os.WriteFile(p, []byte("x"), 0o644))
	}
	_, err := os.Stat("/sys")
	h.Sys = errString(err)
	json.NewEncoder(os.Stdout).Encode(h)
}

// held keeps the memory of "hold" reachable.
var held [][]byte

// allocMB touches mb MB of memory, one write per page, optionally writing
// "mb N" after each.
func allocMB(mb int, progress bool) [][]byte {
	var chunks [][]byte
	for i := 0; i < mb; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		chunks = append(chunks, b)
		if progress {
			fmt.Printf("mb %d\n", i+1)
		}
	}
	return chunks
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail(err.Error())
	}
	return n
}
