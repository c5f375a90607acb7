package hostcheck

import (
	"github.com/owl-project/owl/internal/diskspace"

	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// LowDiskBytes is the free space under which the disk check warns: enough
// to start, but code (up to OWL_CODE_STORAGE_LIMIT), its unpacked copies
// and logs all grow in the data dir.
const LowDiskBytes = 4 << 30

// existingAncestor returns dir itself if it exists, else its nearest
// existing ancestor, and whether dir exists.
func existingAncestor(dir string) (string, os.FileInfo, bool, error) {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			return p, fi, p == dir, nil
		}
		// ENOTDIR: a component is a file; the ancestor check says which.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return p, nil, false, err
		}
		if parent := filepath.Dir(p); parent == p {
			return p, nil, false, err
		}
	}
}

// DataDir checks that the data dir is a writable directory, or can be
// created: serve creates it (mode 0700) on start.
func (h Host) DataDir(o Options) Result {
	const name = "data dir"
	const other = "choose another data dir with --data (OWL_DATA)"
	if o.DataDir == "" {
		return fail(name, "no data dir configured", "set --data (OWL_DATA)")
	}
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return fail(name, fmt.Sprintf("%s: %v", o.DataDir, err), other)
	}
	at, fi, exists, err := existingAncestor(dir)
	switch {
	case err != nil:
		return fail(name, fmt.Sprintf("%s: %v", dir, err), other)
	case !fi.IsDir() && exists:
		return fail(name, dir+" exists and is not a directory", other)
	case !fi.IsDir():
		return fail(name, fmt.Sprintf("%s cannot be created: %s is not a directory", dir, at), other)
	case !exists:
		if err := unix.Access(at, unix.W_OK|unix.X_OK); err != nil {
			return fail(name, fmt.Sprintf("%s cannot be created in %s: %v", dir, at, err),
				"make "+at+" writable for the user running owl serve, or "+other)
		}
		return ok(name, "%s does not exist yet; owl serve will create it in %s", dir, at)
	}
	f, err := os.CreateTemp(dir, ".owl-doctor-*")
	if err != nil {
		return fail(name, fmt.Sprintf("%s is not writable: %v", dir, err),
			"make it writable for the user running owl serve, or "+other)
	}
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return warn(name, fmt.Sprintf("%s is writable, but removing the test file failed: %v", dir, err), "remove "+f.Name())
	}
	return ok(name, "%s is writable", dir)
}

// startNeeds is the free space a start needs when the store already holds
// storeBytes: the same rule owl serve applies before it starts its store
// (diskspace.PlanStart).
func startNeeds(reserve, storeBytes int64) int64 {
	return max(0, reserve+diskspace.MinStartBytes-storeBytes)
}

// Disk checks the free space of the data dir's filesystem: a fail when
// owl serve would refuse to start its store (less than the disk reserve
// plus the smallest log and code space), a warning below LowDiskBytes.
func (h Host) Disk(o Options) Result {
	const name = "disk space"
	const fix = "free space on that filesystem, or put the data dir (--data, OWL_DATA) on a larger one"
	if h.FreeBytes == nil || o.DataDir == "" {
		return ok(name, "not checked")
	}
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return fail(name, fmt.Sprintf("%s: %v", o.DataDir, err), fix)
	}
	at, _, _, err := existingAncestor(dir)
	if err != nil {
		return fail(name, fmt.Sprintf("%s: %v", dir, err), fix)
	}
	free, err := h.FreeBytes(at)
	if err != nil {
		return fail(name, err.Error(), fix)
	}
	need := uint64(startNeeds(o.DiskReserveBytes, storeSize(filepath.Join(dir, "nats"))))
	switch {
	case free < need:
		return fail(name, fmt.Sprintf("%s free on %s, too little to start: Owl needs %s there (%s kept free for deletions, --disk-reserve/OWL_DISK_RESERVE, plus %s for logs and code)",
			bytesText(free), at, bytesText(need), bytesText(uint64(o.DiskReserveBytes)), bytesText(diskspace.MinStartBytes)), fix)
	case free < LowDiskBytes:
		return warn(name, fmt.Sprintf("%s free on %s: enough to start, but code, unpacked code and logs grow there",
			bytesText(free), at), fix)
	}
	return ok(name, "%s free on %s", bytesText(free), at)
}

// storeSize is the size of the files under the JetStream store dir (0
// when it does not exist): what a restart's JetStream counts back.
func storeSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
