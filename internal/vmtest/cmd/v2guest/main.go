// Command v2guest runs Owl's cgroup-facing tests inside a qemu guest with a
// pure cgroup v2 hierarchy (kernel command line cgroup_no_v1=all), so that
// internal/sandbox's v2 code runs for real on hosts with v1 or hybrid
// cgroups. As root, from anywhere in the repository:
//
//	go run ./internal/vmtest/cmd/v2guest     # or: bash .ci/v2guest
//
// It builds the test binaries of internal/sandbox and internal/server on
// the host, a static copy of itself as the guest's /init, boots Debian's
// kernel from /boot with qemu (KVM when qemu can run a guest on it, else TCG), and
// exits 1 if a test failed in a guest that ran them all, 2 if the guest did
// not boot, did not finish or timed out (also on a set-up error). The same binary is the guest init: run as pid 1 (or as the init's
// test runner) it calls vmtest.Guest. The tests and their filters are in the guestTests table
// below; package vmtest has the design.
//
// Arguments after the flags go to the test binaries, after the table's own
// (as go test -args; the last value of a flag wins), for instance a
// benchmark instead of the tests:
//
//	bash .ci/v2guest -run sandbox -timeout 90m -- -test.run '^$' -test.bench OOMKill -test.benchtime 5x
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/owl-project/owl/internal/vmtest"
)

// guestTest is one test binary run in the guest.
type guestTest struct {
	pkg string // package directory, relative to the module root
	// run is -test.run: under KVM, and under TCG unless tcgRun is set.
	run, tcgRun string
	// tcgSkip is -test.skip under TCG.
	tcgSkip string
	// parallel is -test.parallel (0: the default, GOMAXPROCS).
	parallel int
	timeout  time.Duration
}

// serverTests are the internal/server tests that reach cgroups: the limits
// seen inside and the peak-memory REPORT, the freezer, OOM and other
// kills, the fork bomb and memory exhaustion, pre-warming (limits raised on
// specialisation), the memory budget cgroup and eviction, overcommit,
// teardown after shutdown and after a crash, many concurrent clones into
// cgroups, egress (nft in the guest).
var serverTests = []string{
	"TestSandboxFacts",
	"TestConcurrentInvokes",
	"TestIdleEnvironmentsAreFrozenAndThawedOnUse",
	"TestFreezingCanBeTurnedOff",
	"TestFunctionFailures",
	"TestHostileFunctions",
	"TestPrewarmedEnvironments",
	"TestPrewarmDisabled",
	"TestMemoryBudgetEvictsAndRefuses",
	"TestMemoryBudgetCgroup",
	"TestOvercommittedNodeKillsFunctionsNotOwl",
	"TestKeepAliveAndMaxLifetime",
	"TestNothingLeftAfterShutdown",
	"TestOwlServeCrash",
	"TestNetworkEgress",
	"TestNetworkAfterCrash",
}

// serverTestsTCG is what of serverTests runs under TCG. The others start
// environments against Lambda's deadlines (10 s init, a function's 3 s
// timeout), which a guest ~20 times slower than the host misses: Go, Python
// and Node.js cold starts time out there, the more so on a loaded machine
// (docs/benchmarks-history.md). -full runs serverTests anyway.
var serverTestsTCG = []string{"TestMemoryBudgetCgroup"}

func anyOf(names []string) string { return "^(" + strings.Join(names, "|") + ")$" }

// guestTests is what runs in the guest, chosen to cover every place Owl
// touches cgroups; under TCG cut to what fits CI's budget and the tests'
// deadlines (docs/benchmarks-history.md has the times). internal/worker has no test
// that creates sandboxes.
var guestTests = []guestTest{
	// The whole package: limits (TestMemoryLimit, TestCgroupSetup), the
	// freezer, kill and removal (TestFreezeThaw, TestDestroy, TestCrashedOwl,
	// TestCleanupStale), CLONE_INTO_CGROUP spares (TestSpares,
	// TestConcurrentCreate, TestCgroupV2), specialisation (TestSpecialize),
	// egress. Its waits are generous (internal/sandbox's patience), so it
	// runs whole under TCG too.
	{pkg: "internal/sandbox", timeout: 10 * time.Minute},
	// One test at a time: the tests' deadlines assume a machine of their own.
	{pkg: "internal/server", run: anyOf(serverTests), tcgRun: anyOf(serverTestsTCG), parallel: 1, timeout: 10 * time.Minute},
}

func main() {
	if vmtest.InGuest() {
		vmtest.Guest() // never returns
	}
	os.Exit(host())
}

