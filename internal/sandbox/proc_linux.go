package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The sandbox's /proc is a fresh instance for its pid namespace, with the
// parts that describe the host rather than the sandbox hidden the way runc
// hides them by default (its MaskedPaths and ReadonlyPaths). /sys is not
// mounted at all, so runc's /sys masks have nothing to hide.

// maskedProcFiles get /dev/null bound over them: they read as empty.
var maskedProcFiles = []string{"kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug"}

// maskedProcDirs get an empty read-only tmpfs over them.
var maskedProcDirs = []string{"acpi", "asound", "scsi"}

// readOnlyProcPaths are bound read-only onto themselves.
var readOnlyProcPaths = []string{"bus", "fs", "irq", "sys", "sysrq-trigger"}

// maskProc applies the masks to the proc mounted at proc (before
// pivot_root: /dev/null is still the host's). Paths this kernel does not
// have are skipped.
func maskProc(proc string) error {
	for _, name := range maskedProcFiles {
		p := proc + "/" + name
		if !exists(p) {
			continue
		}
		if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("masking /proc/%s: %w", name, err)
		}
	}
	for _, name := range maskedProcDirs {
		p := proc + "/" + name
		if !exists(p) {
			continue
		}
		if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k,nr_inodes=1,mode=555"); err != nil {
			return fmt.Errorf("masking /proc/%s: %w", name, err)
		}
	}
	for _, name := range readOnlyProcPaths {
		p := proc + "/" + name
		if !exists(p) {
			continue
		}
		if err := bindReadOnly(p, p); err != nil {
			return fmt.Errorf("making /proc/%s read-only: %w", name, err)
		}
	}
	return nil
}
