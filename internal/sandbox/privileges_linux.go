package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// What the init does to its own thread, as root, before and after it
// becomes the function's user. Everything here is per thread on purpose:
// the thread that does it is the one that execs the entrypoint, and exec
// makes that thread the whole process.

// sandboxRlimits are set (soft = hard) before exec. RLIMIT_NPROC is left
// alone on purpose: the kernel counts it per uid across the whole host, and
// every sandbox shares the function uid, so it would let one function's
// fork bomb starve all the others. The pids cgroup (Spec.PidsMax, 1024 by
// default like Lambda) is the per-sandbox limit on processes and threads.
var sandboxRlimits = []struct {
	name     string
	resource int
	value    uint64
}{
	{"RLIMIT_NOFILE", unix.RLIMIT_NOFILE, DefaultNoFile},
	{"RLIMIT_CORE", unix.RLIMIT_CORE, 0},
}

// DefaultNoFile is the open files limit in a sandbox (Lambda: 1024).
const DefaultNoFile = 1024

// dropBoundingSet empties the capability bounding set, so that nothing the
// function executes can ever gain a capability. It needs CAP_SETPCAP, so it
// runs before the switch to the function's uid. The loop ends at the first
// capability the kernel does not know (EINVAL), so it covers kernels newer
// than this code.
func dropBoundingSet() error {
	for c := 0; c < 64; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if err == unix.EINVAL {
			if c == 0 {
				return fmt.Errorf("dropping bounding capabilities: the kernel knows none")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("dropping bounding capability %d: %w", c, err)
		}
	}
	return nil
}

// clearCapabilities empties the ambient, effective, permitted and
// inheritable sets. After setresuid to a non-root uid the kernel has
// already cleared the first three; the inheritable set it keeps, and
// being explicit costs two syscalls.
func clearCapabilities() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clearing capabilities: %w", err)
	}
	return nil
}

// setRlimits applies sandboxRlimits.
func setRlimits() error {
	for _, l := range sandboxRlimits {
		lim := unix.Rlimit{Cur: l.value, Max: l.value}
		if err := unix.Setrlimit(l.resource, &lim); err != nil {
			return fmt.Errorf("setting %s to %d: %w", l.name, l.value, err)
		}
	}
	return nil
}

// lockDown is the last step before exec, after the switch to the
// function's uid: no capabilities in any set, rlimits, no_new_privs (setuid
// binaries and file capabilities stop working, and seccomp may be loaded
// without CAP_SYS_ADMIN), then the seccomp filter.
func lockDown(filter []unix.SockFilter) error {
	if err := clearCapabilities(); err != nil {
		return err
	}
	if err := setRlimits(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	return installSeccomp(filter)
}
