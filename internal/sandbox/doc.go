// Package sandbox runs function runtimes in Linux sandboxes.
//
// A sandbox is one process tree — the runtime (e.g. /var/task/bootstrap)
// and whatever it starts — that cannot see the host or other sandboxes:
//
//   - namespaces: own mount, pid, ipc, uts and network namespaces. The
//     network namespace has only loopback, brought up by Owl. The Runtime
//     API listener (Sandbox.Listener, 127.0.0.1:9001 by default) is created
//     inside it from Owl — setns on a locked OS thread, listen, switch back —
//     so only that sandbox can reach it, and Owl serves it.
//   - network: with Spec.Egress (and Config.Egress) also eth0, the peer of
//     a veth pair whose host end is an isolated port of the instance's
//     bridge, with an address of the instance's subnet and a default route
//     through the bridge; the instance's nftables table forwards and
//     masquerades its traffic to the host's networks and rejects what goes
//     to the host itself, to other sandboxes or to link-local addresses.
//     The pair is made while the init builds its mounts, eth0 configured in
//     the listener's setns trip; it dies with the network namespace.
//     network_linux.go and docs/network.md have the details.
//   - filesystem: a fresh read-only tmpfs root holding read-only, nosuid
//     bind mounts of the host's /usr (and /bin, /sbin, /lib, /lib64, or
//     their merged-usr symlinks), a minimal /etc prepared by the Manager
//     (etc_linux.go: what runtimes read, no shadow or keys), /var/task (the
//     code, read-only), /opt (layers, or empty), a /tmp of Spec.TmpMB on
//     disk (an ext4 filesystem of its own on a loop device, made ahead of
//     need: tmpdisk_linux.go),
//     a fresh /proc with runc's masks (proc_linux.go) and a read-only
//     minimal /dev (null, zero, full, random, urandom, fd links, a small
//     /dev/shm); no /sys. All mounts happen inside the sandbox's private
//     mount namespace: the host never sees them and they vanish with it.
//   - identity: a non-root uid/gid (993:990 by default), no supplementary
//     groups, every capability set empty (bounding and ambient included),
//     no_new_privs, RLIMIT_NOFILE 1024 and RLIMIT_CORE 0
//     (privileges_linux.go), then a seccomp filter (seccomp_linux.go),
//     hostname "owl", working directory /var/task, environment exactly
//     Spec.Env.
//   - cgroup (v2, or the v1 controllers on v1/hybrid hosts, detected at run
//     time) under owl/<Config.Instance>/<Spec.ID> (on v2 a sandbox made from
//     a spare keeps the spare's "@spare-..." name: v2 cgroups cannot be
//     renamed): memory limit without swap, a pids limit, a CPU weight and a
//     CPU quota proportional to memory (1769 MB = one CPU; see cpuQuotaUs),
//     applied by LimitCPU once the runtime is ready (the init runs
//     without it), and the freezer (Freeze/Thaw). Only the memory, pids, cpu and freezer
//     controllers.
//
// # Lifecycle
//
// Manager.Create → run → Sandbox.Destroy:
//
//  1. Create makes the cgroup and re-executes the owl binary
//     (/proc/self/exe, argv[0] "owl-sandbox-init") with the new namespaces —
//     or takes a spare init started ahead of time (Config.Spares). That is
//     why main, and the TestMain of every package whose tests create
//     sandboxes, must call MaybeRunInit first thing.
//  2. The init (pid 1 of the new pid namespace) reads its config from a
//     socket, joins its cgroup (v2: it was cloned straight into it; v1: its
//     exec thread moves itself, which avoids the multi-millisecond global
//     lock of a whole-process move), builds the mounts, pivots into the new
//     root, sets hostname and identity, re-arms the parent-death signal
//     (SIGKILL if Owl dies), drops every privilege, installs the seccomp
//     filter and reports ready. Meanwhile Owl creates the Runtime API
//     listener in its network namespace.
//  3. Owl sends "go"; the init execs the entrypoint with only fds 0-2 open.
//     Create returns once exec succeeded; init failures come back as errors
//     naming the step ("sandbox f1: mounting /tmp: ..."), exec failures wrap
//     ErrInvalidEntrypoint.
//  4. The caller serves Listener, reads Output (stdout and stderr, one pipe)
//     and may Freeze/Thaw. Done is closed when pid 1 exits; ExitError,
//     OOMKilled and MaxMemoryBytes tell how it went.
//  5. Destroy kills pid 1 (the kernel then kills the whole pid namespace),
//     kills anything else left in the cgroup, waits, closes the listener and
//     the output and removes the cgroup. Manager.Close destroys all live
//     sandboxes; Manager.CleanupStale removes what a crashed Owl left.
//
// A pre-warmed sandbox (Spec.Slots) is created without code: its /var/task,
// /opt and /tmp are read-only slaves of host-side slot mounts, and
// Sandbox.Specialize later attaches a function's code, layers and /tmp
// through them (mount propagation, host to sandbox only), sets its limits
// and adds its network, while the entrypoint is already running. See
// prewarm_linux.go.
//
// The entrypoint is pid 1 of its pid namespace. So: signals it has no
// handler for (SIGTERM, SIGINT) are ignored — only SIGKILL from Owl works;
// orphaned grandchildren are reparented to it, and zombies stay until it
// reaps them or the sandbox dies; and when it exits, everything else in the
// sandbox is killed. Lambda runtimes are fine with this; a tiny reaper as
// pid 1 would be the fix if one is not.
//
// # Performance
//
// Measured on the 2-vCPU CI VM (BenchmarkCreateDestroy): Create takes
// ~3.5-4 ms from scratch with the small test binary, of which ~1.5-2 ms is
// the re-executed binary's Go runtime start-up and package initialization
// before MaybeRunInit runs; the whole owl binary (with the NATS server)
// needs ~3-5 ms more for that alone. The rest: clone with five namespaces
// ~0.6 ms, mounts and identity ~0.5 ms, exec ~0.5 ms; the cgroup and the
// listener overlap with the init. A spare init skips the clone and the
// start-up: Create then takes ~1.5 ms. The hardening (capabilities,
// seccomp, rlimits, /proc masks, read-only /dev) adds ~0.3-0.5 ms to
// either (docs/benchmarks-history.md). Keep package-level initialization
// in the owl binary light, and use spares (or pre-created sandboxes) on the
// cold-start path.
//
// On cgroup v1, moving a process into a cgroup (cgroup.procs) waits for an
// RCU grace period under a global lock unless another move happened just
// before: 5-8 ms on an idle host. So the init moves only its own exec
// thread ("0" to tasks), which is cheap; on v2 the init is cloned straight
// into its cgroup (CLONE_INTO_CGROUP).
//
// The parent-death signal is tied to the OS thread that started the init:
// if a goroutine of Owl ever exits while locked to its thread
// (runtime.LockOSThread without Unlock), sandboxes started from that thread
// are killed. This package only does so when it cannot switch a thread back
// to the host network namespace.
//
// # Limits of the isolation
//
// Namespaces, seccomp and cgroups share one kernel with the host: a kernel
// bug reachable through an allowed syscall is an escape path. The filter is
// a deny list modelled on Docker's default profile. There is no user
// namespace, and RLIMIT_NPROC is not used (it counts per uid across all
// sandboxes; the pids cgroup limits each one). docs/security.md describes
// every layer and what it does not cover.
package sandbox
