package sandbox

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3"
)

// CgroupsCPU is the CPU time used so far by everything in Owl's cgroups on
// this host: every server's sandboxes and pre-warmed spares, those gone
// included (both cgroup versions count a removed child's use in its
// parent). It is how `owl bench` tells the functions' CPU from the
// server's. It fails where the owl cgroup does not exist yet, or cgroup v1
// has no cpuacct controller.
func CgroupsCPU() (time.Duration, error) {
	dir, err := CgroupsCPUDir()
	if err != nil {
		return 0, err
	}
	if cgroups.Mode() != cgroups.Unified {
		usage, err := readFile(dir, "cpuacct.usage")
		if err != nil {
			return 0, err
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(usage)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("reading %s/cpuacct.usage: %w", dir, err)
		}
		return time.Duration(ns), nil
	}
	stat, err := readFile(dir, "cpu.stat")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(stat)) {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("reading usage_usec in %s/cpu.stat: %w", dir, err)
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	return 0, fmt.Errorf("%s/cpu.stat has no usage_usec", dir)
}

// CgroupsCPUDir is the owl cgroup whose CPU CgroupsCPU reads: under the v2
// root, or under cgroup v1's cpuacct hierarchy.
func CgroupsCPUDir() (string, error) {
	switch cgroups.Mode() {
	case cgroups.Unified:
		return filepath.Join(cgroupV2Root, owlCgroup), nil
	case cgroups.Legacy, cgroups.Hybrid:
		mounts, err := v1Mounts()
		if err != nil {
			return "", err
		}
		mnt, ok := mounts["cpuacct"]
		if !ok {
			return "", fmt.Errorf("%w: cgroup v1 controller cpuacct is not mounted", ErrUnsupported)
		}
		return filepath.Join(mnt, owlCgroup), nil
	}
	return "", fmt.Errorf("%w: no cgroup filesystem at %s", ErrUnsupported, cgroupV2Root)
}

// LimitCPU applies the sandbox's CPU quota (MBPerVCPU MB of memory = one
// CPU's worth per second, see cpuQuotaUs). Until it is called the
// sandbox's processes may use every CPU of the host: the worker calls it
// once the runtime is ready (its first /next), so that the init, bounded
// by its own timeout, starts at the host's speed.
func (s *Sandbox) LimitCPU() error {
	if err := s.cg.limitCPU(); err != nil {
		return fmt.Errorf("sandbox %s: applying the CPU quota: %w", s.id, err)
	}
	return nil
}
