package hostcheck

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sandboxNamespaces are the namespaces every sandbox gets
// (sandbox.cloneFlags).
const sandboxNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNET

// probeNamespaces starts `true` in new mount, pid, ipc, uts and network
// namespaces, as sandboxes are cloned, and waits for it: the kernel (or a
// container's seccomp profile, or missing capabilities) refusing the clone
// is what it finds. About a millisecond; the namespaces die with the child.
func probeNamespaces(ctx context.Context) error {
	prog, err := exec.LookPath("true")
	if err != nil {
		return fmt.Errorf("%w: %w", errNoProbe, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: sandboxNamespaces}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("starting a process in new namespaces: %w", err)
	}
	return nil
}