func host() int {
	// 30 minutes: the binaries' own timeouts (10 min each, then 2 min of
	// grace) and the boot, so a hung guest costs CI at most that, twice
	// under TCG (.ci/run runs a failed TCG guest once more).
	timeout := flag.Duration("timeout", 30*time.Minute, "bound on the guest's boot and run")
	memMB := flag.Int("memory", 6144, "guest memory in MB")
	cpus := flag.Int("smp", 0, "guest CPUs (default: 2 with KVM, 1 under TCG)")
	kernel := flag.String("kernel", "", "guest kernel image (default: newest /boot/vmlinuz-* with modules)")
	keep := flag.Bool("keep", false, "keep the scratch directory (test binaries, test.log, report.json) and print its path")
	run := flag.String("run", "", "only the test binaries whose package contains this string (e.g. sandbox)")
	verbose := flag.Bool("v", false, "log the qemu command line")
	full := flag.Bool("full", false, "under TCG too, run every test of the KVM list (they time out against Lambda's deadlines there)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: v2guest [flags] [-- test binary flags, e.g. -test.run '^$' -test.bench OOMKill]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	extra := flag.Args()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if os.Geteuid() != 0 {
		log.Error("v2guest needs root: the tests in the guest create sandboxes, and the 9p export of / must read every file")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := moduleRoot()
	if err != nil {
		log.Error("finding the module root", "err", err)
		return 2
	}
	scratch, err := os.MkdirTemp("", "owl-v2guest-")
	if err != nil {
		log.Error("making the scratch directory", "err", err)
		return 2
	}
	if *keep {
		log.Info("keeping the scratch directory", "dir", scratch)
	} else {
		defer os.RemoveAll(scratch)
	}
	tests := selectTests(*run, extra, *timeout)
	kvm, why := vmtest.KVMUsable("qemu-system-x86_64", *kernel)
	accel := "kvm"
	if !kvm {
		accel = "tcg"
		log.Info("the guest runs under TCG", "why", why)
	}
	tcg := !kvm && !*full
	plan, initBin, err := prepare(ctx, log, root, scratch, tests, tcg, extra)
	if err != nil {
		log.Error("preparing the guest", "err", err)
		return 2
	}
	oc, err := vmtest.Run(ctx, vmtest.Options{
		Kernel: *kernel, MemoryMB: *memMB, CPUs: guestCPUs(*cpus, kvm), Accel: accel, Init: initBin, Scratch: scratch,
		Plan: plan, Timeout: *timeout, Console: os.Stdout, Log: log,
	})
	if oc != nil {
		summarize(oc)
	}
	if err != nil {
		log.Error("cgroup v2 guest run failed", "err", err)
		// 1: the guest booted and ran every test, and one failed; 2: it
		// did not boot, did not finish or timed out (.ci/run tells them apart).
		if oc != nil && oc.Report != nil && oc.Report.Done && oc.Report.Err == "" {
			return 1
		}
		return 2
	}
	fmt.Println("v2guest: PASS")
	return 0
}

// guestCPUs is the guest's vCPU count: asked (n > 0), else 2 with KVM
// and 1 under TCG, where one ran the tests as fast as two and leaves
// fewer emulated parts to go wrong (package vmtest has the hangs that
// led to it).
func guestCPUs(n int, kvm bool) int {
	switch {
	case n > 0:
		return n
	case kvm:
		return 2
	}
	return 1
}

// selectTests returns the guestTests whose package contains run. With
// extra test binary flags, a binary's timeout is the whole run's: what it
// runs is then the caller's choice (a benchmark, say), which the table's
// budget for its tests does not bound.
func selectTests(run string, extra []string, runTimeout time.Duration) []guestTest {
	var tests []guestTest
	for _, t := range guestTests {
		if strings.Contains(t.pkg, run) {
			if len(extra) > 0 {
				t.timeout = runTimeout
			}
			tests = append(tests, t)
		}
	}
	return tests
}

// summarize prints the times and each test binary's result.
func summarize(oc *vmtest.Outcome) {
	fmt.Printf("v2guest: %s, accel %s, qemu wall time %.1fs\n", oc.Kernel, oc.Accel, oc.Wall.Seconds())
	r := oc.Report
	if r == nil {
		return
	}
	fmt.Printf("v2guest: kernel boot to init %.1fs, to tests running %.1fs\n", r.InitUptime, r.ReadyUptime)
	for _, res := range r.Results {
		verdict := "ok"
		if res.Failed() {
			verdict = "FAIL"
		}
		fmt.Printf("v2guest: %-4s %s in %.1fs (exit %d) %s\n", verdict, res.Name, res.Seconds, res.ExitCode, res.Err)
	}
}

// prepare builds the test binaries and the guest init into scratch,
// warms the Go build cache with what the tests build at run time (so the
// guest, much slower under TCG, only links) and returns the plan. extra
// are flags for every test binary.
func prepare(ctx context.Context, log *slog.Logger, root, scratch string, tests []guestTest, tcg bool, extra []string) (vmtest.Plan, string, error) {
	var plan vmtest.Plan
	bin := filepath.Join(scratch, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		return plan, "", err
	}
	initBin := filepath.Join(scratch, "init")
	start := time.Now()
	if err := goCmd(ctx, root, []string{"CGO_ENABLED=0"}, "build", "-o", initBin, "./internal/vmtest/cmd/v2guest"); err != nil {
		return plan, "", err
	}
	pkgs := []string{"test", "-c", "-o", bin + "/"}
	for _, t := range tests {
		pkgs = append(pkgs, "./"+t.pkg)
	}
	if err := goCmd(ctx, root, nil, pkgs...); err != nil {
		return plan, "", err
	}
	// What the tests go build at run time: testdata programs and cmd/owl,
	// with the environment the tests use.
	warm := []string{"build", "-o", os.DevNull, "./cmd/owl"}
	for _, t := range tests {
		dirs, _ := filepath.Glob(filepath.Join(root, t.pkg, "testdata", "*", "*.go"))
		for _, f := range dirs {
			if d := "./" + mustRel(root, filepath.Dir(f)); !slices.Contains(warm, d) {
				warm = append(warm, d)
			}
		}
	}
	for _, pkg := range warm[3:] {
		if err := goCmd(ctx, root, []string{"CGO_ENABLED=0", "GOFLAGS=-buildvcs=false"}, "build", "-o", os.DevNull, pkg); err != nil {
			return plan, "", err
		}
	}
	log.Info("built the test binaries and the guest init", "seconds", time.Since(start).Round(time.Millisecond))

	env, err := goEnv(ctx, root, "GOROOT", "GOCACHE", "GOMODCACHE", "GOPATH", "GOFLAGS", "GOENV")
	if err != nil {
		return plan, "", err
	}
	plan.Env = []string{
		"PATH=" + env["GOROOT"] + "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/tmp/home", "TMPDIR=/tmp", "USER=root", "LANG=C.UTF-8",
		"GOCACHE=" + env["GOCACHE"], "GOMODCACHE=" + env["GOMODCACHE"], "GOPATH=" + env["GOPATH"],
		"GOENV=" + env["GOENV"],
		// No network in the guest; the module cache is read-only there.
		"GOPROXY=off", "GOTOOLCHAIN=local", "GOTELEMETRY=off",
		// Not git: the checkout is read-only in the guest.
		"GOFLAGS=" + strings.TrimSpace(env["GOFLAGS"]+" -buildvcs=false"),
	}
	// The build cache is shared writable: the tests' go build of testdata
	// and cmd/owl find the host's compiled packages there.
	if err := os.MkdirAll(env["GOCACHE"], 0o755); err != nil {
		return plan, "", err
	}
	plan.Shares = []vmtest.Share{{Tag: "gocache", Path: env["GOCACHE"]}}
	plan.Tmpfs = []string{"/tmp", "/run", "/var/tmp"}
	// A checkout under one of those (CI's clone may be in /tmp) would be
	// hidden by its tmpfs: it comes as a share of its own, mounted over it.
	for _, d := range plan.Tmpfs {
		if root == d || strings.HasPrefix(root, d+"/") {
			plan.Shares = append(plan.Shares, vmtest.Share{Tag: "src", Path: root})
			break
		}
	}
	// No Node.js in the guest: under TCG, V8's JIT needs more than
	// Lambda's 10 s init limit to start, so every pre-warmed Node.js
	// environment times out, and their retries starve the other tests.
	// Pre-warming is covered with Python; Node.js adds nothing cgroup-wise.
	if _, err := os.Stat("/usr/bin/node"); err == nil {
		plan.Hide = append(plan.Hide, "/usr/bin/node")
	}
	for _, t := range tests {
		plan.Tests = append(plan.Tests, testRun(t, root, bin, tcg, extra))
	}
	return plan, initBin, nil
}

// testRun is how the guest runs t's test binary (built into bin; its
// source in root): the table's filters, under TCG its TCG ones, then extra,
// which win over them (the flag package keeps a flag's last value).
func testRun(t guestTest, root, bin string, tcg bool, extra []string) vmtest.TestRun {
	args := []string{"-test.count=1", "-test.v", "-test.timeout=" + t.timeout.String()}
	run, skip := t.run, ""
	if tcg {
		if t.tcgRun != "" {
			run = t.tcgRun
		}
		skip = t.tcgSkip
	}
	if run != "" {
		args = append(args, "-test.run="+run)
	}
	if skip != "" {
		args = append(args, "-test.skip="+skip)
	}
	if t.parallel > 0 {
		args = append(args, "-test.parallel="+strconv.Itoa(t.parallel))
	}
	args = append(args, extra...)
	return vmtest.TestRun{
		Name: t.pkg, Binary: filepath.Join(bin, filepath.Base(t.pkg)+".test"), Dir: filepath.Join(root, t.pkg),
		Args: args, TimeoutSeconds: int((t.timeout + 2*time.Minute).Seconds()),
	}
}

func goCmd(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func goEnv(ctx context.Context, dir string, names ...string) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"env", "-json"}, names...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	env := map[string]string{}
	if err := json.Unmarshal(out, &env); err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	return env, nil
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module (run from the Owl repository)")
	}
	return filepath.Dir(mod), nil
}

func mustRel(base, p string) string {
	r, err := filepath.Rel(base, p)
	if err != nil {
		return p
	}
	return r
}
