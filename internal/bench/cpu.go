package bench

import "time"

// CPU is where the machine's CPU time went during a measurement, per
// completed invocation. The load generator's share is exact (getrusage);
// the server's is the process serving the endpoint's own time (its
// threads, not its children), when it runs on this machine; the
// functions' is what Owl's cgroups used (the sandboxes' processes); Others
// is everything else that ran on the machine (the kernel's network work,
// and anything unrelated), from /proc/stat, so it is only meaningful on
// an otherwise idle machine.
type CPU struct {
	// ClientUS is the load generator's CPU time per completed invocation.
	ClientUS float64 `json:"client_cpu_us_per_op"`
	// ServerUS is the server process's CPU time per completed invocation
	// (Owl's own share; for a baseline, the bare server's), when known.
	ServerUS *float64 `json:"server_cpu_us_per_op,omitempty"`
	// FunctionsUS is the CPU time of Owl's sandboxes per completed
	// invocation, when known (a baseline has none: 0).
	FunctionsUS *float64 `json:"functions_cpu_us_per_op,omitempty"`
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
	perOp := func(d time.Duration) float64 { return micros(d / time.Duration(ops)) }
	self := b.self - a.self
	all := time.Duration(b.busy-a.busy) * clockTick
	c := &CPU{ClientUS: perOp(self), Busy: round2(float64(b.busy-a.busy) / float64(b.total-a.total))}
	accounted := self
	if a.serverOK && b.serverOK {
		d := b.server - a.server
		c.ServerUS, accounted = ptr(perOp(d)), accounted+d
	}
	if d, ok := b.functions.since(a.functions); ok {
		c.FunctionsUS, accounted = ptr(perOp(d)), accounted+d
	}
	c.OthersUS = perOp(max(0, all-accounted))
	return c
}

// clockTick is USER_HZ, the unit of /proc/stat and /proc/<pid>/stat: 100
// on every Linux ABI Go supports.
const clockTick = 10 * time.Millisecond
