package main

const int80Supported = true

// int80 makes an i386 syscall (number nr, no arguments) through int 0x80.
func int80(nr uintptr) uintptr
