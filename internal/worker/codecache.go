package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/owl-project/owl/internal/codezip"
	"github.com/owl-project/owl/internal/lambdaerr"
)

// The code cache: every code zip (function or layer) is unpacked once per
// node into <data>/code/<sha256>, and every list of layers merged once into
// <data>/opt/<hash>. Environments bind them read-only. A directory is
// referenced while an environment (or a start) uses it; one unreferenced
// for the idle timeout is deleted, so code of deleted or updated functions
// does not pile up. Directories left by an earlier run are found and
// collected the same way.

// dirRef counts the users of one cache directory.
type dirRef struct {
	n        int
	lastUsed time.Time
	// dropped: its code was deleted from the store (DropCode); the
	// directory goes as soon as its last user lets go, not after the idle
	// timeout.
	dropped bool
}

// refLocked takes a reference on dir; w.codeMu held.
func (w *Worker) refLocked(dir string) {
	r := w.dirRefs[dir]
	if r == nil {
		r = &dirRef{}
		w.dirRefs[dir] = r
	}
	r.n++
	r.lastUsed = time.Now()
}

// unref gives back references taken by codeDir or layersDir.
func (w *Worker) unref(dirs ...string) {
	w.codeMu.Lock()
	defer w.codeMu.Unlock()
	for _, dir := range dirs {
		if r := w.dirRefs[dir]; r != nil && r.n > 0 {
			r.n--
			r.lastUsed = time.Now()
			if r.n == 0 && r.dropped {
				w.removeDirLocked(dir)
			}
		}
	}
}

// DropCode is told that code shaHex was deleted from the store: its
// unpacked copy is removed now, or when the last environment using it is
// gone. (Should the same code be uploaded again, it is unpacked again.)
func (w *Worker) DropCode(shaHex string) {
	dir := filepath.Join(w.cfg.DataDir, "code", shaHex)
	w.codeMu.Lock()
	defer w.codeMu.Unlock()
	r := w.dirRefs[dir]
	if r != nil && r.n > 0 {
		r.dropped = true
		return
	}
	w.removeDirLocked(dir)
}

// removeDirLocked deletes a cache directory; w.codeMu held.
func (w *Worker) removeDirLocked(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		w.cfg.Logger.Warn("code cache: removing a directory; the idle collection retries", "dir", dir, "err", err)
		return
	}
	delete(w.dirRefs, dir)
}

// codeDir returns the unpacked code of sha, unpacking it on first use, and
// holds a reference on it for the caller (release with unref).
func (w *Worker) codeDir(ctx context.Context, shaHex string) (string, error) {
	dir := filepath.Join(w.cfg.DataDir, "code", shaHex)
	w.codeMu.Lock()
	defer w.codeMu.Unlock()
	if _, err := os.Stat(dir); err == nil {
		if r := w.dirRefs[dir]; r != nil {
			r.dropped = false // in use again: its code was stored again
		}
		w.refLocked(dir)
		return dir, nil
	}
	zip, err := w.code.Code(ctx, shaHex)
	if err != nil {
		return "", err
	}
	if w.cfg.Space != nil {
		info, err := codezip.Inspect(zip, codezip.DefaultLimits())
		if err != nil {
			return "", fmt.Errorf("inspecting code %s: %w", shaHex, err)
		}
		// Files take whole blocks: allow for that on many small files.
		need := info.UnzippedSize + int64(len(info.Entries))*4096
		if err := w.cfg.Space.Check(need); err != nil {
			return "", noRoomToUnpack(shaHex, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("creating code cache: %w", err)
	}
	// Unpacked beside, then renamed: a failure half-way (a full disk)
	// never leaves a partial tree that later starts would take as whole.
	tmp := dir + ".partial"
	_ = os.RemoveAll(tmp)
	// No fork while the files are open for writing: a child forked now
	// (another sandbox starting) inherits the write descriptors until it
	// execs, and exec'ing a bootstrap that any process holds open for
	// writing fails with ETXTBSY (golang.org/issue/22315). Forks take
	// syscall.ForkLock for writing.
	syscall.ForkLock.RLock()
	_, err = codezip.Extract(zip, tmp, codezip.DefaultLimits())
	syscall.ForkLock.RUnlock()
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		if errors.Is(err, syscall.ENOSPC) {
			return "", noRoomToUnpack(shaHex, err)
		}
		return "", fmt.Errorf("unpacking code %s: %w", shaHex, err)
	}
	w.refLocked(dir)
	return dir, nil
}

// noRoomToUnpack is the invocation's answer when the disk cannot take the
// function's unpacked code: 503, retry later (functions whose code is
// unpacked already keep running).
func noRoomToUnpack(shaHex string, cause error) error {
	return &lambdaerr.Error{Code: lambdaerr.ServiceUnavailable, RetryAfter: 30, Err: cause,
		Message: fmt.Sprintf("Cannot start the function: no disk space to unpack its code (%s). Free disk space or delete unused functions, then retry.", cause)}
}

// collectDirs deletes cache directories nobody has used for the idle
// timeout. Directories it has not seen before (left by an earlier run)
// start their count now.
func (w *Worker) collectDirs(now time.Time) {
	w.codeMu.Lock()
	defer w.codeMu.Unlock()
	for _, sub := range []string{"code", "opt"} {
		entries, _ := os.ReadDir(filepath.Join(w.cfg.DataDir, sub))
		for _, e := range entries {
			dir := filepath.Join(w.cfg.DataDir, sub, e.Name())
			if w.dirRefs[dir] == nil {
				w.dirRefs[dir] = &dirRef{lastUsed: now}
			}
		}
	}
	for dir, r := range w.dirRefs {
		if r.n > 0 || now.Sub(r.lastUsed) <= w.cfg.IdleTimeout {
			continue
		}
		w.removeDirLocked(dir)
	}
}
