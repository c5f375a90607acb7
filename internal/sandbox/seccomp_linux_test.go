package sandbox

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// runBPF interprets the classic BPF subset buildSeccompFilter emits on a
// struct seccomp_data, as the kernel would, and returns the verdict.
func runBPF(t *testing.T, prog []unix.SockFilter, arch uint32, nr uint32, arg0 uint64) uint32 {
	t.Helper()
	var data [64]byte
	binary.LittleEndian.PutUint32(data[0:], nr)
	binary.LittleEndian.PutUint32(data[4:], arch)
	binary.LittleEndian.PutUint64(data[16:], arg0)
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case bpfLoadAbsWord:
			if in.K%4 != 0 || int(in.K)+4 > len(data) {
				t.Fatalf("pc %d: load at bad offset %d", pc, in.K)
			}
			a = binary.LittleEndian.Uint32(data[in.K:])
		case bpfAnd:
			a &= in.K
		case bpfJumpEq, bpfJumpGreaterEqual:
			taken := a == in.K
			if in.Code == bpfJumpGreaterEqual {
				taken = a >= in.K
			}
			if taken {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfReturn:
			return in.K
		default:
			t.Fatalf("pc %d: unexpected instruction %#x", pc, in.Code)
		}
	}
	t.Fatal("the program fell off its end")
	return 0
}

func TestSeccompFilter(t *testing.T) {
	for _, arch := range []seccompArch{seccompAMD64(), seccompARM64()} {
		t.Run(arch.name, func(t *testing.T) {
			prog, err := buildSeccompFilter(arch)
			if err != nil {
				t.Fatal(err)
			}
			if len(prog) > 255 {
				t.Errorf("%d instructions; keep the filter small", len(prog))
			}
			verdict := func(nr uint32, arg0 uint64) uint32 { return runBPF(t, prog, arch.audit, nr, arg0) }
			for _, name := range deniedSyscalls {
				nr, ok := arch.nr[name]
				if !ok {
					continue
				}
				if v := verdict(nr, 0); v != seccompRetEPERM {
					t.Errorf("%s (%d): verdict %#x, want EPERM", name, nr, v)
				}
			}
			if v := verdict(arch.nr["clone3"], 0); v != seccompRetENOSYS {
				t.Errorf("clone3: verdict %#x, want ENOSYS", v)
			}
			clone := arch.nr["clone"]
			for _, ns := range []uint64{unix.CLONE_NEWUSER, unix.CLONE_NEWNS, unix.CLONE_NEWPID, unix.CLONE_NEWNET,
				unix.CLONE_NEWUTS, unix.CLONE_NEWIPC, unix.CLONE_NEWCGROUP} {
				if v := verdict(clone, ns|unix.CLONE_VM|uint64(unix.SIGCHLD)); v != seccompRetEPERM {
					t.Errorf("clone with namespace flag %#x: verdict %#x, want EPERM", ns, v)
				}
			}
			threadFlags := uint64(unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
				unix.CLONE_THREAD | unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID)
			for _, flags := range []uint64{threadFlags, uint64(unix.SIGCHLD), unix.CLONE_VFORK | unix.CLONE_VM | uint64(unix.SIGCHLD),
				1 << 32 /* high word ignored: no namespace flag lives there */} {
				if v := verdict(clone, flags); v != seccompRetAllow {
					t.Errorf("clone(%#x): verdict %#x, want allow", flags, v)
				}
			}
			// Ordinary syscalls a runtime needs: numbers not in the table.
			denied := map[uint32]bool{}
			for _, nr := range arch.nr {
				denied[nr] = true
			}
			for nr := uint32(0); nr < 460; nr++ {
				if !denied[nr] {
					if v := verdict(nr, 0); v != seccompRetAllow {
						t.Errorf("syscall %d: verdict %#x, want allow", nr, v)
					}
				}
			}
			// Foreign architectures are killed, whatever the syscall.
			for _, foreign := range []uint32{unix.AUDIT_ARCH_I386, unix.AUDIT_ARCH_ARM, unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_AARCH64} {
				if foreign == arch.audit {
					continue
				}
				if v := runBPF(t, prog, foreign, 39, 0); v != seccompRetKill {
					t.Errorf("arch %#x: verdict %#x, want kill", foreign, v)
				}
			}
			if arch.x32Bit != 0 {
				if v := verdict(arch.x32Bit|39, 0); v != seccompRetKill {
					t.Errorf("x32 getpid: verdict %#x, want kill", v)
				}
			}
		})
	}
}

// TestSeccompTableIsComplete: every denied syscall has a number on both
// architectures, except the x86-only ones on arm64.
func TestSeccompTableIsComplete(t *testing.T) {
	for _, arch := range []seccompArch{seccompAMD64(), seccompARM64()} {
		for _, name := range append(deniedSyscalls, "clone", "clone3") {
			if _, ok := arch.nr[name]; !ok && !(arch.name == "arm64" && (name == "iopl" || name == "ioperm" || name == "uselib")) {
				t.Errorf("%s: no number for %s", arch.name, name)
			}
		}
		if len(arch.nr) != len(deniedSyscalls)+2-map[string]int{"amd64": 0, "arm64": 3}[arch.name] {
			t.Errorf("%s: %d numbers for %d syscalls: a stale entry?", arch.name, len(arch.nr), len(deniedSyscalls)+2)
		}
	}
	// The table agrees with x/sys/unix on the architecture we run on.
	arch, ok := nativeSeccompArch()
	if !ok {
		t.Skip("no seccomp table for this architecture")
	}
	for name, want := range nativeSyscallNumbers() {
		if got, ok := arch.nr[name]; ok && got != want {
			t.Errorf("%s: table says %d, x/sys/unix %d", name, got, want)
		}
	}
	if n := len(nativeSyscallNumbers()); n != len(arch.nr) {
		t.Errorf("checked %d of %d numbers against x/sys/unix", n, len(arch.nr))
	}
}

func TestCPUQuota(t *testing.T) {
	for _, tt := range []struct {
		memMB, cpus int
		want        int64
	}{
		{1769, 2, 1_000_000},  // one CPU
		{3538, 2, 2_000_000},  // two
		{10240, 2, 2_000_000}, // capped at the host's CPUs
		{10240, 8, 5_788_581},
		{128, 2, 72_357},   // Lambda's rule
		{64, 2, 62_500},    // the 1/16 floor
		{16, 1, 62_500},    // the smallest sandbox
		{1024, 0, 578_858}, // a bogus CPU count counts as one
	} {
		if got := cpuQuotaUs(tt.memMB, tt.cpus); got != tt.want {
			t.Errorf("cpuQuotaUs(%d MB, %d CPUs) = %d, want %d", tt.memMB, tt.cpus, got, tt.want)
		}
	}
}
