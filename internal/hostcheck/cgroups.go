package hostcheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/owl-project/owl/internal/sandbox"
)

// cgroupMode is how the host mounts cgroups, decided as containerd's
// cgroups.Mode (which internal/sandbox uses) decides it: cgroup2 on
// /sys/fs/cgroup is v2; cgroup2 on /sys/fs/cgroup/unified beside v1
// hierarchies is hybrid; v1 hierarchies alone are v1.
type cgroupMode int

const (
	cgroupNone cgroupMode = iota
	cgroupV1
	cgroupHybrid
	cgroupV2
)

func (m cgroupMode) String() string {
	return [...]string{"none", "v1", "hybrid", "v2"}[m]
}

const cgroupRoot = "/sys/fs/cgroup"

// mount is one line of /proc/self/mountinfo.
type mount struct {
	point     string
	fstype    string
	superOpts []string // for v1 cgroups: the controllers
	readOnly  bool
}

// mounts parses the host's /proc/self/mountinfo.
func (h Host) mounts() ([]mount, error) {
	data, err := os.ReadFile(h.path("/proc/self/mountinfo"))
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	var ms []mount
	for line := range strings.Lines(string(data)) {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		pre, post, found := strings.Cut(line, " - ")
		if !found {
			continue
		}
		pf, sf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 6 || len(sf) < 3 {
			continue
		}
		ms = append(ms, mount{
			point:     sandbox.UnescapeMountinfo(pf[4]),
			fstype:    sf[0],
			superOpts: strings.Split(sf[2], ","),
			readOnly:  slices.Contains(strings.Split(pf[5], ","), "ro"),
		})
	}
	return ms, nil
}

// cgroupModeOf finds the mode, the v2 mount (nil if none) and the v1
// controllers' mounts (the first mount of each controller, as the sandbox
// takes it).
func cgroupModeOf(ms []mount) (cgroupMode, *mount, map[string]mount) {
	var v2 *mount
	v1 := map[string]mount{}
	for i, m := range ms {
		switch m.fstype {
		case "cgroup2":
			if m.point == cgroupRoot || (v2 == nil && m.point == cgroupRoot+"/unified") {
				v2 = &ms[i]
			}
		case "cgroup":
			for _, c := range m.superOpts {
				if _, seen := v1[c]; !seen {
					v1[c] = m
				}
			}
		}
	}
	switch {
	case v2 != nil && v2.point == cgroupRoot:
		return cgroupV2, v2, v1
	case len(v1) > 0 && v2 != nil:
		return cgroupHybrid, v2, v1
	case len(v1) > 0:
		return cgroupV1, nil, v1
	}
	return cgroupNone, nil, v1
}

// v1Controllers and v2Controllers are the controllers internal/sandbox
// uses (its v1Controllers and v2Controllers; v2's freezer is built in).
var (
	v1Controllers = []string{"memory", "pids", "cpu", "freezer"}
	v2Controllers = []string{"memory", "pids", "cpu"}
)

// Cgroups checks the cgroup mode and the controllers Owl needs in it: on
// v1 and hybrid hosts memory, pids, cpu with CFS bandwidth and freezer
// mounted read-write; on v2 memory, pids and cpu available and delegable
// to Owl's cgroup.
func (h Host) Cgroups() Result {
	const name = "cgroups"
	ms, err := h.mounts()
	if err != nil {
		return fail(name, err.Error(), "run Owl on Linux with /proc mounted")
	}
	mode, v2, v1 := cgroupModeOf(ms)
	switch mode {
	case cgroupNone:
		return fail(name, "no cgroup filesystem is mounted at "+cgroupRoot,
			"mount one (mount -t cgroup2 none /sys/fs/cgroup), or run Owl on a systemd host, which does")
	case cgroupV2:
		return h.cgroupsV2(*v2)
	}
	return h.cgroupsV1(mode, v1)
}

