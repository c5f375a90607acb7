package sandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp filter is the last thing the init installs before exec; the
// entrypoint and everything it starts inherit it and cannot remove it.
//
// It is modelled on Docker's default profile, but written as a deny list
// (everything not listed is allowed) rather than Docker's allow list: it
// is short enough to review and to write as classic BPF by hand, and it
// cannot break a runtime that needs an ordinary syscall nobody thought of.
// The price: a syscall added by a future kernel is allowed until it is
// listed here. The listed syscalls are those Docker refuses to containers
// without extra capabilities (the sandbox has none, so most would fail with
// EPERM anyway: the filter shrinks the kernel surface that is reachable at
// all, which is what protects against kernel bugs).
//
// Denied calls fail with EPERM, Docker's errno, except clone3, which fails
// with ENOSYS so that glibc falls back to clone, whose flags (unlike
// clone3's, behind a pointer) the filter can read. A syscall of another
// architecture (i386 through int 0x80 on x86_64, arm32 on aarch64) or of
// the x32 ABI kills the process: its numbers mean different syscalls, so
// no list could judge it.

// seccompArch is what the filter needs to know of one architecture.
type seccompArch struct {
	name  string
	audit uint32 // AUDIT_ARCH_* as seccomp_data.arch reports it
	// x32Bit, when non-zero, marks syscall numbers of the x32 ABI
	// (__X32_SYSCALL_BIT on x86_64): killed like a foreign architecture.
	x32Bit uint32
	// nr maps the syscalls the filter names to this architecture's numbers.
	nr map[string]uint32
}

// deniedSyscalls fail with EPERM, grouped by why.
var deniedSyscalls = []string{
	// Mounts and namespaces: the sandbox's own are final.
	"mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
	"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
	// Kernel modules, replacing or stopping the kernel.
	"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
	// Looking into other processes or the kernel. ptrace is denied even
	// within the sandbox: functions have no need to debug, Lambda refuses
	// it too, and it is a large, bug-prone kernel surface.
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
	"perf_event_open", "bpf", "lookup_dcookie", "syslog",
	// The kernel keyrings are not namespaced.
	"add_key", "keyctl", "request_key",
	// Favourites of kernel exploits.
	"userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
	// Host-wide state.
	"swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "settimeofday", "clock_settime",
	"open_by_handle_at", "vhangup",
	// x86 only: port I/O and a.out loading.
	"iopl", "ioperm", "uselib",
}

// cloneNamespaceFlags are the clone flags that create namespaces; a clone
// with any of them is denied. (CLONE_NEWTIME is 0x80, which clone reads as
// part of the exit signal; only clone3 and unshare can ask for it.)
const cloneNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// Syscall numbers from golang.org/x/sys/unix's zsysnum_linux_{amd64,arm64}.go,
// written out so that the filter for either architecture can be built and
// tested on any host. Functions rather than variables: the maps are built
// only by the init that needs them, not at every start of the owl binary.

func seccompAMD64() seccompArch {
	return seccompArch{
		name: "amd64", audit: unix.AUDIT_ARCH_X86_64, x32Bit: 0x40000000,
		nr: map[string]uint32{
			"mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308,
			"fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429, "open_tree": 428,
			"mount_setattr": 442, "init_module": 175, "finit_module": 313, "delete_module": 176,
			"kexec_load": 246, "kexec_file_load": 320, "reboot": 169, "ptrace": 101,
			"process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "perf_event_open": 298,
			"bpf": 321, "lookup_dcookie": 212, "syslog": 103, "add_key": 248, "keyctl": 250,
			"request_key": 249, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
			"io_uring_register": 427, "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179,
			"quotactl_fd": 443, "settimeofday": 164, "clock_settime": 227, "open_by_handle_at": 304,
			"vhangup": 153, "iopl": 172, "ioperm": 173, "uselib": 134,
			"clone": 56, "clone3": 435,
		},
	}
}

func seccompARM64() seccompArch {
	return seccompArch{
		name: "arm64", audit: unix.AUDIT_ARCH_AARCH64,
		nr: map[string]uint32{
			"mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268,
			"fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429, "open_tree": 428,
			"mount_setattr": 442, "init_module": 105, "finit_module": 273, "delete_module": 106,
			"kexec_load": 104, "kexec_file_load": 294, "reboot": 142, "ptrace": 117,
			"process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "perf_event_open": 241,
			"bpf": 280, "lookup_dcookie": 18, "syslog": 116, "add_key": 217, "keyctl": 219,
			"request_key": 218, "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426,
			"io_uring_register": 427, "swapon": 224, "swapoff": 225, "acct": 89, "quotactl": 60,
			"quotactl_fd": 443, "settimeofday": 170, "clock_settime": 112, "open_by_handle_at": 265,
			"vhangup": 58,
			// iopl, ioperm and uselib do not exist on arm64.
			"clone": 220, "clone3": 435,
		},
	}
}

