package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSnapshot is this process's CPU time and the machine's busy and total
// CPU time (from /proc/stat), at one moment.
type cpuSnapshot struct {
	self        time.Duration
	busy, total uint64 // clock ticks, all CPUs
	ok          bool
}

func takeCPU() cpuSnapshot {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuSnapshot{}
	}
	s := cpuSnapshot{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
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

// clockTick is USER_HZ, the unit of /proc/stat: 100 on every Linux ABI Go
// supports.
const clockTick = 10 * time.Millisecond
