//go:build !linux

package bench

import "time"

// cpuSnapshot is unavailable off Linux: results carry no CPU figures.
type cpuSnapshot struct {
	self        time.Duration
	busy, total uint64
	ok          bool
}

func takeCPU() cpuSnapshot { return cpuSnapshot{} }

const clockTick = 10 * time.Millisecond
