package images

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/owl-project/owl/internal/diskspace"
	"github.com/owl-project/owl/internal/testkit/ocitest"
)

func newStore(t *testing.T, host string, mutate ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{Dir: filepath.Join(t.TempDir(), "images"), Insecure: []string{host}}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hostArch() string { return Platform("").Architecture }

// TestPullFlattensLayers: the unpacked root is the layers' union with
// whiteouts and opaque directories applied, the mount points made real
// directories, the config read; a second image sharing the bottom layer
// downloads only its own.
func TestPullFlattensLayers(t *testing.T) {
	var blobs ocitest.BlobCounter
	host := ocitest.Registry(t, blobs.Wrap)
	base := ocitest.Layer(t,
		ocitest.File{Name: "etc/", Type: tar.TypeDir},
		ocitest.File{Name: "etc/keep", Body: []byte("keep")},
		ocitest.File{Name: "etc/gone", Body: []byte("gone")},
		ocitest.File{Name: "etc/passwd", Type: tar.TypeSymlink, Link: "/etc/shadow"},
		ocitest.File{Name: "etc/shadow", Body: []byte("root:secret")},
		ocitest.File{Name: "data/", Type: tar.TypeDir},
		ocitest.File{Name: "data/old", Body: []byte("old")},
		ocitest.File{Name: "var", Type: tar.TypeSymlink, Link: "/"},
		ocitest.File{Name: "tmp", Type: tar.TypeSymlink, Link: "/etc"},
		ocitest.File{Name: "bin/tool", Body: []byte("#!/bin/sh\n"), Mode: 0o4755},
	)
	upper := ocitest.Layer(t,
		ocitest.File{Name: "etc/.wh.gone"},
		ocitest.File{Name: "data/.wh..wh..opq"},
		ocitest.File{Name: "data/new", Body: []byte("new")},
		ocitest.File{Name: "bin/link", Type: tar.TypeLink, Link: "bin/tool"},
	)
	cfg := ocitest.Config{Arch: hostArch(), Entrypoint: []string{"/bin/tool"}, Cmd: []string{"h.fn"}, Env: []string{"A=1"}, WorkingDir: "/data"}
	uri := ocitest.Push(t, host, "app:v1", ocitest.Image(t, cfg, base, upper))
	s := newStore(t, host)
	img, err := s.Pull(context.Background(), uri, "")
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if !strings.HasPrefix(img.ResolvedURI, host+"/app@sha256:") || img.Digest == "" {
		t.Errorf("resolved %q digest %q", img.ResolvedURI, img.Digest)
	}
	if strings.Join(img.Entrypoint, " ") != "/bin/tool" || strings.Join(img.Cmd, " ") != "h.fn" || img.WorkingDir != "/data" || strings.Join(img.Env, " ") != "A=1" {
		t.Errorf("config: %+v", img)
	}
	root := img.Rootfs
	for p, want := range map[string]bool{
		"etc/keep": true, "etc/gone": false, "data/old": false, "data/new": true, "bin/link": true,
		"etc/shadow": false, // Owl's /etc rules: no shadow
	} {
		if _, err := os.Lstat(filepath.Join(root, p)); (err == nil) != want {
			t.Errorf("%s exists %v, want %v", p, err == nil, want)
		}
	}
	for _, d := range []string{"etc", "tmp", "proc", "dev"} {
		if fi, err := os.Lstat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("mount point /%s: %v (want a real directory)", d, err)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "var")); err != nil || l != "/" {
		t.Errorf("/var: %q %v, want the image's own symlink kept (nothing is mounted there)", l, err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "etc/passwd")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("/etc/passwd: %v, want a regular file to bind Owl's over", err)
	}
	if fi, err := os.Stat(filepath.Join(root, "bin/tool")); err != nil || fi.Mode()&os.ModeSetuid != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/tool: %v %v, want 0755 without setuid", fi.Mode(), err)
	}

	// A second image on the same base: only its own layer is fetched.
	uri2 := ocitest.Push(t, host, "other:v1", ocitest.Image(t, cfg, base, ocitest.Layer(t, ocitest.File{Name: "two", Body: []byte("2")})))
	img2, err := s.Pull(context.Background(), uri2, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(img2.Rootfs, "two")); err != nil {
		t.Error(err)
	}
	if n := blobs.Gets(t, base); n != 1 {
		t.Errorf("the shared base layer was downloaded %d times, want once", n)
	}
}

