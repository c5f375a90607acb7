package worker

import (
	"context"
	"net"
	"os"

	"github.com/owl-project/owl/internal/sandbox"
)

// The sandbox seam: what the worker needs of the node's sandboxes, and
// nothing more. *sandbox.Manager (through SandboxManager) provides it on a
// host; the package's unit tests provide a fake that runs a Runtime API
// client in-process, so that the worker's logic is tested without root.

// Sandboxes creates sandboxes: *sandbox.Manager, through SandboxManager.
type Sandboxes interface {
	// Create starts a sandbox running spec's entrypoint, as
	// sandbox.Manager.Create does: an entrypoint that cannot be exec'd
	// gives an error wrapping sandbox.ErrInvalidEntrypoint.
	Create(ctx context.Context, spec sandbox.Spec) (Sandbox, error)
}

// Sandbox is one running sandbox: what the worker uses of *sandbox.Sandbox.
// The methods mean what sandbox.Sandbox documents.
type Sandbox interface {
	// ID is the Spec's ID.
	ID() string
	// Listener is the Runtime API listener, inside the sandbox's network.
	Listener() net.Listener
	// Output is the read end of the pipe the runtime's stdout and stderr
	// write to; it must be pollable (log capture reads it non-blocking).
	Output() *os.File
	// Done is closed when the runtime (pid 1) exited.
	Done() <-chan struct{}
	// ExitError is how the runtime exited, once Done: nil for status 0.
	ExitError() error
	// OOMKilled reports whether a process was killed at the memory limit.
	OOMKilled() bool
	// MaxMemoryBytes is the peak memory use, until Destroy.
	MaxMemoryBytes() (uint64, error)
	// LimitCPU applies the CPU quota, which the runtime's init runs
	// without: the worker calls it once the runtime is ready.
	LimitCPU() error
	// Freeze stops every process (no CPU) until Thaw.
	Freeze() error
	Thaw() error
	// Specialize turns a pre-warmed sandbox (Spec.Slots) into one of a
	// function (prewarm.go).
	Specialize(sandbox.Specialization) error
	// Destroy kills the sandbox and frees what it holds; idempotent.
	Destroy() error
}

// SandboxManager is m behind the worker's seam (nil for a nil m: a worker
// without sandboxes, whose pre-warming is off).
func SandboxManager(m *sandbox.Manager) Sandboxes {
	if m == nil {
		return nil
	}
	return managerSandboxes{m}
}

// managerSandboxes adapts *sandbox.Manager, whose Create returns the
// concrete type.
type managerSandboxes struct{ m *sandbox.Manager }

func (a managerSandboxes) Create(ctx context.Context, spec sandbox.Spec) (Sandbox, error) {
	sb, err := a.m.Create(ctx, spec)
	if err != nil {
		return nil, err // never a typed nil in the interface
	}
	return sb, nil
}

// *sandbox.Sandbox is what the seam describes.
var _ Sandbox = (*sandbox.Sandbox)(nil)
