package sandbox

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
)

// Defaults applied by [Manager.Create] to zero fields of a [Spec].
const (
	// DefaultUID and DefaultGID are the identity a function runs as, like
	// Lambda's sbx_user1051 (993:990).
	DefaultUID = 993
	DefaultGID = 990
	// DefaultPidsMax limits processes+threads per sandbox, like Lambda.
	DefaultPidsMax = 1024
	// DefaultTmpMB is the size of /tmp, like Lambda's default ephemeral storage.
	DefaultTmpMB = 512
	// DefaultRuntimeAPIAddr is where the Runtime API listener is bound inside
	// the sandbox's network namespace (AWS_LAMBDA_RUNTIME_API).
	DefaultRuntimeAPIAddr = "127.0.0.1:9001"
	// Hostname is the hostname seen inside every sandbox.
	Hostname = "owl"

	// MBPerVCPU is how much memory buys one full CPU (Lambda: 1769 MB).
	MBPerVCPU = 1769
	// MinMemoryMB is the smallest accepted memory limit: below it the
	// in-sandbox init itself does not fit.
	MinMemoryMB = 16
	// MaxTmpMB is the largest /tmp (Lambda: 10 GB).
	MaxTmpMB = 10240

	// initArg0 is the argv[0] with which the owl binary is re-executed as the
	// in-sandbox init; see [MaybeRunInit].
	initArg0 = "owl-sandbox-init"
)

var (
	// ErrClosed is returned by Create after Manager.Close.
	ErrClosed = errors.New("sandbox manager closed")
	// ErrDestroyed is returned by operations on a destroyed sandbox.
	ErrDestroyed = errors.New("sandbox destroyed")
	// ErrInvalidEntrypoint wraps the failure to exec Spec.Argv[0] inside the
	// sandbox (missing, not executable, bad interpreter...): a function error
	// (Lambda: Runtime.InvalidEntrypoint), not a platform one. The errno is
	// wrapped too, so errors.Is(err, fs.ErrNotExist) works.
	ErrInvalidEntrypoint = errors.New("invalid entrypoint")
	// ErrUnsupported is returned by NewManager on systems without the needed
	// kernel features (non-Linux, no cgroups).
	ErrUnsupported = errors.New("sandboxes are not supported on this system")
)

// Config configures a [Manager]; there is one per Owl instance.
type Config struct {
	// Instance names this Owl instance; stable across restarts of the same
	// data dir (e.g. a short hash of it). Cgroups live under owl/<Instance>/
	// of each hierarchy, so that a restart finds what a crash left.
	Instance string
	// RootDir is a host scratch directory Owl owns (e.g. <data>/sandboxes).
	// The manager creates it if needed and uses an empty subdirectory as the
	// mount point of every sandbox's root tmpfs (mounted only inside each
	// sandbox's private mount namespace, so one directory serves them all).
	RootDir string
	// Logger receives the manager's own events; nil discards them.
	Logger *slog.Logger
	// Spares is how many sandbox inits the manager keeps started ahead of
	// time (0: none). A spare is a process already cloned into fresh
	// namespaces, with the owl binary started, waiting for a Spec: Create
	// takes one instead of starting its own, which saves the larger part of
	// its time (see Performance in the package doc). Each costs an idle
	// process (a few MB) and, on cgroup v2, an empty cgroup. At most
	// MaxSpares.
	Spares int
	// MemoryBudgetMB caps the memory of all sandboxes together (one parent
	// cgroup, no swap): however far admission overcommits, the kernel then
	// reclaims and OOM-kills inside the sandboxes, never Owl or the host.
	// 0: no cap.
	MemoryBudgetMB int
	// TmpSpares is how many /tmp disks of DefaultTmpMB the manager keeps
	// made ahead of time (tmpdisk_linux.go): Create and Specialize take one
	// instead of making the filesystem, which takes tens of milliseconds.
	// Each costs a loop device, an fd and a few hundred KB of the data
	// dir's disk. Other sizes are made when asked for. At most MaxSpares.
	TmpSpares int
	// Egress, when set, lets sandboxes whose Spec.Egress is true reach the
	// host's networks through a bridge of this instance (see network.md in
	// the repository's docs). NewManager then sets up the bridge and the
	// instance's nftables table, and fails if the host cannot provide them.
	// Nil: no sandbox gets more than loopback.
	Egress *EgressConfig
}

