// Package vmtest runs Owl's test binaries inside a small qemu guest whose
// kernel has a pure cgroup v2 hierarchy (cgroup_no_v1=all), so the v2 code
// path of internal/sandbox (newV2Hierarchy, CLONE_INTO_CGROUP,
// cgroup.freeze, cgroup.kill, memory.peak, memory.events) runs for real on a
// host that has v1 or hybrid cgroups.
//
// The guest has no disk and no systemd. The host side (Run) writes a tiny
// initramfs (cpio.go) holding the guest init — a static build of the same
// command, cmd/v2guest, which turns into the init when it runs as pid 1 —,
// the kernel modules needed to mount 9p (modules.go resolves them from the
// guest kernel's modules.dep) and the Plan (plan.go). qemu boots Debian's
// kernel from /boot with it. The init (guest_linux.go) loads the modules,
// mounts the host's root filesystem read-only over virtio-9p, writable 9p
// shares (the scratch directory for results, the Go build cache), tmpfs
// where tests write, proc, sys, devtmpfs and cgroup2, switches root into
// it, runs each test binary in its package's source directory with the
// console as its output, prints the report on the console after each
// (reportLinePrefix; a copy goes to the scratch share), and powers off.
// After the switch the kernel loads further modules (veth, bridge,
// nf_tables) through the host root's /sbin/modprobe, which finds the guest
// kernel's /lib/modules there.
//
// The report travels on the serial console, not only over 9p, and test
// output goes straight to the console: no copy to a share stands between
// a test and the host. Every write to, or sync of, a share is bounded in
// the guest; a test binary past its timeout, or a share that does not
// answer, has the kernel print its blocked tasks (sysrq w) on the console
// before the guest goes on; the host stops a guest that reported its end
// but does not power off. The host keeps the whole console in the scratch
// directory (test.log).
//
// A TCG guest twice went silent mid-test (once in TestRuntimeAPIListener,
// once in TestFreezeThaw, both right after a sandbox was created): qemu
// kept its vCPU threads busy, but neither the test binary's own timeout,
// nor the init's, printed anything, for 40 and 12 minutes. A third run
// showed why: the guest's monotonic clock leapt 6 h 13 min forward
// mid-test, and every timeout fired at once. The guest kept time by the
// emulated TSC; a clock that can leap forward can stand still, which the
// silent runs look like. Under TCG the kernel is now told the TSC is
// unstable (tsc=unstable: it keeps time by the HPET). In case anything
// else stops a guest, the init prints a heartbeat every HeartbeatInterval
// and the host stops a guest silent for Options.Silence and fails the run
// (exit 2, which .ci/run retries once under TCG); a TCG guest also gets
// one vCPU unless asked for more.
//
// The host fails the run when the guest does not boot, when it reports no
// results, when a test binary fails, or on a timeout; qemu is killed and
// the scratch directory removed on every path. What runs, and why, is the
// guestTests table of cmd/v2guest; docs/architecture.md ("Testing on a
// cgroup v2 host") places it in Owl's testing.
package vmtest
