//go:build unix

package bench

import (
	"fmt"
	"syscall"
)

// ensureOpenFiles raises this process's open-file limit to at least n when
// it is lower: the soft limit up to the hard one, and the hard one too when
// the process may (root). Go already lifts the soft limit to the hard one
// at start-up, so this matters only where the hard limit is low.
func ensureOpenFiles(n uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return nil // unknown: let the dials say so
	}
	if rl.Cur >= n {
		return nil
	}
	want := syscall.Rlimit{Cur: n, Max: max(rl.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
		return nil
	}
	return fmt.Errorf("about %d open files are needed (one per connection), and the limit is %d (hard %d): raise it (ulimit -n %d, or run as root) or use fewer connections (-c)",
		n, rl.Cur, rl.Max, n)
}