// nativeSeccompArch is the architecture Owl runs on, or false when the
// filter does not know it.
func nativeSeccompArch() (seccompArch, bool) {
	switch runtime.GOARCH {
	case "amd64":
		return seccompAMD64(), true
	case "arm64":
		return seccompARM64(), true
	}
	return seccompArch{}, false
}

// Offsets in struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6].
// Both supported architectures are little-endian: the low half of an
// argument comes first.
const (
	seccompDataNr       = 0
	seccompDataArch     = 4
	seccompDataArg0Low  = 16
	seccompRetEPERM     = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	seccompRetENOSYS    = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	seccompRetAllow     = unix.SECCOMP_RET_ALLOW
	seccompRetKill      = unix.SECCOMP_RET_KILL_PROCESS
	bpfLoadAbsWord      = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJumpEq           = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJumpGreaterEqual = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfAnd              = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	bpfReturn           = unix.BPF_RET | unix.BPF_K
)

func bpfStmt(code uint16, k uint32) unix.SockFilter {
	return unix.SockFilter{Code: code, K: k}
}

func bpfJump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// buildSeccompFilter returns the classic BPF program for arch:
//
//	load arch;  not arch.audit          → kill
//	load nr;    nr ≥ x32Bit (x86_64)     → kill
//	each denied syscall                  → EPERM
//	clone3                               → ENOSYS
//	clone: load flags; flags & ns ≠ 0    → EPERM
//	                                     → allow
//
// Every check is a jump over at most the few instructions that follow it,
// so no offset comes near the 255 a jump can encode.
func buildSeccompFilter(arch seccompArch) ([]unix.SockFilter, error) {
	prog := []unix.SockFilter{
		bpfStmt(bpfLoadAbsWord, seccompDataArch),
		bpfJump(bpfJumpEq, arch.audit, 1, 0),
		bpfStmt(bpfReturn, seccompRetKill),
		bpfStmt(bpfLoadAbsWord, seccompDataNr),
	}
	if arch.x32Bit != 0 {
		prog = append(prog,
			bpfJump(bpfJumpGreaterEqual, arch.x32Bit, 0, 1),
			bpfStmt(bpfReturn, seccompRetKill))
	}
	deny := func(nr, ret uint32) {
		prog = append(prog, bpfJump(bpfJumpEq, nr, 0, 1), bpfStmt(bpfReturn, ret))
	}
	for _, name := range deniedSyscalls {
		nr, ok := arch.nr[name]
		if !ok {
			if name == "iopl" || name == "ioperm" || name == "uselib" {
				continue // x86 only
			}
			return nil, fmt.Errorf("seccomp filter: no %s syscall number for %s", name, arch.name)
		}
		deny(nr, seccompRetEPERM)
	}
	clone3, ok3 := arch.nr["clone3"]
	clone, ok := arch.nr["clone"]
	if !ok || !ok3 {
		return nil, fmt.Errorf("seccomp filter: no clone/clone3 syscall number for %s", arch.name)
	}
	deny(clone3, seccompRetENOSYS)
	prog = append(prog,
		bpfJump(bpfJumpEq, clone, 0, 5),
		bpfStmt(bpfLoadAbsWord, seccompDataArg0Low), // the namespace flags are all in the low word
		bpfStmt(bpfAnd, cloneNamespaceFlags),
		bpfJump(bpfJumpEq, 0, 0, 1),
		bpfStmt(bpfReturn, seccompRetAllow),
		bpfStmt(bpfReturn, seccompRetEPERM),
		bpfStmt(bpfReturn, seccompRetAllow),
	)
	return prog, nil
}

// installSeccomp loads the filter for the calling thread (the one that
// will exec; exec hands it to the new program). no_new_privs must be set
// first: without CAP_SYS_ADMIN the kernel demands it.
func installSeccomp(prog []unix.SockFilter) error {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("installing seccomp filter: %w", errno)
	}
	return nil
}
