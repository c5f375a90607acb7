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
// output on the serial console and in a log file on the scratch share,
// writes the exit codes and powers off. After the switch the kernel loads
// further modules (veth, bridge, nf_tables) through the host root's
// /sbin/modprobe, which finds the guest kernel's /lib/modules there.
//
// The host fails the run when the guest does not boot, when it reports no
// results, when a test binary fails, or on a timeout; qemu is killed and
// the scratch directory removed on every path. What runs, and why, is the
// guestTests table of cmd/v2guest; docs/architecture.md ("Testing on a
// cgroup v2 host") places it in Owl's testing.
package vmtest
