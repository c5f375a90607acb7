package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockFile is the data dir's lock: held (flock, exclusive) by the one
// server using the data dir, and holding its pid for the error a second
// one prints. The kernel releases the lock when the holder exits, however
// it exits, so a crash leaves no stale lock.
const lockFile = "owl.lock"

// ErrDataDirInUse is returned by New when another process holds the data
// dir's lock.
var ErrDataDirInUse = errors.New("data dir in use")

// lockDataDir takes the data dir's exclusive lock, before anything in it
// (sandboxes, cgroups, the network, the store) is touched: a second server
// on the same data dir would otherwise clean up the first one's sandboxes
// as if they were left by a crash.
func lockDataDir(dataDir string) (*os.File, error) {
	path := filepath.Join(dataDir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking data dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
					holder = "another owl serve (pid " + strconv.Itoa(pid) + ")"
				}
			}
			return nil, fmt.Errorf("%w: %s is used by %s; stop it, or give this server another --data (OWL_DATA)",
				ErrDataDirInUse, dataDir, holder)
		}
		return nil, fmt.Errorf("locking data dir %s: %w", dataDir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return f, nil
}