// TestPullRefusals: each kind of bad image is an *Error with its reason
// code, and nothing is written outside the store.
func TestPullRefusals(t *testing.T) {
	host := ocitest.Registry(t, nil)
	denied := ocitest.Registry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "owl" || p != "pw" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "denied", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	outside := filepath.Join(t.TempDir(), "outside")
	t.Run("credentials", func(t *testing.T) {
		// With the auth file's credentials the registry lets the pull in,
		// and answers that the image does not exist.
		auth := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(auth, []byte(`{"auths":{"`+denied+`":{"auth":"b3dsOnB3"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		s := newStore(t, denied, func(cfg *Config) { cfg.AuthFile = auth })
		_, err := s.Pull(context.Background(), denied+"/app:v1", "")
		var ie *Error
		if !errors.As(err, &ie) || ie.Code != CodeInvalidImage || !strings.Contains(ie.Reason, "does not exist") {
			t.Fatalf("Pull with credentials = %v, want InvalidImage: does not exist", err)
		}
	})
	ok := ocitest.Config{Arch: hostArch(), Entrypoint: []string{"/x"}}
	random := make([]byte, 64<<10)
	rand.Read(random)
	push := func(repo string, cfg ocitest.Config, files ...ocitest.File) string {
		return ocitest.Push(t, host, repo, ocitest.Image(t, cfg, ocitest.Layer(t, files...)))
	}
	other := ocitest.Config{Arch: "arm64", Entrypoint: []string{"/x"}}
	if hostArch() == "arm64" {
		other.Arch = "amd64"
	}
	ok2 := push("fine:v1", ok, ocitest.File{Name: "x", Body: []byte("x")})
	cases := []struct {
		name, uri, code, reason string
		limit                   int64
	}{
		{name: "missing", uri: host + "/nothing:here", code: CodeInvalidImage, reason: "does not exist"},
		{name: "refused", uri: denied + "/app:v1", code: CodeAccessDenied, reason: "refused"},
		{name: "architecture", uri: push("arch:v1", other, ocitest.File{Name: "x", Body: []byte("x")}), code: CodeInvalidImage, reason: "architecture"},
		{name: "not a tar", uri: ocitest.Push(t, host, "raw:v1", ocitest.Image(t, ok, ocitest.RawLayer([]byte("this is not a tar archive at all, not even close.......................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................")))), code: CodeInvalidImage, reason: "not a"},
		{name: "dotdot", uri: push("dotdot:v1", ok, ocitest.File{Name: "../" + filepath.Base(outside), Body: []byte("x")}), code: CodeInvalidImage, reason: "unsafe"},
		{name: "absolute", uri: push("abs:v1", ok, ocitest.File{Name: outside, Body: []byte("x")}), code: CodeInvalidImage, reason: "absolute"},
		{name: "device", uri: push("dev:v1", ok, ocitest.File{Name: "dev/sda", Type: tar.TypeBlock}), code: CodeInvalidImage, reason: "device"},
		{name: "compressed too large", uri: push("big:v1", ok, ocitest.File{Name: "r", Body: random}), limit: 16 << 10, code: CodeInvalidImage, reason: "larger than"},
		{name: "unpacked too large", uri: push("zeros:v1", ok, ocitest.File{Name: "z", Body: make([]byte, 1<<20)}), limit: 256 << 10, code: CodeInvalidImage, reason: "larger than"},
	}
	t.Run("plain HTTP to a registry not named insecure", func(t *testing.T) {
		// 127.0.0.1 is one go-containerregistry would try over HTTP by
		// itself.
		s := newStore(t, "", func(cfg *Config) { cfg.Insecure = nil })
		_, err := s.Pull(context.Background(), ok2, "")
		var ie *Error
		if !errors.As(err, &ie) || ie.Code != CodeAccessDenied {
			t.Fatalf("Pull over plain HTTP without --insecure-registry = %v, want ImageAccessDenied", err)
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t, host, func(cfg *Config) {
				cfg.Insecure = append(cfg.Insecure, denied)
				cfg.MaxBytes = c.limit
			})
			_, err := s.Pull(context.Background(), c.uri, "")
			var ie *Error
			if !errors.As(err, &ie) || ie.Code != c.code || !strings.Contains(ie.Reason, c.reason) {
				t.Fatalf("Pull(%s) = %v, want %s mentioning %q", c.uri, err, c.code, c.reason)
			}
			if _, err := os.Lstat(outside); err == nil {
				t.Errorf("%s was written outside the store", outside)
			}
			ents, _ := os.ReadDir(filepath.Join(s.cfg.Dir, "rootfs"))
			if len(ents) != 0 {
				t.Errorf("rootfs holds %d entries after a refusal, want none (no partial tree)", len(ents))
			}
		})
	}
}

// TestRefusedPullLeavesCacheWhole: an unpacking refused half-way (a device
// in an upper layer) stops reading the image's other layers; the layer
// cache must not keep what was read of them, or the next image sharing a
// layer would get it truncated (as go-containerregistry's filesystem cache
// did, depending on how far its extraction had got).
func TestRefusedPullLeavesCacheWhole(t *testing.T) {
	host := ocitest.Registry(t, nil)
	big := make([]byte, 4<<20)
	rand.Read(big)
	shared := ocitest.Layer(t, ocitest.File{Name: "big", Body: big})
	cfg := ocitest.Config{Arch: hostArch(), Entrypoint: []string{"/big"}}
	bad := ocitest.Push(t, host, "bad:v1", ocitest.Image(t, cfg, shared, ocitest.Layer(t, ocitest.File{Name: "null", Type: tar.TypeChar})))
	good := ocitest.Push(t, host, "good:v1", ocitest.Image(t, cfg, shared))
	s := newStore(t, host)
	if _, err := s.Pull(context.Background(), bad, ""); err == nil {
		t.Fatal("an image with a device was unpacked")
	}
	img, err := s.Pull(context.Background(), good, "")
	if err != nil {
		t.Fatalf("the image sharing the refused image's layer: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(img.Rootfs, "big")); err != nil || len(b) != len(big) {
		t.Errorf("big: %d bytes, %v; want %d", len(b), err, len(big))
	}
	ents, _ := os.ReadDir(s.layers.dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "partial-") {
			t.Errorf("a partial download %s was left in the layer cache", e.Name())
		}
	}
}

// TestPullPicksTheArchitecture: from a multi-platform index, each
// function architecture gets its own image.
func TestPullPicksTheArchitecture(t *testing.T) {
	host := ocitest.Registry(t, nil)
	imgs := map[string]v1.Image{}
	for _, arch := range []string{"amd64", "arm64"} {
		imgs[arch] = ocitest.Image(t, ocitest.Config{Arch: arch, Entrypoint: []string{"/" + arch}},
			ocitest.Layer(t, ocitest.File{Name: arch, Body: []byte(arch)}))
	}
	uri := ocitest.PushIndex(t, host, "multi:v1", imgs)
	s := newStore(t, host)
	for _, c := range []struct{ lambda, oci string }{{"x86_64", "amd64"}, {"arm64", "arm64"}} {
		img, err := s.Pull(context.Background(), uri, c.lambda)
		if err != nil {
			t.Fatalf("Pull for %s: %v", c.lambda, err)
		}
		want, _ := imgs[c.oci].Digest()
		if img.Digest != want.String() || strings.Join(img.Entrypoint, "") != "/"+c.oci {
			t.Errorf("for %s: digest %s entrypoint %v, want %s's %s", c.lambda, img.Digest, img.Entrypoint, c.oci, want)
		}
		if _, err := os.Stat(filepath.Join(img.Rootfs, c.oci)); err != nil {
			t.Errorf("for %s: %v", c.lambda, err)
		}
	}
}

// budget is a disk that has left bytes (the seam of the disk guard).
type budget struct {
	mu   sync.Mutex
	left int64
}

func (b *budget) Check(need int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if need > b.left {
		return &diskspace.LowSpaceError{Dir: "test", Free: b.left, Need: need}
	}
	b.left -= need
	return nil
}

// TestPullStopsAtTheDiskReserve: a layer that would not fit is not
// downloaded, a file that would not fit not written; the pull fails with
// the disk guard's error (the node's, not the image's) and leaves no
// partial layer or tree.
func TestPullStopsAtTheDiskReserve(t *testing.T) {
	host := ocitest.Registry(t, nil)
	random := make([]byte, 256<<10)
	rand.Read(random)
	cfg := ocitest.Config{Arch: hostArch(), Entrypoint: []string{"/x"}}
	for _, c := range []struct {
		name  string
		file  []byte
		space int64
	}{
		{"layer", random, 64 << 10},              // the compressed layer does not fit
		{"file", make([]byte, 1<<20), 256 << 10}, // its layer fits (zeros compress), the file does not
	} {
		t.Run(c.name, func(t *testing.T) {
			uri := ocitest.Push(t, host, c.name+":v1", ocitest.Image(t, cfg, ocitest.Layer(t, ocitest.File{Name: "f", Body: c.file})))
			s := newStore(t, host, func(cfg *Config) { cfg.Space = &budget{left: c.space} })
			_, err := s.Pull(context.Background(), uri, "")
			var ie *Error
			if !diskspace.IsLow(err) || errors.As(err, &ie) {
				t.Fatalf("Pull = %v, want the disk guard's error, not the image's", err)
			}
			for _, sub := range []string{"rootfs", "layers"} {
				ents, _ := os.ReadDir(filepath.Join(s.cfg.Dir, sub))
				for _, e := range ents {
					if sub == "rootfs" || strings.HasPrefix(e.Name(), "partial-") {
						t.Errorf("%s/%s left after the refusal", sub, e.Name())
					}
				}
			}
		})
	}
}

// TestCollectLayers: a layer no pull used since the cutoff is deleted, a
// used one kept; a later pull of an image with the deleted layer fetches
// it again.
func TestCollectLayers(t *testing.T) {
	var blobs ocitest.BlobCounter
	host := ocitest.Registry(t, blobs.Wrap)
	layer := ocitest.Layer(t, ocitest.File{Name: "f", Body: []byte("f")})
	cfg := ocitest.Config{Arch: hostArch(), Entrypoint: []string{"/f"}}
	one := ocitest.Push(t, host, "one:v1", ocitest.Image(t, cfg, layer))
	two := ocitest.Push(t, host, "two:v1", ocitest.Image(t, ocitest.Config{Arch: hostArch(), Entrypoint: []string{"/g"}}, layer))
	s := newStore(t, host)
	if _, err := s.Pull(context.Background(), one, ""); err != nil {
		t.Fatal(err)
	}
	if n := s.CollectLayers(time.Now().Add(-time.Hour)); n != 0 {
		t.Errorf("collected %d layers used just now", n)
	}
	if n := s.CollectLayers(time.Now().Add(time.Second)); n != 1 {
		t.Errorf("collected %d layers unused since the cutoff, want 1", n)
	}
	if _, err := s.Pull(context.Background(), two, ""); err != nil {
		t.Fatal(err)
	}
	if n := blobs.Gets(t, layer); n != 2 {
		t.Errorf("the collected layer was downloaded %d times in all, want twice", n)
	}
}

// TestPullStopped: a pull whose context ends (a shutdown) fails with the
// context's error, never as a fault of the image, wherever it stopped.
func TestPullStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	host := ocitest.Registry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				cancel() // the config blob: stop while it is fetched
			}
			h.ServeHTTP(w, r)
		})
	})
	uri := ocitest.Push(t, host, "stop:v1", ocitest.Image(t, ocitest.Config{Arch: hostArch()}, ocitest.Layer(t, ocitest.File{Name: "f"})))
	_, err := newStore(t, host).Pull(ctx, uri, "")
	var ie *Error
	if !errors.Is(err, context.Canceled) || errors.As(err, &ie) {
		t.Fatalf("Pull stopped = %v, want context.Canceled and no image error", err)
	}
}
