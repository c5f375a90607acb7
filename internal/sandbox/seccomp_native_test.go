//go:build linux && (amd64 || arm64)

package sandbox

import (
	"maps"

	"golang.org/x/sys/unix"
)

// nativeSyscallNumbers are x/sys/unix's numbers for the filter's syscalls
// on the architecture the test runs on: the syscalls both architectures
// have, and archOnlySyscallNumbers (seccomp_amd64_test.go,
// seccomp_arm64_test.go).
func nativeSyscallNumbers() map[string]uint32 {
	nr := map[string]uint32{
		"mount": unix.SYS_MOUNT, "umount2": unix.SYS_UMOUNT2, "pivot_root": unix.SYS_PIVOT_ROOT, "chroot": unix.SYS_CHROOT,
		"unshare": unix.SYS_UNSHARE, "setns": unix.SYS_SETNS, "fsopen": unix.SYS_FSOPEN, "fsconfig": unix.SYS_FSCONFIG,
		"fsmount": unix.SYS_FSMOUNT, "fspick": unix.SYS_FSPICK, "move_mount": unix.SYS_MOVE_MOUNT, "open_tree": unix.SYS_OPEN_TREE,
		"mount_setattr": unix.SYS_MOUNT_SETATTR, "init_module": unix.SYS_INIT_MODULE, "finit_module": unix.SYS_FINIT_MODULE,
		"delete_module": unix.SYS_DELETE_MODULE, "kexec_load": unix.SYS_KEXEC_LOAD, "kexec_file_load": unix.SYS_KEXEC_FILE_LOAD,
		"reboot": unix.SYS_REBOOT, "ptrace": unix.SYS_PTRACE, "process_vm_readv": unix.SYS_PROCESS_VM_READV,
		"process_vm_writev": unix.SYS_PROCESS_VM_WRITEV, "kcmp": unix.SYS_KCMP, "perf_event_open": unix.SYS_PERF_EVENT_OPEN,
		"bpf": unix.SYS_BPF, "lookup_dcookie": unix.SYS_LOOKUP_DCOOKIE, "syslog": unix.SYS_SYSLOG, "add_key": unix.SYS_ADD_KEY,
		"keyctl": unix.SYS_KEYCTL, "request_key": unix.SYS_REQUEST_KEY, "userfaultfd": unix.SYS_USERFAULTFD,
		"io_uring_setup": unix.SYS_IO_URING_SETUP, "io_uring_enter": unix.SYS_IO_URING_ENTER,
		"io_uring_register": unix.SYS_IO_URING_REGISTER, "swapon": unix.SYS_SWAPON, "swapoff": unix.SYS_SWAPOFF,
		"acct": unix.SYS_ACCT, "quotactl": unix.SYS_QUOTACTL, "quotactl_fd": unix.SYS_QUOTACTL_FD,
		"settimeofday": unix.SYS_SETTIMEOFDAY, "clock_settime": unix.SYS_CLOCK_SETTIME,
		"open_by_handle_at": unix.SYS_OPEN_BY_HANDLE_AT, "vhangup": unix.SYS_VHANGUP,
		"clone": unix.SYS_CLONE, "clone3": unix.SYS_CLONE3,
	}
	maps.Copy(nr, archOnlySyscallNumbers())
	return nr
}
