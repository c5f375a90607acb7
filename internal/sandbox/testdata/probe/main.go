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
)

// Facts is decoded by the tests (keep in sync with sandbox_linux_test.go).
type Facts struct {
	UID, GID, EUID, EGID int
	Groups               []int
	Pid, PPid            int
	Hostname             string
	Cwd                  string
	Env                  []string
	Procs                []int
	WriteErrs            map[string]string
	TmpBytes             uint64
	Interfaces           []string
	LoUp                 bool
	HostDial             string
	DevNull              string
	Urandom              string
	FDs                  []string
	CapEff               string
	RootEntries          []string
	Mountpoints          []string
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: probe facts|connect|alloc|tick|sleep|exit|spawn")
	}
	switch os.Args[1] {
	case "facts":
		facts()
	case "connect": // connect <addr> <msg>
		c, err := net.Dial("tcp", os.Args[2])
		if err != nil {
			fail(err.Error())
		}
		c.Write([]byte(os.Args[3]))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		fmt.Printf("reply %s\n", buf[:n])
	case "alloc": // alloc <MB>: touch that much memory
		mb, _ := strconv.Atoi(os.Args[2])
		var chunks [][]byte
		for i := 0; i < mb; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			chunks = append(chunks, b)
		}
		fmt.Printf("allocated %d MB\n", len(chunks))
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
		f.TmpBytes = st.Blocks * uint64(st.Bsize)
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
