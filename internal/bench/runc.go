package bench

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// ErrNoRunc is returned by Runc when runc is not installed.
var ErrNoRunc = errors.New("runc is not installed (Debian: apt-get install runc); the runc baseline needs it")

// bundleExe is where the bundle's program lives in its rootfs.
const bundleExe = "/bootstrap"

// RuncOptions says what the runc baseline runs.
type RuncOptions struct {
	// Runc is the runc binary; empty looks "runc" up on $PATH.
	Runc string
	// Binary is a static executable copied into the rootfs as /bootstrap
	// and run there with Args; empty uses ExitZeroELF, a program that only
	// exits 0 (a container's cold start, `runc run` of /bin/true, without a
	// libc).
	Binary string
	Args   []string
}

// Runc measures the cold-start cost of an OCI container: -n runs of
// `runc run` (create, start, wait, delete) of a bundle whose rootfs holds
// one static program, after a few untimed ones. The bundle is prepared in a
// temporary directory (config.json from `runc spec`, made non-interactive
// with a read-only root) and runc keeps its state there too (--root), so
// the run touches no other container; every container is deleted.
func Runc(ctx context.Context, opts RuncOptions, n int) (*Result, error) {
	if err := (Config{Requests: n}).Validate(ModeRunc); err != nil {
		return nil, err
	}
	runc := opts.Runc
	if runc == "" {
		runc = "runc"
	}
	path, err := exec.LookPath(runc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoRunc, err)
	}
	dir, err := os.MkdirTemp("", "owl-bench-runc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bundle, state := filepath.Join(dir, "bundle"), filepath.Join(dir, "state")
	if err := os.Mkdir(bundle, 0o755); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, path, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("runc spec: %v: %s", err, bytes.TrimSpace(out))
	}
	spec, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	exe, err := bundleProgram(opts.Binary)
	if err != nil {
		return nil, err
	}
	if err := PrepareBundle(bundle, spec, exe, opts.Args); err != nil {
		return nil, err
	}

	prefix := "owl-bench-" + strconv.Itoa(os.Getpid()) + "-"
	seq := 0
	run := func() outcome {
		seq++
		id := prefix + strconv.Itoa(seq)
		cmd := exec.CommandContext(ctx, path, "--root", state, "run", "--bundle", bundle, id)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		o := outcome{latency: time.Since(start)}
		if err != nil {
			o.fail = &failure{kind: "runc run failed: " + err.Error(), example: snippet(out.Bytes())}
			// runc run deletes its container when the program exits; after
			// a failure, make sure.
			_ = exec.Command(path, "--root", state, "delete", "--force", id).Run()
		}
		return o
	}
	what := "runc run " + strings.Join(append([]string{bundleExe}, opts.Args...), " ")
	if opts.Binary != "" {
		what += " (" + filepath.Base(opts.Binary) + ")"
	}
	r := &Result{Mode: ModeRunc, Target: TargetBaseline, Command: what, Started: time.Now().UTC(), Host: ThisHost()}
	if err := timeRuns(ctx, r, what, 3, n, run); err != nil {
		return nil, err
	}
	r.Notes = append(r.Notes, "each run: runc run --bundle (create, start, wait for the program, delete) of a one-program rootfs, read-only, namespaces of runc spec's default")
	return r, nil
}

// bundleProgram is the program of the bundle: the file at path, which must
// be a static executable (the rootfs has no libc), or ExitZeroELF.
func bundleProgram(path string) ([]byte, error) {
	if path == "" {
		return ExitZeroELF(runtime.GOARCH)
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("runc baseline: %s: not an ELF executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("runc baseline: %s is dynamically linked; the bundle's rootfs has no libc (build it with CGO_ENABLED=0)", path)
		}
	}
	return os.ReadFile(path)
}

