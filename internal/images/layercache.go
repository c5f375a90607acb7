package images

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/cache"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layerCache keeps layers compressed, by digest, in one directory
// (cache.Cache, for cache.Image). go-containerregistry's own filesystem
// cache writes a layer to its final name while it is read, so a read that
// stops early (an unpacking refused half-way) leaves a truncated layer
// that later pulls take as whole; this one downloads a layer whole, checks
// its digest and only then renames it into place.
type layerCache struct {
	dir   string
	limit int64        // the most bytes one layer may have
	space SpaceChecker // nil: the disk is not checked
}

var _ cache.Cache = layerCache{}

func (c layerCache) path(h v1.Hash) string { return filepath.Join(c.dir, h.Algorithm+"-"+h.Hex) }

// Put downloads l into the cache (unless there) and returns it from there.
func (c layerCache) Put(l v1.Layer) (v1.Layer, error) {
	h, err := l.Digest()
	if err != nil {
		return nil, err
	}
	if cl, err := c.Get(h); err == nil {
		return cl, nil
	}
	if c.space != nil {
		size, err := l.Size()
		if err != nil {
			return nil, fmt.Errorf("fetching layer %s: %w", h, err)
		}
		if err := c.space.Check(size); err != nil {
			return nil, err
		}
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("fetching layer %s: %w", h, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(c.dir, "partial-*")
	if err != nil {
		return nil, fmt.Errorf("caching layer %s: %w", h, err)
	}
	defer os.Remove(f.Name()) // after the rename, nothing
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), io.LimitReader(rc, c.limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("fetching layer %s: %w", h, err)
	case n > c.limit:
		return nil, errTooLarge
	case h.Algorithm != "sha256" || hex.EncodeToString(sum.Sum(nil)) != h.Hex:
		return nil, fmt.Errorf("%w: layer %s does not match its digest", errNotTar, h)
	}
	if err := os.Rename(f.Name(), c.path(h)); err != nil {
		return nil, fmt.Errorf("caching layer %s: %w", h, err)
	}
	return c.Get(h)
}

// Get returns the cached layer of digest h, or cache.ErrNotFound.
func (c layerCache) Get(h v1.Hash) (v1.Layer, error) {
	p := c.path(h)
	// Touched: its time is when it was last used (collect).
	now := time.Now()
	if err := os.Chtimes(p, now, now); errors.Is(err, fs.ErrNotExist) {
		return nil, cache.ErrNotFound
	} else if err != nil {
		return nil, err
	}
	return partial.CompressedToLayer(fileLayer{path: p, digest: h})
}

// collect deletes the layers not used since cutoff, and downloads a crash
// left half-way; it returns how many it deleted.
func (c layerCache) collect(cutoff time.Time) int {
	ents, _ := os.ReadDir(c.dir)
	n := 0
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		if os.Remove(filepath.Join(c.dir, e.Name())) == nil {
			n++
		}
	}
	return n
}

// Delete removes the layer of digest h.
func (c layerCache) Delete(h v1.Hash) error {
	err := os.Remove(c.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// fileLayer is a cached compressed layer (partial.CompressedLayer).
type fileLayer struct {
	path   string
	digest v1.Hash
}

func (l fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l fileLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }
func (l fileLayer) Size() (int64, error) {
	fi, err := os.Stat(l.path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
