package bench

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestExitZeroELF(t *testing.T) {
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		b, err := ExitZeroELF(arch)
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: not an ELF file: %v", arch, err)
		}
		if f.Machine != machine || f.Type != elf.ET_EXEC || f.Class != elf.ELFCLASS64 || len(f.Progs) != 1 {
			t.Errorf("%s: header %+v, %d program headers", arch, f.FileHeader, len(f.Progs))
		}
		p := f.Progs[0]
		if p.Type != elf.PT_LOAD || p.Flags != elf.PF_R|elf.PF_X || p.Filesz != uint64(len(b)) ||
			f.Entry < p.Vaddr || f.Entry >= p.Vaddr+p.Memsz || f.Entry%4 != 0 {
			t.Errorf("%s: segment %+v, entry %#x", arch, p.ProgHeader, f.Entry)
		}
	}
	if _, err := ExitZeroELF("mips"); err == nil {
		t.Error("ExitZeroELF(mips) made something")
	}
	// On this machine's architecture, it runs and exits 0.
	b, err := ExitZeroELF(runtime.GOARCH)
	if err != nil || runtime.GOOS != "linux" {
		t.Skipf("no built-in program to run for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	exe := filepath.Join(t.TempDir(), "true")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(exe).CombinedOutput(); err != nil {
		t.Errorf("running the exit(0) program: %v %q", err, out)
	}
}

// runcSpec is the part of `runc spec`'s output PrepareBundle deals with.
const runcSpec = `{
	"ociVersion": "1.0.2-dev",
	"process": {"terminal": true, "user": {"uid": 0, "gid": 0}, "args": ["sh"], "env": ["PATH=/bin"], "cwd": "/"},
	"root": {"path": "rootfs"},
	"hostname": "runc",
	"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
	"linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}]}
}`

func TestPrepareBundle(t *testing.T) {
	dir := t.TempDir()
	exe := []byte("\x7fELF program")
	if err := PrepareBundle(dir, []byte(runcSpec), exe, []string{"-x", "y"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "rootfs", "bootstrap"))
	if err != nil || !bytes.Equal(got, exe) {
		t.Fatalf("rootfs/bootstrap = %q, %v", got, err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "rootfs", "bootstrap")); st.Mode().Perm() != 0o755 {
		t.Errorf("bootstrap mode %v", st.Mode())
	}
	for _, d := range []string{"proc", "dev", "sys"} {
		if st, err := os.Stat(filepath.Join(dir, "rootfs", d)); err != nil || !st.IsDir() {
			t.Errorf("rootfs/%s: %v", d, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		OCIVersion string `json:"ociVersion"`
		Hostname   string `json:"hostname"`
		Process    struct {
			Terminal bool     `json:"terminal"`
			Args     []string `json:"args"`
			Env      []string `json:"env"`
			Cwd      string   `json:"cwd"`
		} `json:"process"`
		Root struct {
			Path     string `json:"path"`
			Readonly bool   `json:"readonly"`
		} `json:"root"`
		Mounts []any `json:"mounts"`
		Linux  struct {
			Namespaces []any `json:"namespaces"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	p := cfg.Process
	if p.Terminal || strings.Join(p.Args, " ") != "/bootstrap -x y" || p.Cwd != "/" || cfg.Root.Path != "rootfs" || !cfg.Root.Readonly {
		t.Errorf("config.json process %+v root %+v", p, cfg.Root)
	}
	// The rest of runc's spec is kept.
	if cfg.OCIVersion != "1.0.2-dev" || cfg.Hostname != "runc" || len(p.Env) != 1 || len(cfg.Mounts) != 1 || len(cfg.Linux.Namespaces) != 3 {
		t.Errorf("config.json lost runc's settings:\n%s", b)
	}
	if err := PrepareBundle(t.TempDir(), []byte("{not json"), exe, nil); err == nil {
		t.Error("PrepareBundle accepted a broken spec")
	}
}

func TestBundleProgram(t *testing.T) {
	if b, err := bundleProgram(""); runtime.GOARCH == "amd64" && (err != nil || len(b) > 200) {
		t.Errorf("default program: %d bytes, %v", len(b), err)
	}
	dir := t.TempDir()
	notELF := writeFile(t, dir, "script", "#!/bin/sh\n", 0o755)
	if _, err := bundleProgram(notELF); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Errorf("bundleProgram(script) = %v", err)
	}
	// A dynamically linked program cannot run in an empty rootfs.
	if dyn, err := exec.LookPath("sh"); err == nil {
		if f, err := elf.Open(dyn); err == nil && f.Progs != nil {
			f.Close()
			if _, err := bundleProgram(dyn); err != nil && !strings.Contains(err.Error(), "dynamically linked") {
				t.Errorf("bundleProgram(%s) = %v", dyn, err)
			}
		}
	}
}

// TestRunc runs the baseline once when runc is installed and this process
// may make containers (root); it asserts that it works, not how fast.
func TestRunc(t *testing.T) {
	if _, err := exec.LookPath("runc"); err != nil {
		if _, err := Runc(context.Background(), RuncOptions{}, 1); !errors.Is(err, ErrNoRunc) {
			t.Errorf("Runc without runc = %v, want ErrNoRunc", err)
		}
		t.Skip("runc is not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("runc run needs root")
	}
	r, err := Runc(context.Background(), RuncOptions{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != ModeRunc || r.Target != TargetBaseline || r.OK != 2 || r.Errors != 0 || r.Latency.Count != 2 || r.Warmup != 3 ||
		r.Command != "runc run /bootstrap" {
		t.Errorf("runc result = %+v", r)
	}
}

func TestRuncMissing(t *testing.T) {
	_, err := Runc(context.Background(), RuncOptions{Runc: "/nonexistent/runc"}, 1)
	if !errors.Is(err, ErrNoRunc) || !strings.Contains(err.Error(), "apt-get install runc") {
		t.Errorf("Runc(missing) = %v", err)
	}
}