// PrepareBundle lays out an OCI bundle in dir for `runc run`: rootfs/ with
// exe as /bootstrap, and config.json made from spec (what `runc spec`
// wrote) running /bootstrap with args, without a terminal, in a read-only
// root. Fields it does not set are kept as they are.
func PrepareBundle(dir string, spec, exe []byte, args []string) error {
	var cfg map[string]any
	if err := json.Unmarshal(spec, &cfg); err != nil {
		return fmt.Errorf("bundle: config.json: %w", err)
	}
	proc, _ := cfg["process"].(map[string]any)
	if proc == nil {
		proc = map[string]any{}
		cfg["process"] = proc
	}
	proc["args"] = append([]string{bundleExe}, args...)
	proc["terminal"] = false
	proc["cwd"] = "/"
	if _, ok := proc["user"]; !ok {
		proc["user"] = map[string]any{"uid": 0, "gid": 0}
	}
	cfg["root"] = map[string]any{"path": "rootfs", "readonly": true}
	if _, ok := cfg["ociVersion"]; !ok {
		cfg["ociVersion"] = "1.0.2"
	}
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return err
	}
	rootfs := filepath.Join(dir, "rootfs")
	// Mount points of runc spec's default mounts: a read-only root cannot
	// get them later.
	for _, d := range []string{"proc", "dev", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, strings.TrimPrefix(bundleExe, "/")), exe, 0o755); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// ExitZeroELF is a complete static Linux executable for goarch (amd64 or
// arm64) whose only work is exit(0): one ELF header, one loadable segment
// and three instructions. It is the container's program when the baseline
// is meant to measure runc alone, with no runtime or libc start-up.
func ExitZeroELF(goarch string) ([]byte, error) {
	var machine elf.Machine
	var code []byte
	switch goarch {
	case "amd64":
		machine = elf.EM_X86_64
		code = []byte{
			0x31, 0xff, // xor edi, edi     (status 0)
			0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60  (exit)
			0x0f, 0x05, // syscall
		}
	case "arm64":
		machine = elf.EM_AARCH64
		code = binary.LittleEndian.AppendUint32(code, 0xd2800000) // mov x0, #0    (status 0)
		code = binary.LittleEndian.AppendUint32(code, 0xd2800ba8) // mov x8, #93   (exit)
		code = binary.LittleEndian.AppendUint32(code, 0xd4000001) // svc #0
	default:
		return nil, fmt.Errorf("no built-in exit(0) program for %s: give a static executable (--runc-bin)", goarch)
	}
	const (
		base    = 0x400000
		ehsize  = 64
		phsize  = 56
		codeOff = ehsize + phsize
	)
	size := uint64(codeOff + len(code))
	le := binary.LittleEndian
	var b []byte
	b = append(b, 0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), byte(elf.ELFOSABI_NONE))
	b = append(b, make([]byte, 8)...) // ABI version and padding
	b = le.AppendUint16(b, uint16(elf.ET_EXEC))
	b = le.AppendUint16(b, uint16(machine))
	b = le.AppendUint32(b, uint32(elf.EV_CURRENT))
	b = le.AppendUint64(b, base+codeOff) // entry
	b = le.AppendUint64(b, ehsize)       // program headers
	b = le.AppendUint64(b, 0)            // no section headers
	b = le.AppendUint32(b, 0)            // flags
	b = le.AppendUint16(b, ehsize)
	b = le.AppendUint16(b, phsize)
	b = le.AppendUint16(b, 1) // one program header
	b = le.AppendUint16(b, 64)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	// PT_LOAD: the whole file, read and execute, at base.
	b = le.AppendUint32(b, uint32(elf.PT_LOAD))
	b = le.AppendUint32(b, uint32(elf.PF_R|elf.PF_X))
	b = le.AppendUint64(b, 0)    // offset
	b = le.AppendUint64(b, base) // vaddr
	b = le.AppendUint64(b, base) // paddr
	b = le.AppendUint64(b, size) // file size
	b = le.AppendUint64(b, size) // memory size
	b = le.AppendUint64(b, 0x1000)
	return append(b, code...), nil
}
