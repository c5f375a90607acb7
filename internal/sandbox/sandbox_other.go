//go:build !linux

package sandbox

import (
	"context"
	"net"
	"os"
)

// Sandboxes need Linux namespaces and cgroups; elsewhere the package builds
// (so that the rest of Owl does) but NewManager fails.

// MaybeRunInit returns immediately: there is no in-sandbox init here.
func MaybeRunInit() {}

// Manager is unavailable on this system; see NewManager.
type Manager struct{}

// NewManager returns ErrUnsupported.
func NewManager(cfg Config) (*Manager, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return nil, ErrUnsupported
}

func (m *Manager) CleanupStale(ctx context.Context) (int, error) { return 0, ErrUnsupported }

func (m *Manager) Create(ctx context.Context, spec Spec) (*Sandbox, error) {
	return nil, ErrUnsupported
}

func (m *Manager) Close() error { return nil }

// TmpPromisedBytes is always 0: there are no sandboxes.
func (m *Manager) TmpPromisedBytes() int64 { return 0 }

// Sandbox is unavailable on this system.
type Sandbox struct{}

func (s *Sandbox) ID() string                         { return "" }
func (s *Sandbox) Pid() int                           { return 0 }
func (s *Sandbox) Listener() net.Listener             { return nil }
func (s *Sandbox) Output() *os.File                   { return nil }
func (s *Sandbox) Done() <-chan struct{}              { return nil }
func (s *Sandbox) ExitError() error                   { return ErrUnsupported }
func (s *Sandbox) OOMKilled() bool                    { return false }
func (s *Sandbox) MaxMemoryBytes() (uint64, error)    { return 0, ErrUnsupported }
func (s *Sandbox) Freeze() error                      { return ErrUnsupported }
func (s *Sandbox) Thaw() error                        { return ErrUnsupported }
func (s *Sandbox) Destroy() error                     { return nil }
func (s *Sandbox) Specialize(sp Specialization) error { return ErrUnsupported }

// FindNft returns ErrUnsupported: there is no egress network here.
func FindNft() (string, error) { return "", ErrUnsupported }

// Check returns ErrUnsupported: no sandbox can be created here.
func (m *Manager) Check() error { return ErrUnsupported }

// InNetnsAt returns ErrUnsupported: there are no network namespaces here.
func InNetnsAt(path string, fn func() error) error { return ErrUnsupported }
