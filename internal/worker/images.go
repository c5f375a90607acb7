package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/owl-project/owl/internal/diskspace"
	"github.com/owl-project/owl/internal/images"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/runtimes"
	"github.com/owl-project/owl/internal/sandbox"
)

// Functions of PackageType Image: the sandbox's root is the image's
// unpacked file system (Spec.Image), kept by the images package under
// <data>/images/rootfs/<digest> and referenced through the code cache like
// unpacked zips, so one unused for the idle timeout is deleted (and pulled
// again when next needed). The entrypoint is the image's ENTRYPOINT and
// CMD as ImageConfig overrides them, the working directory WORKDIR or
// ImageConfig's, the environment the image's ENV under the function's own
// variables and Lambda's. Image environments are never pre-warmed.

// ImageSource gives the unpacked root of an image by digest
// (*images.Store).
type ImageSource interface {
	Rootfs(ctx context.Context, resolvedURI, arch string) (string, error)
	// CollectLayers deletes the cached layers unused since cutoff; the
	// worker calls it with its idle collection.
	CollectLayers(cutoff time.Time) int
}

// imageRootfsDir is where the images package unpacks roots, under the
// data dir (images.New's Dir is <data>/images).
const imageRootfsDir = "images/rootfs"

// imageDir returns fn's unpacked image root with a reference for the
// caller (release with unref).
func (c *codeCache) imageDir(ctx context.Context, src ImageSource, fn registry.Function) (string, error) {
	arch := ""
	if len(fn.Architectures) > 0 {
		arch = fn.Architectures[0]
	}
	for attempt := 0; ; attempt++ {
		// Outside c.mu: a pull may take long, and zips need not wait.
		dir, err := src.Rootfs(ctx, fn.Image.ResolvedURI, arch)
		var ie *images.Error
		if diskspace.IsLow(err) {
			return "", noRoomToUnpack(fn.Image.ResolvedURI, err)
		}
		if errors.As(err, &ie) {
			return "", lambdaerr.Wrap(lambdaerr.ResourceConflict, err,
				"The image %s of function %s cannot be pulled again on this node: %s", fn.Image.ResolvedURI, fn.Name, ie.Reason)
		}
		if err != nil {
			return "", fmt.Errorf("image of %s: %w", fn.Name, err)
		}
		c.mu.Lock()
		c.refLocked(dir)
		c.mu.Unlock()
		if _, err := os.Stat(dir); err == nil || attempt > 0 {
			return dir, err
		}
		c.unref(dir) // collected between the two: pull again
	}
}

// createImageSandbox is createSandbox for an image function.
func (w *Worker) createImageSandbox(ctx context.Context, fn registry.Function, egress bool, spec *envSpec) (Sandbox, error) {
	if w.cfg.Images == nil {
		return nil, lambdaerr.New(lambdaerr.ResourceConflict, "Function %s is a container image; images are not enabled on this node.", fn.Name)
	}
	dir, err := w.cache.imageDir(ctx, w.cfg.Images, fn)
	if err != nil {
		return nil, err
	}
	spec.dirs = append(spec.dirs, dir)
	spec.t0 = time.Now()
	spec.id = fmt.Sprintf("%s-%d", strings.ToLower(fn.Name), w.envSeq.Add(1))
	environ := w.imageEnviron(fn, spec.provisioned)
	if w.cfg.Inside != nil {
		spec.keyID, spec.secret, spec.token = callerCreds()
		spec.fn = fn.Name
		environ = append(environ, callerEnv(spec.keyID, spec.secret, spec.token)...)
	}
	argv, err := imageArgv(dir, fn.Image.Argv(), environ)
	if err != nil {
		return nil, imageInitFailed(spec, lambdaerr.RuntimeInvalidEntrypoint, err)
	}
	if err := checkWorkDir(dir, fn.Image.WorkDir()); err != nil {
		return nil, imageInitFailed(spec, lambdaerr.RuntimeInvalidWorkingDirectory, err)
	}
	return w.sandbox.Create(ctx, sandbox.Spec{
		ID: spec.id, Image: dir, WorkDir: fn.Image.WorkDir(), Argv: argv, Env: environ,
		MemoryMB: fn.MemorySize, TmpMB: fn.EphemeralStorage, UID: w.cfg.UID, GID: w.cfg.GID,
		RuntimeAPIAddr: runtimeAPIAddr, Egress: egress,
	})
}

// imageInitFailed is a start that failed for the image's fault.
func imageInitFailed(spec *envSpec, errType string, err error) *initFailed {
	return &initFailed{dur: time.Since(spec.t0), errType: errType, body: lambdaerr.ErrorBody(errType, fmt.Sprintf("Error: %v", err))}
}

// checkWorkDir fails unless dir, inside the image's root (its symlinks
// resolved inside it), is a directory.
func checkWorkDir(rootfs, dir string) error {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return fmt.Errorf("opening the image root: %w", err)
	}
	defer root.Close()
	rel := strings.TrimPrefix(path.Clean(dir), "/")
	if rel == "" {
		return nil
	}
	if fi, err := root.Stat(rel); err != nil || !fi.IsDir() {
		return fmt.Errorf("working directory %s is not a directory of the image", dir)
	}
	return nil
}

// imageEnviron is an image function's environment: Lambda's variables and
// the function's own (environ), then the image's ENV for every other name
// (PATH and LD_LIBRARY_PATH included: the image's replace Lambda's
// defaults, as on Lambda). _HANDLER is the command's first word, as the
// runtime interface clients of Lambda's base images read it.
func (w *Worker) imageEnviron(fn registry.Function, provisioned bool) []string {
	base := w.environ(fn, runtimes.Runtime{}, provisioned)
	if cmd := fn.Image.Command(); len(cmd) > 0 {
		base = setEnv(base, "_HANDLER", cmd[0])
	}
	for _, kv := range fn.Image.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.HasPrefix(k, "AWS_") || k == "_HANDLER" {
			continue
		}
		if _, own := fn.Environment[k]; own {
			continue
		}
		base = setEnv(base, k, kv[len(k)+1:])
	}
	return base
}

// setEnv sets k in env, replacing an existing entry.
func setEnv(env []string, k, v string) []string {
	i := slices.IndexFunc(env, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
	if i < 0 {
		return append(env, k+"="+v)
	}
	env[i] = k + "=" + v
	return env
}

// imageArgv makes argv's program absolute: a bare name is looked up in the
// environment's PATH inside the image's root (rootfs, through an os.Root,
// so the image's symlinks resolve inside it). An empty argv, or a name on
// no PATH directory, is an invalid entrypoint.
func imageArgv(rootfs string, argv, env []string) ([]string, error) {
	if len(argv) == 0 {
		return nil, errors.New("the image has no ENTRYPOINT or CMD, and ImageConfig sets none")
	}
	prog := argv[0]
	if strings.HasPrefix(prog, "/") {
		return argv, nil
	}
	if strings.Contains(prog, "/") {
		return nil, fmt.Errorf("entrypoint %q must be absolute or a name found on PATH", prog)
	}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return nil, fmt.Errorf("opening the image root: %w", err)
	}
	defer root.Close()
	pathVar := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, d := range strings.Split(pathVar, ":") {
		if !strings.HasPrefix(d, "/") {
			continue
		}
		p := path.Join(d, prog)
		if fi, err := root.Stat(strings.TrimPrefix(p, "/")); err == nil && fi.Mode().IsRegular() {
			return append([]string{p}, argv[1:]...), nil
		}
	}
	return nil, fmt.Errorf("entrypoint %q: not found on PATH %s in the image", prog, pathVar)
}
