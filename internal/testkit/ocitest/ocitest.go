// Package ocitest gives a test a real OCI registry of its own
// (go-containerregistry's pkg/registry on an httptest server, closed when
// the test ends) and builds the images it serves from files the test
// names, with go-containerregistry's mutate and tarball packages. It is
// part of the test kit (internal/testkit); only tests import it.
package ocitest

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Registry serves a fresh, empty registry over plain HTTP until t ends;
// wrap, if not nil, wraps its handler (to refuse, or count). It returns
// the registry's HOST:PORT.
func Registry(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// File is one tar entry of a layer.
type File struct {
	Name string
	// Body is a regular file's content.
	Body []byte
	// Mode is the permission bits (0o644 when 0; 0o755 for directories).
	Mode int64
	// Type is the tar type flag (tar.TypeReg when 0).
	Type byte
	// Link is a symlink's or hard link's target.
	Link string
}

// Layer is a gzipped tar layer of files, in order.
func Layer(t testing.TB, files ...File) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Typeflag: f.Type, Mode: f.Mode, Linkname: f.Link, Size: int64(len(f.Body)), Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", f.Name, err)
		}
		if h.Size > 0 {
			if _, err := tw.Write(f.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// RawLayer is a layer whose content is b as it is (e.g. not a tar).
func RawLayer(b []byte) v1.Layer {
	return static.NewLayer(b, types.DockerLayer)
}

// Config is what an image's config says besides its layers.
type Config struct {
	// Arch is the OCI architecture (amd64, arm64).
	Arch string
	// Entrypoint, Cmd, Env and WorkingDir are the image's ENTRYPOINT,
	// CMD, ENV and WORKDIR.
	Entrypoint, Cmd, Env []string
	WorkingDir           string
}

// Image is an image of layers (bottom first) with cfg.
func Image(t testing.TB, cfg Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", cfg.Arch
	cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.Env, cf.Config.WorkingDir = cfg.Entrypoint, cfg.Cmd, cfg.Env, cfg.WorkingDir
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// Push stores img in the registry at host as repo:tag and returns the
// reference (host/repo:tag).
func Push(t testing.TB, host, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return ref.String()
}

// BlobCounter counts the blob downloads a registry serves, per digest
// (to see that a layer is fetched once).
type BlobCounter struct {
	mu   sync.Mutex
	gets map[string]int
}

// Wrap is a wrap for Registry that counts.
func (c *BlobCounter) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			c.mu.Lock()
			if c.gets == nil {
				c.gets = map[string]int{}
			}
			c.gets[r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]]++
			c.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// Gets is how many times the layer's blob was downloaded.
func (c *BlobCounter) Gets(t testing.TB, l v1.Layer) int {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets[d.String()]
}

// PushIndex stores a multi-platform index of imgs (one per OCI
// architecture, linux) at host/repoTag and returns the reference.
func PushIndex(t testing.TB, host, repoTag string, imgs map[string]v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var adds []mutate.IndexAddendum
	for arch, img := range imgs {
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return ref.String()
}
