//go:build !linux

package hostcheck

import (
	"context"
	"errors"
)

var errNotLinux = errors.New("owl serve runs on Linux only")

func probeNamespaces(context.Context) error { return errNotLinux }
