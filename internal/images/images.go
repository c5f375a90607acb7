// Package images owns container images on a node: it pulls an image
// (PackageType Image, Code.ImageUri) from an OCI or Docker registry with
// go-containerregistry, checks it (architecture, size, a safe file tree)
// and unpacks its flattened file system once per image digest into
// <dir>/rootfs/<digest>, which sandboxes bind read-only as their root.
//
// Layers are cached compressed by digest under <dir>/layers and shared by
// every image that has them, so a new tag of a base image pulls only its
// new layers. A root file system is unpacked beside its final name and
// renamed into place: a failure half-way never leaves a partial tree that
// a later start would take as whole. Nothing is written outside <dir>: the
// unpacking goes through an os.Root, refuses absolute names, "..", device
// nodes and links that leave the tree, and honours whiteouts (.wh.
// entries and opaque directories) through mutate.Extract.
//
// Registries are reached over HTTPS, or plain HTTP for those named in
// Config.Insecure (Docker's --insecure-registry); credentials come from a
// docker-style config.json (Config.AuthFile), else anonymous.
//
// Failures that are the image's or the registry's come back as *Error with
// a Lambda StateReasonCode (ImageAccessDenied, InvalidImage); others are
// the node's.
package images

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/cache"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/owl-project/owl/internal/diskspace"
)

// DefaultMaxBytes is the largest image, unpacked, like Lambda's 10 GB.
const DefaultMaxBytes = 10 << 30

// Lambda's StateReasonCode values for an image that cannot be used.
const (
	// CodeAccessDenied: the registry refused (authentication, permission)
	// or could not be reached.
	CodeAccessDenied = "ImageAccessDenied"
	// CodeInvalidImage: the image does not exist, is for another
	// architecture, is too large, or is not a safe, well-formed image.
	CodeInvalidImage = "InvalidImage"
)

// Error is an image the node cannot use, with Lambda's reason code.
type Error struct {
	// Code is CodeAccessDenied or CodeInvalidImage.
	Code string
	// Reason is the StateReason shown to the user.
	Reason string
	// Err is the cause, if any.
	Err error
}

func (e *Error) Error() string { return e.Code + ": " + e.Reason }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func invalid(err error, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidImage, Reason: fmt.Sprintf(format, args...), Err: err}
}

// Config configures a Store.
type Config struct {
	// Dir is the store's directory (e.g. <data>/images); created if needed.
	Dir string
	// Insecure lists registries (HOST or HOST:PORT) reached over plain
	// HTTP, as Docker's --insecure-registry.
	Insecure []string
	// AuthFile is a docker-style config.json whose "auths" give the
	// credentials per registry; "" pulls anonymously.
	AuthFile string
	// MaxBytes bounds an image's unpacked size; 0 means DefaultMaxBytes.
	MaxBytes int64
	// Space, when set, is asked before each layer is downloaded and each
	// file unpacked: a pull that would go below the data dir's disk
	// reserve stops with its error (diskspace.IsLow), the node's fault,
	// not the image's. nil: not checked.
	Space SpaceChecker
	// Transport, if set, is the HTTP transport to registries (tests).
	Transport http.RoundTripper
	// Logger receives the store's events; nil discards them.
	Logger *slog.Logger
}

// SpaceChecker refuses writes that would leave too little disk
// (*diskspace.Guard).
type SpaceChecker interface {
	Check(need int64) error
}

// Store pulls and unpacks images; safe for concurrent use.
type Store struct {
	cfg    Config
	layers layerCache
	mu     sync.Mutex
	// busy serialises the unpacking of each digest: one pull unpacks,
	// the others wait for it and find the tree.
	busy map[string]*sync.Mutex
}

// Image is a pulled and unpacked image.
type Image struct {
	// ResolvedURI is the repository with the manifest's digest
	// (repo@sha256:...), Lambda's ResolvedImageUri.
	ResolvedURI string
	// Digest is the manifest's digest, "sha256:<hex>".
	Digest string
	// Rootfs is the unpacked root file system on the host.
	Rootfs string
	// Size is the size of its layers as stored (compressed), in bytes.
	Size int64
	// Entrypoint, Cmd, WorkingDir and Env are the image's config.
	Entrypoint, Cmd []string
	WorkingDir      string
	Env             []string
}