// EgressConfig configures the egress network of a Manager.
type EgressConfig struct {
	// Pool is the IPv4 range the instances of the host share; each takes a
	// free subnet of it (a /22, or the whole pool when it is smaller) for
	// its bridge and sandboxes. Must not overlap the host's networks.
	Pool netip.Prefix
}

// Subnet sizes of the egress network.
const (
	// InstanceSubnetBits is the prefix length of an instance's subnet: 1021
	// sandboxes with egress at once.
	InstanceSubnetBits = 22
	// MaxPoolBits is the longest accepted Pool prefix: a gateway, a
	// sandbox and the subnet's own addresses need at least a /30.
	MaxPoolBits = 30
)

// MaxSpares bounds Config.Spares.
const MaxSpares = 64

func (c Config) validate() error {
	if err := checkName("Instance", c.Instance); err != nil {
		return fmt.Errorf("sandbox config: %w", err)
	}
	if c.RootDir == "" || !filepath.IsAbs(c.RootDir) {
		return fmt.Errorf("sandbox config: RootDir must be an absolute path, got %q", c.RootDir)
	}
	if c.Spares < 0 || c.Spares > MaxSpares {
		return fmt.Errorf("sandbox config: Spares must be between 0 and %d, got %d", MaxSpares, c.Spares)
	}
	if c.TmpSpares < 0 || c.TmpSpares > MaxSpares {
		return fmt.Errorf("sandbox config: TmpSpares must be between 0 and %d, got %d", MaxSpares, c.TmpSpares)
	}
	if c.Egress != nil {
		if p := c.Egress.Pool; !p.IsValid() || !p.Addr().Is4() || p.Bits() > MaxPoolBits || p.Masked() != p {
			return fmt.Errorf("sandbox config: Egress.Pool must be an IPv4 network of at most /%d like 10.213.0.0/16, got %q",
				MaxPoolBits, p)
		}
	}
	return nil
}

// Spec describes one sandbox.
type Spec struct {
	// ID names the sandbox; unique among the live sandboxes of a manager
	// (it names the sandbox's cgroup, except for v2 spares). Letters,
	// digits, '.', '_', '-'.
	ID string
	// CodeDir is the host directory bound read-only at /var/task; with
	// Image it may be "" (the image's own /var/task).
	CodeDir string
	// Image, when set, is the host directory of an unpacked container
	// image's root file system (prepared by the images package: its mount
	// points are real directories). It is bound read-only as the root
	// instead of the tmpfs with the host's /usr; /etc is the image's with
	// Owl's identity and name-service files bound over it, and /proc,
	// /dev, /tmp, seccomp and the rest are as for any sandbox
	// (image_linux.go).
	Image string
	// WorkDir is the entrypoint's working directory inside the sandbox;
	// "" means /var/task.
	WorkDir string
	// OptDir, when set, is a host directory bound read-only at /opt (the
	// function's layers); otherwise /opt is empty.
	OptDir string
	// RuntimeDir, when set, is a host directory bound read-only at
	// /var/runtime (the platform's own runtime files, e.g. bootstraps).
	RuntimeDir string
	// Argv is the entrypoint and its arguments; Argv[0] is an absolute path
	// inside the sandbox, e.g. "/var/task/bootstrap".
	Argv []string
	// Env is the entrypoint's entire environment ("KEY=value"); nothing is
	// inherited from Owl.
	Env []string
	// MemoryMB is the memory limit (no swap); it also sets the CPU weight
	// and the CPU quota (MBPerVCPU MB = one CPU's worth, see cpuQuotaUs).
	// Required, at least MinMemoryMB.
	MemoryMB int
	// TmpMB sizes /tmp, a disk of its own (an ext4 filesystem under
	// RootDir, not memory); 0 means DefaultTmpMB.
	TmpMB int
	// PidsMax limits processes and threads; 0 means DefaultPidsMax.
	PidsMax int
	// UID and GID are the non-root identity of the function; 0 means
	// DefaultUID / DefaultGID (root is never used).
	UID, GID int
	// RuntimeAPIAddr is the TCP address of the listener created inside the
	// sandbox's network namespace; "" means DefaultRuntimeAPIAddr.
	RuntimeAPIAddr string
	// Egress gives the sandbox an eth0 with an address of the instance's
	// subnet and a default route through the instance's bridge, so it can
	// reach the host's networks (not the host, not other sandboxes). It
	// needs Config.Egress. Without it the sandbox has only loopback.
	Egress bool
	// Slots makes a pre-warmed sandbox: CodeDir and OptDir are ignored,
	// /var/task, /opt and /tmp are empty read-only slots until
	// Sandbox.Specialize attaches a function's code, layers and /tmp (see
	// prewarm_linux.go). TmpMB is then unused.
	Slots bool
	// DeferExec, with Slots, makes a pre-warmed sandbox whose command is
	// not known yet (a custom runtime's bootstrap lives in the function's
	// code): the init builds the sandbox (mounts, identity, seccomp, the
	// Runtime API listener, Egress) and then waits, running nothing else,
	// until Sandbox.Specialize gives it Specialization.Argv and Env and it
	// execs them. Argv and Env are then unused and may be empty.
	DeferExec bool
}

