package vmtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// ModuleDeps is a kernel's modules.dep (and modules.builtin): which module
// files exist and what each needs loaded first.
type ModuleDeps struct {
	// byName maps a module name (dashes as underscores) to its path
	// relative to /lib/modules/<release>.
	byName map[string]string
	// deps maps such a path to the paths it depends on.
	deps map[string][]string
	// builtin holds the names of modules built into the kernel.
	builtin map[string]bool
}

// ModuleName is the name the kernel knows a module file by:
// kernel/fs/9p/9p.ko.xz → 9p, virtio-rng.ko → virtio_rng.
func ModuleName(file string) string {
	base := path.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// ParseModuleDeps reads modules.dep ("path: dep dep...", one module a line)
// and, when builtin is not nil, modules.builtin (one path a line).
func ParseModuleDeps(dep, builtin io.Reader) (*ModuleDeps, error) {
	m := &ModuleDeps{byName: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	sc := bufio.NewScanner(dep)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, rest, ok := strings.Cut(line, ":")
		if !ok || file == "" {
			return nil, fmt.Errorf("modules.dep line %d: no \"path:\" in %q", n, line)
		}
		m.byName[ModuleName(file)] = file
		m.deps[file] = strings.Fields(rest)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading modules.dep: %w", err)
	}
	if builtin != nil {
		sc := bufio.NewScanner(builtin)
		for sc.Scan() {
			if f := strings.TrimSpace(sc.Text()); f != "" {
				m.builtin[ModuleName(f)] = true
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reading modules.builtin: %w", err)
		}
	}
	return m, nil
}

// LoadModuleDeps reads modules.dep and modules.builtin of the kernel whose
// modules are in dir (/lib/modules/<release>).
func LoadModuleDeps(dir string) (*ModuleDeps, error) {
	dep, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	defer dep.Close()
	var builtin io.Reader
	if f, err := os.Open(filepath.Join(dir, "modules.builtin")); err == nil {
		defer f.Close()
		builtin = f
	}
	return ParseModuleDeps(dep, builtin)
}

// Resolve returns the module files to load, in load order (every
// dependency before what needs it, each once), for the named modules.
// Modules built into the kernel are skipped; an unknown name is an error.
func (m *ModuleDeps) Resolve(names ...string) ([]string, error) {
	var order []string
	done := map[string]bool{}
	visiting := map[string]bool{}
	var visit func(file string) error
	visit = func(file string) error {
		if done[file] {
			return nil
		}
		if visiting[file] {
			return fmt.Errorf("module dependency cycle through %s", file)
		}
		visiting[file] = true
		deps, ok := m.deps[file]
		if !ok {
			return fmt.Errorf("module %s is listed as a dependency but has no modules.dep entry", file)
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		visiting[file] = false
		done[file] = true
		order = append(order, file)
		return nil
	}
	for _, n := range names {
		n = strings.ReplaceAll(n, "-", "_")
		if m.builtin[n] {
			continue
		}
		file, ok := m.byName[n]
		if !ok {
			return nil, fmt.Errorf("kernel module %q is neither in modules.dep nor built in", n)
		}
		if err := visit(file); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// ReadModule returns the uncompressed contents of a module file: .ko as
// is; .ko.gz with compress/gzip; .ko.xz and .ko.zst through the xz and zstd
// commands. The guest then loads plain ELF objects, whether or not its
// kernel can decompress modules itself (MODULE_INIT_COMPRESSED_FILE needs
// CONFIG_MODULE_DECOMPRESS, which Debian's 6.1 kernel lacks).
func ReadModule(file string) ([]byte, error) {
	switch {
	case strings.HasSuffix(file, ".ko"):
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading module: %w", err)
		}
		return b, nil
	case strings.HasSuffix(file, ".ko.gz"):
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("reading module: %w", err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("decompressing %s: %w", file, err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("decompressing %s: %w", file, err)
		}
		return b, nil
	case strings.HasSuffix(file, ".ko.xz"):
		return decompressWith(file, "xz")
	case strings.HasSuffix(file, ".ko.zst"):
		return decompressWith(file, "zstd")
	}
	return nil, fmt.Errorf("module %s: unknown file type", file)
}

func decompressWith(file, tool string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(tool, "-dc", file)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("decompressing %s with %s: %w: %s", file, tool, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}
