package bench

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/owl-project/owl/internal/hostcheck"
	"github.com/owl-project/owl/internal/sandbox"
)

// cpuSnapshot is, at one moment: this process's CPU time, the server's
// (the process serving the endpoint, when it is on this machine), the
// functions' (Owl's cgroups), and the machine's busy and total CPU time
// (from /proc/stat).
type cpuSnapshot struct {
	self        time.Duration
	server      time.Duration
	serverOK    bool
	functions   procTimes
	busy, total uint64 // clock ticks, all CPUs
	ok          bool
}

// procTimes is the functions' CPU time: all of Owl's cgroups' (cgroup,
// exact), or else per live process in them.
type procTimes struct {
	cgroup time.Duration
	procs  map[int]time.Duration
	ok     bool
}

// since is the CPU time from a to b: the cgroups' difference, or that of
// each process alive at b (one that died between is not counted).
func (b procTimes) since(a procTimes) (time.Duration, bool) {
	switch {
	case !a.ok || !b.ok:
		return 0, false
	case b.procs == nil:
		return b.cgroup - a.cgroup, true
	}
	var d time.Duration
	for pid, t := range b.procs {
		d += t - a.procs[pid]
	}
	return d, true
}

// takeCPU reads a snapshot; serverPID 0 means no server is watched.
func takeCPU(serverPID int) cpuSnapshot {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuSnapshot{}
	}
	s := cpuSnapshot{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	if serverPID > 0 {
		s.server, s.serverOK = procCPU(serverPID)
	}
	s.functions = functionsCPU()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return s
	}
	// user nice system idle iowait irq softirq steal: idle and iowait are
	// not busy; steal is time another guest had our CPU, counted as not ours.
	for i, v := range f[1:9] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return s
		}
		s.total += n
		if i != 3 && i != 4 && i != 7 {
			s.busy += n
		}
	}
	s.ok = true
	return s
}

// functionsCPU reads the CPU time of Owl's cgroups, or, where the cgroup
// cannot say (cgroup v1 with cpuacct not mounted with cpu, where Owl
// makes no cpuacct cgroups), of each process in them.
func functionsCPU() procTimes {
	if t, err := sandbox.CgroupsCPU(); err == nil {
		return procTimes{cgroup: t, ok: true}
	}
	return procsCPU()
}

// procsCPU is the CPU time of each process in Owl's cgroups.
func procsCPU() procTimes {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return procTimes{}
	}
	out := procTimes{procs: map[int]time.Duration{}, ok: true}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || !inOwlCgroup(pid) {
			continue
		}
		if t, ok := procCPU(pid); ok {
			out.procs[pid] = t
		}
	}
	return out
}

// inOwlCgroup reports whether any of pid's cgroups is under owl/.
func inOwlCgroup(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		// hierarchy-ID:controllers:path
		if f := strings.SplitN(strings.TrimSpace(line), ":", 3); len(f) == 3 && strings.HasPrefix(f[2], "/owl/") {
			return true
		}
	}
	return false
}

// procCPU is the user and system CPU time of pid's threads (not of its
// children: a sandbox's processes are the functions'), from
// /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid … utime stime: comm may hold spaces and
	// parentheses, so the fields start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * clockTick, true
}

// serverPID is the process listening on endpoint's port when endpoint is
// on this machine (a loopback address), else 0.
func serverPID(endpoint string) int {
	u, err := url.Parse(endpoint)
	if err != nil {
		return 0
	}
	host, portText := u.Hostname(), u.Port()
	if portText == "" {
		portText = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		return 0
	}
	return hostcheck.ListenerPID(int(port))
}