// New returns a store in cfg.Dir.
func New(cfg Config) (*Store, error) {
	if cfg.Dir == "" || !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("images: Dir must be an absolute path, got %q", cfg.Dir)
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, sub := range []string{"layers", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("images: creating %s: %w", sub, err)
		}
	}
	if cfg.AuthFile != "" {
		if _, err := loadAuthFile(cfg.AuthFile); err != nil {
			return nil, err
		}
	}
	return &Store{cfg: cfg, layers: layerCache{dir: filepath.Join(cfg.Dir, "layers"), limit: cfg.MaxBytes, space: cfg.Space}, busy: map[string]*sync.Mutex{}}, nil
}

// RootfsDir is the directory an image of digest is unpacked to.
func (s *Store) RootfsDir(digest string) string {
	return filepath.Join(s.cfg.Dir, "rootfs", strings.ReplaceAll(digest, ":", "-"))
}

// ParseURI checks an ImageUri: a registry reference with a tag or a
// digest (registry/repository:tag or @sha256:...).
func ParseURI(uri string) error {
	_, err := name.ParseReference(uri, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("%q is not an image reference (registry/repository:tag or @sha256:digest): %w", uri, err)
	}
	return nil
}

// Platform is the OCI platform of a Lambda architecture (x86_64, arm64);
// "" is the host's.
func Platform(arch string) v1.Platform {
	switch arch {
	case "arm64":
		return v1.Platform{OS: "linux", Architecture: "arm64"}
	case "x86_64":
		return v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// Pull fetches uri for arch (Lambda's x86_64 or arm64), unpacks it unless
// its digest is unpacked already, and describes it. Failures of the image
// or the registry are *Error.
func (s *Store) Pull(ctx context.Context, uri, arch string) (Image, error) {
	img, err := s.pull(ctx, uri, arch)
	if err != nil && ctx.Err() != nil {
		// Stopped (a shutdown): not the image's fault, whatever failed.
		return Image{}, fmt.Errorf("pulling %s: %w", uri, context.Cause(ctx))
	}
	return img, err
}

func (s *Store) pull(ctx context.Context, uri, arch string) (Image, error) {
	ref, err := s.parse(uri)
	if err != nil {
		return Image{}, invalid(err, "%v", err)
	}
	want := Platform(arch)
	base := s.cfg.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithPlatform(want), remote.WithAuthFromKeychain(s.keychain()),
		remote.WithTransport(httpsOnly{base: base, insecure: s.cfg.Insecure})}
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return Image{}, registryError(uri, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return Image{}, registryError(uri, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Image{}, invalid(err, "Reading the config of image %s: %v", uri, err)
	}
	if cf.OS != want.OS || cf.Architecture != want.Architecture {
		return Image{}, invalid(nil, "Image %s is for %s/%s; the function's architecture %s needs %s/%s.",
			uri, cf.OS, cf.Architecture, archName(arch), want.OS, want.Architecture)
	}
	out := Image{
		ResolvedURI: ref.Context().Digest(digest.String()).String(), Digest: digest.String(),
		Rootfs: s.RootfsDir(digest.String()), Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd,
		WorkingDir: cf.Config.WorkingDir, Env: cf.Config.Env,
	}
	if out.Size, err = s.compressedSize(uri, img); err != nil {
		return Image{}, err
	}
	if err := s.unpack(ctx, uri, img, out.Rootfs); err != nil {
		return Image{}, err
	}
	return out, nil
}

func archName(arch string) string {
	if arch == "" {
		return "(the node's)"
	}
	return arch
}

// parse is uri as a reference, insecure for the registries so configured.
func (s *Store) parse(uri string) (name.Reference, error) {
	ref, err := name.ParseReference(uri, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("%q is not an image reference: %w", uri, err)
	}
	if slices.Contains(s.cfg.Insecure, ref.Context().RegistryStr()) {
		ref, err = name.ParseReference(uri, name.StrictValidation, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("%q is not an image reference: %w", uri, err)
		}
	}
	return ref, nil
}

// httpsOnly refuses plain HTTP to any host but the insecure registries:
// go-containerregistry falls back to HTTP by itself for localhost,
// loopback and private (RFC 1918) addresses, which Owl allows only for
// registries named by --insecure-registry, as Docker does.
type httpsOnly struct {
	base     http.RoundTripper
	insecure []string
}

// RoundTrip implements http.RoundTripper.
func (t httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" && !slices.Contains(t.insecure, r.URL.Host) {
		return nil, fmt.Errorf("plain HTTP to %s refused: it is not an --insecure-registry", r.URL.Host)
	}
	return t.base.RoundTrip(r)
}

// registryError classifies a failure to fetch uri's manifest.
func registryError(uri string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return &Error{Code: CodeAccessDenied, Reason: fmt.Sprintf("The registry refused access to image %s (HTTP %d): check the credentials (registry-auth-file).", uri, te.StatusCode), Err: err}
		case http.StatusNotFound:
			return invalid(err, "Source image %s does not exist.", uri)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pulling %s: %w", uri, err)
	}
	if strings.Contains(err.Error(), "no child with platform") {
		return invalid(err, "Image %s has no manifest for the function's architecture: %v", uri, err)
	}
	return &Error{Code: CodeAccessDenied, Reason: fmt.Sprintf("Could not pull image %s: %v", uri, err), Err: err}
}

