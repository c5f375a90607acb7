//go:build !linux

package bench

import "time"

// cpuSnapshot is unavailable off Linux: results carry no CPU figures.
type cpuSnapshot struct {
	self        time.Duration
	server      time.Duration
	serverOK    bool
	functions   procTimes
	busy, total uint64
	ok          bool
}

// procTimes is unavailable off Linux.
type procTimes struct{ ok bool }

func (b procTimes) since(procTimes) (time.Duration, bool) { return 0, false }

func takeCPU(int) cpuSnapshot { return cpuSnapshot{} }

func serverPID(string) int { return 0 }
