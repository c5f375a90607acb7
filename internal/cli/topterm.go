//go:build linux || darwin

package cli

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// isTTY reports whether f is a terminal (a character device that takes
// terminal settings: /dev/null is not one).
func isTTY(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlGetTermios)
	return err == nil
}

// rawInput puts the terminal f into single-key input: no line editing, no
// echo, Ctrl-C read as a byte rather than a signal, and a read returning
// after 100 ms without a key. Output is left as it is. restore puts the
// terminal back as it was.
func rawInput(f *os.File) (restore func() error, err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return nil, fmt.Errorf("reading the terminal's settings: %w", err)
	}
	raw := *old
	raw.Lflag &^= unix.ICANON | unix.ECHO | unix.ISIG | unix.IEXTEN
	raw.Iflag &^= unix.IXON | unix.ICRNL
	raw.Cc[unix.VMIN] = 0
	raw.Cc[unix.VTIME] = 1 // tenths of a second
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &raw); err != nil {
		return nil, fmt.Errorf("setting the terminal to single-key input: %w", err)
	}
	return func() error {
		if err := unix.IoctlSetTermios(fd, ioctlSetTermios, old); err != nil {
			return fmt.Errorf("restoring the terminal's settings: %w", err)
		}
		return nil
	}, nil
}

// terminalRows returns the height of the terminal f in rows (0: unknown).
func terminalRows(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Row)
}