func (h Host) cgroupsV1(mode cgroupMode, v1 map[string]mount) Result {
	const name = "cgroups"
	label := "v1"
	if mode == cgroupHybrid {
		label = "hybrid (Owl uses the v1 controllers)"
	}
	var missing, readOnly []string
	for _, c := range v1Controllers {
		m, found := v1[c]
		switch {
		case !found:
			missing = append(missing, c)
		case m.readOnly:
			readOnly = append(readOnly, c+" ("+m.point+")")
		}
	}
	switch {
	case len(missing) > 0:
		return fail(name, fmt.Sprintf("%s: controller %s not mounted", label, strings.Join(missing, ", ")),
			"mount the missing v1 hierarchies (e.g. mount -t cgroup -o pids cgroup /sys/fs/cgroup/pids), or boot with cgroup v2")
	case len(readOnly) > 0:
		return fail(name, fmt.Sprintf("%s: mounted read-only: %s", label, strings.Join(readOnly, ", ")),
			"run Owl on the host or in a container with a writable cgroupfs (e.g. a privileged one)")
	}
	cpu := v1["cpu"]
	if _, err := os.Stat(h.path(filepath.Join(cpu.point, "cpu.cfs_quota_us"))); err != nil {
		return fail(name, fmt.Sprintf("%s: the cpu controller has no CFS bandwidth control (no cpu.cfs_quota_us in %s)", label, cpu.point),
			"use a kernel built with CONFIG_CFS_BANDWIDTH (every distribution kernel is)")
	}
	return ok(name, "%s: memory, pids, cpu (with CFS bandwidth) and freezer mounted read-write", label)
}

func (h Host) cgroupsV2(m mount) Result {
	const name = "cgroups"
	if m.readOnly {
		return fail(name, "v2: "+cgroupRoot+" is mounted read-only",
			"run Owl on the host or in a container with a writable, delegated cgroupfs")
	}
	root := h.path(cgroupRoot)
	avail, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return fail(name, fmt.Sprintf("v2: %v", err), "mount cgroup2 on "+cgroupRoot)
	}
	missing := notListed(v2Controllers, avail)
	if len(missing) > 0 {
		return fail(name, fmt.Sprintf("v2: controller %s not available in %s/cgroup.controllers", strings.Join(missing, ", "), cgroupRoot),
			"enable it for this cgroup in its parent's cgroup.subtree_control (a container needs them delegated), or use a kernel that has it")
	}
	// Owl enables the controllers for its owl/ cgroup in the root's
	// cgroup.subtree_control. The real root always allows that; a cgroup
	// namespace root (a container: it has cgroup.type, the real root has
	// not) only while no process sits in it.
	sub, _ := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
	enabled := strings.Fields(string(sub))
	var toEnable []string
	for _, c := range v2Controllers {
		if !slices.Contains(enabled, c) {
			toEnable = append(toEnable, c)
		}
	}
	if len(toEnable) > 0 && exists(filepath.Join(root, "cgroup.type")) {
		procs, _ := os.ReadFile(filepath.Join(root, "cgroup.procs"))
		if len(strings.Fields(string(procs))) > 0 {
			return fail(name, fmt.Sprintf("v2: %s cannot be delegated to Owl's cgroup: %s is a cgroup namespace root with processes in it",
				strings.Join(toEnable, ", "), cgroupRoot),
				"move those processes into a child cgroup first (mkdir /sys/fs/cgroup/init; write each pid into /sys/fs/cgroup/init/cgroup.procs), or run Owl on the host")
		}
	}
	// CFS bandwidth (cpu.max) shows in child cgroups with cpu enabled.
	bandwidth := "CFS bandwidth not verifiable yet (no child cgroup has the cpu controller)"
	if slices.Contains(enabled, "cpu") {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			dir := filepath.Join(root, e.Name())
			if !exists(filepath.Join(dir, "cpu.weight")) {
				continue
			}
			if !exists(filepath.Join(dir, "cpu.max")) {
				return fail(name, "v2: the cpu controller has no CFS bandwidth control (no cpu.max)",
					"use a kernel built with CONFIG_CFS_BANDWIDTH (every distribution kernel is)")
			}
			bandwidth = "with CFS bandwidth"
			break
		}
	}
	return ok(name, "v2: memory, pids and cpu (%s) available and delegable to Owl's cgroup", bandwidth)
}

// swapAccounting says whether the kernel accounts swap per cgroup, which
// the sandbox's no-swap limits rely on: "yes", "no" or "unknown".
func (h Host) swapAccounting() string {
	ms, err := h.mounts()
	if err != nil {
		return "unknown"
	}
	mode, _, v1 := cgroupModeOf(ms)
	switch mode {
	case cgroupV1, cgroupHybrid:
		mem, found := v1["memory"]
		if !found {
			return "unknown"
		}
		if exists(h.path(filepath.Join(mem.point, "memory.memsw.limit_in_bytes"))) {
			return "yes"
		}
		return "no"
	case cgroupV2:
		// The root has no memory.swap.max; a child with memory has, when
		// swap is accounted.
		root := h.path(cgroupRoot)
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			dir := filepath.Join(root, e.Name())
			if e.IsDir() && exists(filepath.Join(dir, "memory.max")) {
				if exists(filepath.Join(dir, "memory.swap.max")) {
					return "yes"
				}
				return "no"
			}
		}
	}
	return "unknown"
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, os.ErrNotExist)
}
