package main

const int80Supported = true

// int80 makes an i386 syscall (number nr, first argument a1) through
// int 0x80.
func int80(nr, a1 uintptr) uintptr
