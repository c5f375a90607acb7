package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

// builds are the commands Build made in this test binary, in a temporary
// directory of its own that RemoveBuilds removes.
var builds struct {
	mu  sync.Mutex
	dir string
	by  map[string]*built // by package path
}

type built struct {
	once sync.Once
	path string // where the binary goes
	err  error  // why it could not be built
}

// Build compiles the Go command pkg (a package path as go build takes it,
// relative to the test's package: "./testdata/probe", "../../cmd/owl")
// once per test binary, statically (CGO_ENABLED=0) for the machine the
// tests run on whatever GOOS and GOARCH say, and returns the binary's
// path, named after pkg's last element. Tests sharing the binary may run
// it at once; none may change it. The test's TestMain calls RemoveBuilds.
func Build(pkg string) (string, error) {
	b, err := buildOf(pkg)
	if err != nil {
		return "", err
	}
	b.once.Do(func() {
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
		}
	})
	return b.path, b.err
}

// buildOf is pkg's build, made on first use with the path it goes to: a
// directory a package, so that two commands of one name do not meet.
func buildOf(pkg string) (*built, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if b := builds.by[pkg]; b != nil {
		return b, nil
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "owl-test-build-")
		if err != nil {
			return nil, err
		}
		builds.dir, builds.by = dir, map[string]*built{}
	}
	b := &built{path: filepath.Join(builds.dir, strconv.Itoa(len(builds.by)), path.Base(pkg))}
	builds.by[pkg] = b
	return b, nil
}

// RemoveBuilds removes what Build made; TestMain calls it after m.Run.
func RemoveBuilds() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	builds.dir, builds.by = "", nil
}

// CodeDir is a new temporary directory of t's holding a copy of the
// executable bin as name: a function's code directory, readable (0755)
// by a sandbox's unprivileged user, which t's own temporary directories
// are not.
func CodeDir(t testing.TB, bin, name string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
