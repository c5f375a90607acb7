package hostcheck

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// kernelVersion is a kernel's major.minor.
type kernelVersion struct{ major, minor int }

func (v kernelVersion) less(o kernelVersion) bool {
	return v.major < o.major || v.major == o.major && v.minor < o.minor
}

func (v kernelVersion) String() string { return fmt.Sprintf("%d.%d", v.major, v.minor) }

var releaseRe = regexp.MustCompile(`^(\d+)\.(\d+)`)

// parseRelease reads "6.1.0-18-amd64" as 6.1.
func parseRelease(s string) (kernelVersion, error) {
	m := releaseRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return kernelVersion{}, fmt.Errorf("unrecognised kernel release %q", strings.TrimSpace(s))
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return kernelVersion{major, minor}, nil
}

// kernelFeature is a kernel feature internal/sandbox uses, the release
// that brought it, when Owl needs it, and what happens without it.
type kernelFeature struct {
	name    string
	since   kernelVersion
	applies func(mode cgroupMode, o Options) bool
	// fatal: sandboxes (or the configured egress) cannot work without it.
	fatal bool
	// without says what Owl does without it.
	without string
	// fix, when set, replaces "upgrade the kernel".
	fix string
}

func always(cgroupMode, Options) bool         { return true }
func onV2(m cgroupMode, _ Options) bool       { return m == cgroupV2 }
func withEgress(_ cgroupMode, o Options) bool { return o.NetworkEgress }

// kernelFeatures are what internal/sandbox needs of the kernel, oldest
// first. Fallbacks it has without a user-visible effect (pidfd_open 5.3,
// setns on a pidfd 5.8, close_range 5.11, a recursive read-only bind
// without mount_setattr) are not listed.
var kernelFeatures = []kernelFeature{
	{name: "seccomp SECCOMP_RET_KILL_PROCESS", since: kernelVersion{4, 14}, applies: always, fatal: true,
		without: "the sandbox's seccomp filter cannot be installed"},
	{name: "bridge port isolation", since: kernelVersion{4, 18}, applies: withEgress, fatal: true,
		without: "the egress network cannot keep sandboxes apart",
		fix:     "upgrade the kernel to 4.18 or later, or disable egress (OWL_NETWORK_EGRESS=false)"},
	{name: "CLONE_INTO_CGROUP", since: kernelVersion{5, 7}, applies: onV2, fatal: true,
		without: "sandboxes cannot be started in their cgroup v2"},
	{name: "mount_setattr", since: kernelVersion{5, 12}, applies: func(_ cgroupMode, o Options) bool { return o.Prewarm > 0 },
		without: "pre-warmed environments cannot be specialised (pre-warming turns itself off after 3 failures; Python and Node.js cold starts are slower)",
		fix:     "upgrade the kernel to 5.12 or later, or turn pre-warming off (OWL_PREWARM=0)"},
	{name: "cgroup.kill", since: kernelVersion{5, 14}, applies: onV2,
		without: "destroying a sandbox freezes its cgroup and kills each process instead (slower)"},
	{name: "memory.peak", since: kernelVersion{5, 19}, applies: onV2,
		without: "REPORT lines show Max Memory Used: 0 MB"},
}

// Kernel checks the running kernel's release against what the sandbox
// uses on this host's cgroup mode and configuration.
func (h Host) Kernel(o Options) Result {
	const name = "kernel"
	b, err := os.ReadFile(h.path("/proc/sys/kernel/osrelease"))
	if err != nil {
		return fail(name, fmt.Sprintf("cannot read the kernel release: %v", err), "run Owl on Linux with /proc mounted")
	}
	v, err := parseRelease(string(b))
	if err != nil {
		return fail(name, err.Error(), "run Owl on a Linux kernel")
	}
	release := strings.TrimSpace(string(b))
	mode := cgroupNone
	if ms, err := h.mounts(); err == nil {
		mode, _, _ = cgroupModeOf(ms)
	}
	var fatal, degraded, used []string
	var fixes []string
	var need kernelVersion
	for _, f := range kernelFeatures {
		if !f.applies(mode, o) {
			continue
		}
		label := fmt.Sprintf("%s %s", f.name, f.since)
		if !v.less(f.since) {
			used = append(used, label)
			continue
		}
		text := fmt.Sprintf("without %s (%s) %s", f.name, f.since, f.without)
		if f.fatal {
			fatal = append(fatal, text)
		} else {
			degraded = append(degraded, text)
		}
		if f.fix != "" {
			fixes = append(fixes, f.fix)
		} else if need.less(f.since) {
			need = f.since
		}
	}
	if need.major > 0 {
		fixes = append([]string{fmt.Sprintf("upgrade the kernel to %s or later (Debian 12 ships 6.1)", need)}, fixes...)
	}
	fix := strings.Join(fixes, "; ")
	switch {
	case len(fatal) > 0:
		return fail(name, fmt.Sprintf("Linux %s: %s", release, strings.Join(append(fatal, degraded...), "; ")), fix)
	case len(degraded) > 0:
		return warn(name, fmt.Sprintf("Linux %s: %s", release, strings.Join(degraded, "; ")), fix)
	}
	return ok(name, "Linux %s, has what Owl uses here: %s", release, strings.Join(used, ", "))
}
