package sandbox

import "golang.org/x/sys/unix"

// archOnlySyscallNumbers are x/sys/unix's numbers for the filter's
// syscalls that exist on amd64 only.
func archOnlySyscallNumbers() map[string]uint32 {
	return map[string]uint32{"iopl": unix.SYS_IOPL, "ioperm": unix.SYS_IOPERM, "uselib": unix.SYS_USELIB}
}
