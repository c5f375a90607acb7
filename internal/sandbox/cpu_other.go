//go:build !linux

package sandbox

import "time"

// CgroupsCPU returns ErrUnsupported: there are no cgroups here.
func CgroupsCPU() (time.Duration, error) { return 0, ErrUnsupported }

// CgroupsCPUDir returns ErrUnsupported: there are no cgroups here.
func CgroupsCPUDir() (string, error) { return "", ErrUnsupported }

// LimitCPU returns ErrUnsupported: there are no cgroups here.
func (s *Sandbox) LimitCPU() error { return ErrUnsupported }