// compressedSize is the size of img's layers as stored; an image whose
// layers alone exceed the limit is refused before any is downloaded.
func (s *Store) compressedSize(uri string, img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, invalid(err, "Reading the manifest of image %s: %v", uri, err)
	}
	var total int64
	for _, l := range m.Layers {
		total += l.Size
	}
	if total > s.cfg.MaxBytes {
		return 0, tooLarge(uri, s.cfg.MaxBytes)
	}
	return total, nil
}

func tooLarge(uri string, limit int64) *Error {
	return invalid(nil, "Image %s is larger than the limit of %d bytes (image-size-limit).", uri, limit)
}

// unpack extracts img's flattened file system into dir, once per digest.
func (s *Store) unpack(ctx context.Context, uri string, img v1.Image, dir string) error {
	s.mu.Lock()
	lock := s.busy[dir]
	if lock == nil {
		lock = new(sync.Mutex)
		s.busy[dir] = lock
	}
	s.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	tmp := dir + PartialMark + randomSuffix()
	defer os.RemoveAll(tmp)
	rc := mutate.Extract(cache.Image(img, s.layers))
	defer rc.Close()
	// No fork while files are open for writing (as in the worker's code
	// cache: a child inheriting a write descriptor until it execs makes
	// exec'ing that file fail with ETXTBSY).
	syscall.ForkLock.RLock()
	size, err := extract(ctx, rc, tmp, s.cfg.MaxBytes, s.cfg.Space)
	syscall.ForkLock.RUnlock()
	switch {
	case diskspace.IsLow(err):
		return fmt.Errorf("no disk space to unpack image %s: %w", uri, err)
	case errors.Is(err, errTooLarge):
		return tooLarge(uri, s.cfg.MaxBytes)
	case errors.Is(err, errUnsafe):
		return invalid(err, "Image %s cannot be unpacked safely: %v", uri, err)
	case errors.Is(err, errNotTar):
		return invalid(err, "Image %s has a layer that is not a (gzipped) tar archive: %v", uri, err)
	case err != nil:
		return fmt.Errorf("unpacking image %s: %w", uri, err)
	}
	if err := prepareMountPoints(tmp); err != nil {
		return fmt.Errorf("unpacking image %s: %w", uri, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("unpacking image %s: %w", uri, err)
	}
	s.cfg.Logger.Info("image unpacked", "image", uri, "dir", dir, "bytes", size)
	return nil
}

// PartialMark is in the name of a root file system being unpacked (beside
// its final name); a collector of the rootfs directory skips those.
const PartialMark = ".partial-"

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CollectLayers deletes the cached layers no pull used since cutoff (the
// unpacked roots are collected by their users, the worker's code cache);
// it returns how many it deleted.
func (s *Store) CollectLayers(cutoff time.Time) int {
	n := s.layers.collect(cutoff)
	if n > 0 {
		s.cfg.Logger.Info("image layers collected", "layers", n)
	}
	return n
}

// Rootfs returns the unpacked root of resolvedURI (repo@sha256:...),
// pulling it again if the node has none (a new node, or one collected).
func (s *Store) Rootfs(ctx context.Context, resolvedURI, arch string) (string, error) {
	d, err := name.NewDigest(resolvedURI, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("image %q is not a reference by digest: %w", resolvedURI, err)
	}
	dir := s.RootfsDir(d.DigestStr())
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return dir, nil
	}
	img, err := s.Pull(ctx, resolvedURI, arch)
	if err != nil {
		return "", err
	}
	return img.Rootfs, nil
}