// Specialization is what a pre-warmed sandbox (Spec.Slots) is given when it
// becomes a function's: the rest of what a Spec says.
type Specialization struct {
	// CodeDir is bound read-only at /var/task.
	CodeDir string
	// OptDir, when set, is bound read-only at /opt.
	OptDir string
	// TmpMB sizes /tmp (see Spec.TmpMB); 0 means DefaultTmpMB.
	TmpMB int
	// MemoryMB is the new memory limit (and CPU share); required.
	MemoryMB int
	// PidsMax; 0 means DefaultPidsMax.
	PidsMax int
	// Egress adds eth0 (see Spec.Egress); a sandbox created with
	// Spec.Egress already has it, and one without Egress cannot lose it.
	Egress bool
	// Argv and Env, for a sandbox created with Spec.DeferExec (and only
	// then), are the command its waiting init execs once the rest is in
	// place, as Spec.Argv and Spec.Env; Argv[0] is resolved in the
	// specialised sandbox, so it may be in the function's code. An Argv[0]
	// that cannot be exec'd gives an error wrapping ErrInvalidEntrypoint.
	Argv []string
	Env  []string
}

func (s Spec) withDefaults() Spec {
	if s.TmpMB == 0 {
		s.TmpMB = DefaultTmpMB
	}
	if s.PidsMax == 0 {
		s.PidsMax = DefaultPidsMax
	}
	if s.UID == 0 {
		s.UID = DefaultUID
	}
	if s.GID == 0 {
		s.GID = DefaultGID
	}
	if s.RuntimeAPIAddr == "" {
		s.RuntimeAPIAddr = DefaultRuntimeAPIAddr
	}
	return s
}

// validate checks a Spec after withDefaults; each failure names the field.
func (s Spec) validate() error {
	checks := []func() error{
		func() error { return checkName("ID", s.ID) },
		func() error {
			if !s.Slots && !filepath.IsAbs(s.CodeDir) && !(s.Image != "" && s.CodeDir == "") {
				return fmt.Errorf("CodeDir must be an absolute path, got %q", s.CodeDir)
			}
			return s.validateImage()
		},
		func() error {
			if !s.Slots && s.OptDir != "" && !filepath.IsAbs(s.OptDir) {
				return fmt.Errorf("OptDir must be an absolute path, got %q", s.OptDir)
			}
			if s.RuntimeDir != "" && !filepath.IsAbs(s.RuntimeDir) {
				return fmt.Errorf("RuntimeDir must be an absolute path, got %q", s.RuntimeDir)
			}
			return nil
		},
		func() error {
			switch {
			case s.DeferExec && !s.Slots:
				return errors.New("DeferExec needs Slots: the command comes with Specialize")
			case s.DeferExec && len(s.Argv)+len(s.Env) > 0:
				return errors.New("with DeferExec, Argv and Env come with Specialize, not the Spec")
			case s.DeferExec:
				return nil
			}
			return validateCommand(s.Argv, s.Env)
		},
		func() error {
			if s.MemoryMB < MinMemoryMB {
				return fmt.Errorf("MemoryMB must be at least %d, got %d", MinMemoryMB, s.MemoryMB)
			}
			return nil
		},
		func() error {
			if s.TmpMB < 1 || s.TmpMB > MaxTmpMB {
				return fmt.Errorf("TmpMB must be between 1 and %d, got %d", MaxTmpMB, s.TmpMB)
			}
			return nil
		},
		func() error {
			if s.PidsMax < 1 {
				return fmt.Errorf("PidsMax must be positive, got %d", s.PidsMax)
			}
			return nil
		},
		func() error {
			if s.UID < 1 || s.GID < 1 {
				return fmt.Errorf("UID and GID must be positive (non-root), got %d:%d", s.UID, s.GID)
			}
			return nil
		},
		func() error {
			host, port, err := net.SplitHostPort(s.RuntimeAPIAddr)
			if err != nil || net.ParseIP(host) == nil || port == "" || port == "0" {
				return fmt.Errorf("RuntimeAPIAddr must be a literal IP and fixed port like %q, got %q",
					DefaultRuntimeAPIAddr, s.RuntimeAPIAddr)
			}
			return nil
		},
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return fmt.Errorf("sandbox spec %q: %w", s.ID, err)
		}
	}
	return nil
}

