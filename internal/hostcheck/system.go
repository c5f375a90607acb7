package hostcheck

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// User checks that `owl serve` runs as root: namespaces, cgroups and
// mounts need it.
func (h Host) User() Result {
	const name = "root"
	if h.Euid != 0 {
		return fail(name, fmt.Sprintf("running as uid %d, not root: sandboxes need namespaces, mounts and cgroups", h.Euid),
			"run owl serve as root (e.g. sudo owl serve)")
	}
	return ok(name, "running as root")
}

// namespaceFiles are /proc/self/ns entries of the namespaces every sandbox
// gets, with their kernel options.
var namespaceFiles = []struct{ file, config string }{
	{"mnt", "mount"}, {"pid", "CONFIG_PID_NS"}, {"ipc", "CONFIG_IPC_NS"},
	{"uts", "CONFIG_UTS_NS"}, {"net", "CONFIG_NET_NS"},
}

// Namespaces checks that the kernel has the mount, pid, ipc, uts and
// network namespaces and, as root, that a process can be started in new
// ones (a container's seccomp profile or missing capabilities refuse it).
func (h Host) Namespaces(ctx context.Context) Result {
	const name = "namespaces"
	var missing []string
	for _, ns := range namespaceFiles {
		if _, err := os.Lstat(h.path("/proc/self/ns/" + ns.file)); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", ns.file, ns.config))
		}
	}
	if len(missing) > 0 {
		return fail(name, "the kernel lacks namespace "+strings.Join(missing, ", "),
			"use a kernel with mount, pid, ipc, uts and network namespaces (every distribution kernel has them)")
	}
	const have = "mount, pid, ipc, uts and net"
	switch {
	case h.ProbeNamespaces == nil:
		return ok(name, "%s present (not probed)", have)
	case h.Euid != 0:
		return ok(name, "%s present (creating them needs root: not probed)", have)
	}
	err := h.ProbeNamespaces(ctx)
	switch {
	case errors.Is(err, errNoProbe):
		return ok(name, "%s present (not probed: %v)", have, err)
	case err != nil:
		return fail(name, fmt.Sprintf("%s present, but %v", have, err),
			"run Owl on the host or in a privileged container (creating namespaces needs CAP_SYS_ADMIN and clone allowed by any seccomp profile)")
	}
	return ok(name, "%s: a process started in new ones", have)
}

// seccompActions are the filter's return actions (internal/sandbox's
// seccomp_linux.go: ALLOW, ERRNO, KILL_PROCESS) as actions_avail names
// them.
var seccompActions = []string{"allow", "errno", "kill_process"}

// Seccomp checks that the kernel has seccomp filters with the actions the
// sandbox's filter returns.
func (h Host) Seccomp() Result {
	const name = "seccomp"
	b, err := os.ReadFile(h.path("/proc/sys/kernel/seccomp/actions_avail"))
	if err != nil {
		status, serr := os.ReadFile(h.path("/proc/self/status"))
		if serr == nil && strings.Contains(string(status), "\nSeccomp:") {
			return warn(name, "seccomp present, but the kernel does not list its filter actions (before 4.14?): the filter may fail to install",
				"upgrade the kernel to 4.14 or later")
		}
		return fail(name, "the kernel has no seccomp (CONFIG_SECCOMP_FILTER)",
			"use a kernel with seccomp filters (every distribution kernel has them)")
	}
	missing := notListed(seccompActions, b)
	if len(missing) > 0 {
		return fail(name, "seccomp filter action "+strings.Join(missing, ", ")+" unavailable",
			"upgrade the kernel to 4.14 or later")
	}
	return ok(name, "filter mode with the actions Owl's filter returns (%s)", strings.Join(seccompActions, ", "))
}

// Nft checks, when egress is on, that the nft command exists where the
// sandbox looks for it and can talk to the kernel's nf_tables.
func (h Host) Nft(ctx context.Context, o Options) Result {
	const name = "nft"
	const disable = "OWL_NETWORK_EGRESS=false (or --network-egress=false): functions then get loopback only"
	if !o.NetworkEgress {
		return ok(name, "not needed: network egress is off (functions get loopback only)")
	}
	if h.FindNft == nil {
		return ok(name, "not checked")
	}
	path, err := h.FindNft()
	if err != nil {
		return fail(name, "network egress is on, but the nft command (package nftables) is not installed",
			"apt-get install nftables, or "+disable)
	}
	if h.ProbeNft == nil || h.Euid != 0 {
		return ok(name, "%s found (egress is on)", path)
	}
	if err := h.ProbeNft(ctx, path); err != nil {
		return fail(name, fmt.Sprintf("network egress is on, but %v", err),
			"make nf_tables available (modprobe nf_tables), or "+disable)
	}
	return ok(name, "%s works (egress is on)", path)
}

// Interpreters lists the interpreted runtimes this host can run.
func (h Host) Interpreters() Result {
	const name = "runtimes"
	if h.Runtimes == nil {
		return ok(name, "not checked")
	}
	ids := h.Runtimes()
	if len(ids) == 0 {
		return warn(name, "no Python or Node.js interpreter of a supported version: only provided runtimes (your bootstrap) can run",
			"apt-get install python3 nodejs (Owl runs /usr/bin/python3.9-3.13 and /usr/bin/node 18, 20 or 22)")
	}
	return ok(name, "%s, and provided.al2023/provided.al2/provided", strings.Join(ids, ", "))
}

// Swap checks for swap: sandboxes' memory limits exclude it, so what swap
// means depends on whether the kernel accounts it per cgroup.
func (h Host) Swap() Result {
	const name = "swap"
	b, err := os.ReadFile(h.path("/proc/swaps"))
	if err != nil {
		return warn(name, fmt.Sprintf("cannot tell: %v", err), "mount /proc")
	}
	var total uint64
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines[min(1, len(lines)):] { // the first line is a header
		f := strings.Fields(l)
		if len(f) >= 3 {
			kb, _ := strconv.ParseUint(f[2], 10, 64)
			total += kb << 10
		}
	}
	if total == 0 {
		return ok(name, "off: a function's memory limit is its RAM, as on Lambda")
	}
	if h.swapAccounting() == "no" {
		return warn(name, fmt.Sprintf("%s of swap, and the kernel does not account swap per cgroup: a function can swap out beyond its MemorySize instead of being OOM-killed at it",
			bytesText(total)),
			"turn swap off (swapoff -a, and remove it from /etc/fstab), or enable swap accounting (boot with swapaccount=1 on cgroup v1)")
	}
	return warn(name, fmt.Sprintf("%s of swap: functions never swap (their limits exclude it: a function is OOM-killed at its MemorySize, as on Lambda), but Owl and the host's other processes may, which slows invocations under memory pressure",
		bytesText(total)),
		"turn swap off for predictable latency (swapoff -a, and remove it from /etc/fstab), or keep it knowing this")
}

// notListed is what of want is not among the whitespace-separated words
// of list (a kernel file such as cgroup.controllers or actions_avail).
func notListed(want []string, list []byte) []string {
	have := strings.Fields(string(list))
	var missing []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	return missing
}
