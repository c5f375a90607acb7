package sandbox

import (
	"fmt"
	"os"
)

// FindNft locates the nft command the egress network needs, exactly where
// NewManager looks: on PATH, else /usr/sbin/nft or /sbin/nft. The error
// wraps ErrNoEgress and says how to install it or disable egress.
func FindNft() (string, error) { return findNft() }

// Check reports whether the manager can still create sandboxes: it is not
// closed, and the directories it creates them in (the instance's cgroups
// and the root mount point) still exist. It is cheap (a few stats) and
// meant for health probes; it does not create a sandbox.
func (m *Manager) Check() error {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return ErrClosed
	}
	for _, d := range append([]string{m.rootfs}, m.cg.dirs...) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("sandbox manager: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("sandbox manager: %s is not a directory", d)
		}
	}
	return nil
}
