package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/owl-project/owl/internal/codezip"
	"github.com/owl-project/owl/internal/images"
	"github.com/owl-project/owl/internal/lambdaerr"
)

// The code cache: every code zip (function or layer) is unpacked once per
// node into <data>/code/<sha256>, and every list of layers merged once into
// <data>/opt/<hash>. Environments bind them read-only. A directory is
// referenced while an environment (or a start) uses it; one unreferenced
// for the idle timeout is deleted, so code of deleted or updated functions
// does not pile up. Directories left by an earlier run are found and
// collected the same way.

// codeCache is the node's unpacked code and layers.
type codeCache struct {
	// Fixed at creation (no lock).
	dataDir     string
	idleTimeout time.Duration
	code        CodeSource
	space       SpaceChecker // nil: no disk reserve to check
	logger      *slog.Logger

	mu      sync.Mutex         // serialises the cache: unpacking, refs, collection; guards dirRefs
	dirRefs map[string]*dirRef // by directory
}

func newCodeCache(cfg Config, code CodeSource) *codeCache {
	return &codeCache{dataDir: cfg.DataDir, idleTimeout: cfg.IdleTimeout, code: code, space: cfg.Space, logger: cfg.Logger,
		dirRefs: map[string]*dirRef{}}
}

// dirRef counts the users of one cache directory.
type dirRef struct {
	n        int
	lastUsed time.Time
	// dropped: its code was deleted from the store (DropCode); the
	// directory goes as soon as its last user lets go, not after the idle
	// timeout.
	dropped bool
}

// refLocked takes a reference on dir; c.mu held.
func (c *codeCache) refLocked(dir string) {
	r := c.dirRefs[dir]
	if r == nil {
		r = &dirRef{}
		c.dirRefs[dir] = r
	}
	r.n++
	r.lastUsed = time.Now()
}

// unref gives back references taken by codeDir or layersDir.
func (c *codeCache) unref(dirs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, dir := range dirs {
		if r := c.dirRefs[dir]; r != nil && r.n > 0 {
			r.n--
			r.lastUsed = time.Now()
			if r.n == 0 && r.dropped {
				c.removeDirLocked(dir)
			}
		}
	}
}

// DropCode is told that code shaHex was deleted from the store: its
// unpacked copy is removed now, or when the last environment using it is
// gone. (Should the same code be uploaded again, it is unpacked again.)
func (w *Worker) DropCode(shaHex string) { w.cache.drop(shaHex) }

func (c *codeCache) drop(shaHex string) {
	dir := filepath.Join(c.dataDir, "code", shaHex)
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.dirRefs[dir]
	if r != nil && r.n > 0 {
		r.dropped = true
		return
	}
	c.removeDirLocked(dir)
}

// removeDirLocked deletes a cache directory; c.mu held.
func (c *codeCache) removeDirLocked(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		c.logger.Warn("code cache: removing a directory; the idle collection retries", "dir", dir, "err", err)
		return
	}
	delete(c.dirRefs, dir)
}

// codeDir returns the unpacked code of sha, unpacking it on first use, and
// holds a reference on it for the caller (release with unref).
func (c *codeCache) codeDir(ctx context.Context, shaHex string) (string, error) {
	dir := filepath.Join(c.dataDir, "code", shaHex)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := os.Stat(dir); err == nil {
		if r := c.dirRefs[dir]; r != nil {
			r.dropped = false // in use again: its code was stored again
		}
		c.refLocked(dir)
		return dir, nil
	}
	zip, err := c.code.Code(ctx, shaHex)
	if err != nil {
		return "", err
	}
	if c.space != nil {
		info, err := codezip.Inspect(zip, codezip.DefaultLimits())
		if err != nil {
			return "", fmt.Errorf("inspecting code %s: %w", shaHex, err)
		}
		// Files take whole blocks: allow for that on many small files.
		need := info.UnzippedSize + int64(len(info.Entries))*4096
		if err := c.space.Check(need); err != nil {
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
	c.refLocked(dir)
	return dir, nil
}

// noRoomToUnpack is the invocation's answer when the disk cannot take the
// function's unpacked code: 503, retry later (functions whose code is
// unpacked already keep running).
func noRoomToUnpack(shaHex string, cause error) error {
	return noRoom("to unpack its code", cause)
}

// noRoomForTmp is noRoomToUnpack's answer for a /tmp of mb MB.
func noRoomForTmp(mb int, cause error) error {
	return noRoom(fmt.Sprintf("for its %d MB /tmp (EphemeralStorage)", mb), cause)
}

// noRoom is the 503 of a cold start the data dir's disk cannot hold.
func noRoom(what string, cause error) error {
	return &lambdaerr.Error{Code: lambdaerr.ServiceUnavailable, RetryAfter: 30, Err: cause,
		Message: fmt.Sprintf("Cannot start the function: no disk space %s (%s). Free disk space or delete unused functions, then retry.", what, cause)}
}

// collect deletes cache directories nobody has used for the idle
// timeout. Directories it has not seen before (left by an earlier run)
// start their count now.
func (c *codeCache) collect(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sub := range []string{"code", "opt", imageRootfsDir} {
		entries, _ := os.ReadDir(filepath.Join(c.dataDir, sub))
		for _, e := range entries {
			if strings.Contains(e.Name(), images.PartialMark) {
				continue // being unpacked by the images package
			}
			dir := filepath.Join(c.dataDir, sub, e.Name())
			if c.dirRefs[dir] == nil {
				c.dirRefs[dir] = &dirRef{lastUsed: now}
			}
		}
	}
	for dir, r := range c.dirRefs {
		if r.n > 0 || now.Sub(r.lastUsed) <= c.idleTimeout {
			continue
		}
		c.removeDirLocked(dir)
	}
}