// validateCommand checks an entrypoint and its environment (Spec.Argv and
// Env, or Specialization's).
func validateCommand(argv, env []string) error {
	if len(argv) == 0 || !strings.HasPrefix(argv[0], "/") {
		return fmt.Errorf("the program (Argv[0]) must be an absolute path inside the sandbox, got %q", argv)
	}
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("an argument (Argv) contains a NUL byte: %q", a)
		}
	}
	for _, e := range env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" || strings.IndexByte(e, 0) >= 0 {
			return fmt.Errorf("an environment entry (Env) %q is not KEY=value", e)
		}
	}
	return nil
}

// validateImage checks the image fields.
func (s Spec) validateImage() error {
	if s.Image != "" && (!filepath.IsAbs(s.Image) || s.Slots) {
		return fmt.Errorf("the image root (Image) must be an absolute path, and not with Slots, got %q", s.Image)
	}
	if s.WorkDir != "" && !strings.HasPrefix(s.WorkDir, "/") {
		return fmt.Errorf("WorkDir must be an absolute path inside the sandbox, got %q", s.WorkDir)
	}
	return nil
}

// checkName accepts names safe as a single path element (cgroup names).
func checkName(field, v string) error {
	if v == "" || v == "." || v == ".." || len(v) > 128 {
		return fmt.Errorf("%s must be 1-128 characters and not . or .., got %q", field, v)
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%s may contain only letters, digits, '.', '_' and '-', got %q", field, v)
		}
	}
	return nil
}

// cpuShares is the cgroup v1 cpu.shares for a memory size: 1024 (one
// default share) per MBPerVCPU, at least 2 (the kernel's minimum).
func cpuShares(memoryMB int) uint64 {
	return uint64(max(2, min(262144, 1024*memoryMB/MBPerVCPU)))
}

// CPU quota: a sandbox may use memoryMB/MBPerVCPU of a CPU per period, so
// that a busy function cannot take CPU time the others paid for even when
// they are idle (the weight above only shares CPU under contention).
const (
	// CPUPeriodUs is the CFS bandwidth period: one second, the longest the
	// kernel allows, so that the share is measured over a second. A cold
	// start or a short invocation (tens of ms of CPU) runs at full speed
	// within one period's quota; only sustained use is held to the share.
	// With the kernel's default 100 ms, a 128 MB function gets 7.2 ms per
	// 100 ms and python3's start-up alone took ~350 ms instead of ~30.
	CPUPeriodUs = 1_000_000
	// MinCPUFraction is the floor of the quota, as a fraction of one CPU
	// (1/16: 62.5 ms per second). Lambda's rule gives 128 MB about 1/14;
	// the floor keeps smaller sandboxes (down to MinMemoryMB) able to
	// start the init and a runtime in reasonable time.
	MinCPUFraction = 16
)

// cpuQuotaUs is the CFS quota per CPUPeriodUs for a memory size: one CPU
// per MBPerVCPU MB, at least 1/MinCPUFraction of a CPU and at most all
// the host's CPUs.
func cpuQuotaUs(memoryMB, hostCPUs int) int64 {
	q := int64(CPUPeriodUs) * int64(memoryMB) / MBPerVCPU
	q = max(q, CPUPeriodUs/MinCPUFraction)
	return min(q, int64(CPUPeriodUs)*int64(max(hostCPUs, 1)))
}

// cpuWeight is the cgroup v2 analog: 100 (the default weight) per
// MBPerVCPU, within the kernel's 1..10000.
func cpuWeight(memoryMB int) uint64 {
	return uint64(max(1, min(10000, (100*memoryMB+MBPerVCPU/2)/MBPerVCPU)))
}
