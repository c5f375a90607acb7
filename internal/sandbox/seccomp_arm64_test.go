package sandbox

// archOnlySyscallNumbers is empty on arm64: the filter's x86-only
// syscalls (iopl, ioperm, uselib) do not exist here.
func archOnlySyscallNumbers() map[string]uint32 { return nil }
