package bench

import "time"

// CPU is where the machine's CPU time went during a measurement, per
// completed invocation. The load generator's share is exact (getrusage);
// Others is everything else that ran on the machine (the server, its
// sandboxes, the kernel's network work, and anything unrelated), from
// /proc/stat, so it is only meaningful on an otherwise idle machine.
type CPU struct {
	// ClientUS is the load generator's CPU time per completed invocation.
	ClientUS float64 `json:"client_cpu_us_per_op"`
	// OthersUS is all other busy CPU time per completed invocation.
	OthersUS float64 `json:"others_cpu_us_per_op"`
	// Busy is the fraction of all CPUs that was busy.
	Busy float64 `json:"machine_busy"`
}

// cpuBetween is the CPU use from a to b, per op invocations; nil when it
// cannot be measured.
func cpuBetween(a, b cpuSnapshot, ops int) *CPU {
	if !a.ok || !b.ok || ops == 0 || b.total <= a.total {
		return nil
	}
	self := b.self - a.self
	all := time.Duration(b.busy-a.busy) * clockTick
	others := max(0, all-self)
	return &CPU{
		ClientUS: micros(self / time.Duration(ops)),
		OthersUS: micros(others / time.Duration(ops)),
		Busy:     round2(float64(b.busy-a.busy) / float64(b.total-a.total)),
	}
}
