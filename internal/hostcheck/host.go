package hostcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/owl-project/owl/internal/diskspace"
	"github.com/owl-project/owl/internal/runtimes"
	"github.com/owl-project/owl/internal/sandbox"
)

// Host is what the checks read and probe. RealHost is this machine; tests
// give a RootDir holding a fake proc/ and sys/ tree and fake probes.
type Host struct {
	// RootDir is where /proc and /sys are read: "/" (or "") on the real
	// host. The data dir is not under it: it is the path the user gave.
	RootDir string
	// Euid is the effective user id `owl serve` would run as.
	Euid int
	// ProbeNamespaces starts a child in new mount, pid, ipc, uts and
	// network namespaces, as every sandbox is; nil skips the probe.
	ProbeNamespaces func(ctx context.Context) error
	// FindNft locates the nft command (sandbox.FindNft on the real host).
	FindNft func() (string, error)
	// ProbeNft asks nft at path to list the kernel's tables; nil skips it.
	ProbeNft func(ctx context.Context, path string) error
	// Interpreters lists the interpreted runtimes (python3.X, nodejsNN.x)
	// this host can run.
	Runtimes func() []string
	// FreeBytes is the space available to unprivileged writers on the
	// filesystem holding path (statfs f_bavail).
	FreeBytes func(path string) (uint64, error)
	// Listen tries to listen on addr and closes the listener at once.
	Listen func(addr string) error
}

// RealHost is this machine, with real probes.
func RealHost() Host {
	return Host{
		RootDir:         "/",
		Euid:            os.Geteuid(),
		ProbeNamespaces: probeNamespaces,
		FindNft:         sandbox.FindNft,
		ProbeNft:        probeNft,
		Runtimes:        runtimes.Interpreted,
		FreeBytes: func(p string) (uint64, error) {
			n, err := diskspace.FreeBytes(p)
			return uint64(max(n, 0)), err
		},
		Listen: func(addr string) error {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			return ln.Close()
		},
	}
}

// probeNft runs `nft list tables`: it needs the kernel's nf_tables (and
// root), which installing the ruleset needs too.
func probeNft(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "list", "tables").CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			return fmt.Errorf("%s list tables: %w", path, err)
		}
		return fmt.Errorf("%s list tables: %w: %s", path, err, firstLine(msg))
	}
	return nil
}

// errNoProbe marks a probe that could not run at all (nothing to start).
var errNoProbe = errors.New("no probe program")

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
