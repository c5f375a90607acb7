package server_test

// The hostile-function suite: a function (testdata/hostile) tries to escape
// its sandbox and to exhaust its resources, each attempt from inside a real
// sandbox of a real server; every escape must be refused, every exhaustion
// contained — while a well-behaved function, invoked in a loop during the
// whole suite, keeps succeeding every time.

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"golang.org/x/sys/unix"

	"github.com/owl-project/owl/internal/testkit"
)

// hostileBinary is testdata/hostile, built once per run.
func hostileBinary(t testing.TB) string {
	t.Helper()
	bin, err := testkit.Build("./testdata/hostile")
	if err != nil {
		t.Fatalf("building the hostile function: %v", err)
	}
	return bin
}

// hostileZip is the hostile function as bootstrap, plus extra host files.
func hostileZip(t testing.TB, extra map[string]string) []byte {
	t.Helper()
	files := map[string]string{"bootstrap": hostileBinary(t)}
	for name, path := range extra {
		files[name] = path
	}
	zip, err := zipFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	return zip
}

// createHostile creates a hostile function; memMB 0 keeps the default.
func (ts *testServer) createHostile(name string, memMB, timeoutS int32, mutate ...func(*lambda.CreateFunctionInput)) {
	ts.t.Helper()
	ts.createKitchensink(name, append([]func(*lambda.CreateFunctionInput){func(in *lambda.CreateFunctionInput) {
		in.Code = &types.FunctionCode{ZipFile: hostileZip(ts.t, nil)}
		if memMB > 0 {
			in.MemorySize = aws.Int32(memMB)
		}
		if timeoutS > 0 {
			in.Timeout = aws.Int32(timeoutS)
		}
	}}, mutate...)...)
}

// decode unmarshals a successful invocation's payload.
func decode(t *testing.T, r invokeResult, v any) {
	t.Helper()
	if r.funcErr != "" {
		t.Fatalf("function error %s: %s\n%s", r.funcErr, r.payload, r.log)
	}
	if err := json.Unmarshal([]byte(r.payload), v); err != nil {
		t.Fatalf("payload %s: %v", r.payload, err)
	}
}

func TestHostileFunctions(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	hostileBinary(t) // built before the bystander starts counting

	// The bystander: a well-behaved function invoked over and over while
	// the hostile ones run. Every invocation must succeed.
	ts.createKitchensink("bystander")
	var (
		bystanderOK   atomic.Int64
		bystanderMu   sync.Mutex
		bystanderErrs []string // guarded by bystanderMu
	)
	stop := make(chan struct{})
	var loop sync.WaitGroup
	loop.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			name := fmt.Sprintf("bg-%d", i)
			r, err := ts.tryInvoke("bystander", `{"name":"`+name+`"}`)
			if err == nil && r.funcErr == "" && r.payload == `{"message":"hello `+name+`"}` {
				bystanderOK.Add(1)
				continue
			}
			bystanderMu.Lock()
			bystanderErrs = append(bystanderErrs, fmt.Sprintf("invocation %d: %v %s %s", i, err, r.funcErr, r.payload))
			bystanderMu.Unlock()
		}
	})

	t.Run("attacks", func(t *testing.T) {
		t.Run("escapes", func(t *testing.T) { t.Parallel(); hostileEscapes(t, ts.as(t)) })
		t.Run("privileges", func(t *testing.T) { t.Parallel(); hostilePrivileges(t, ts.as(t)) })
		t.Run("foreign syscall ABIs", func(t *testing.T) { t.Parallel(); hostileForeignABIs(t, ts.as(t)) })
		t.Run("out of memory", func(t *testing.T) { t.Parallel(); hostileOOM(t, ts.as(t)) })
		t.Run("fork bomb", func(t *testing.T) { t.Parallel(); hostileForkBomb(t, ts.as(t)) })
		t.Run("busy loop", func(t *testing.T) { t.Parallel(); hostileBusyLoop(t, ts.as(t)) })
		t.Run("fill tmp", func(t *testing.T) { t.Parallel(); hostileFillTmp(t, ts.as(t)) })
		t.Run("open files", func(t *testing.T) { t.Parallel(); hostileOpenFiles(t, ts.as(t)) })
		t.Run("log flood", func(t *testing.T) { t.Parallel(); hostileLogFlood(t, ts.as(t)) })
		t.Run("isolation", func(t *testing.T) { t.Parallel(); hostileIsolation(t, ts.as(t)) })
	})

	close(stop)
	loop.Wait()
	bystanderMu.Lock()
	defer bystanderMu.Unlock()
	for _, e := range bystanderErrs {
		t.Errorf("the bystander failed while hostile functions ran: %s", e)
	}
	if n := bystanderOK.Load(); n < 5 {
		t.Errorf("the bystander succeeded only %d times during the suite", n)
	}
	t.Logf("the bystander succeeded %d times during the suite", bystanderOK.Load())
}

const (
	eperm   = "operation not permitted"
	enoent  = "no such file or directory"
	erofs   = "read-only file system"
	enosys  = "function not implemented"
	esrch   = "no such process"
	zeroCap = "0000000000000000"
)

func hostileEscapes(t *testing.T, ts *testServer) {
	ts.createHostile("escapes", 0, 0)
	var r map[string]string
	decode(t, ts.invoke("escapes", fmt.Sprintf(`{"action":"escapes","dataDir":%q,"hostPid":%d}`, ts.dataDir, os.Getpid())), &r)
	want := map[string]string{
		// The filesystem: read-only, and no host data.
		"write /": erofs, "write /usr": erofs, "write /var/task": erofs, "write /etc": erofs,
		"write /opt": erofs, "write /var/runtime": erofs, "write /dev": erofs,
		"read /etc/shadow": enoent, "list data dir": enoent, "read credentials": enoent,
		"stat /root": enoent, "stat /home": enoent, "stat /sys": enoent,
		// Kernel modules, mounts and namespaces.
		"init_module": eperm, "finit_module": eperm, "delete_module": eperm,
		"mount": eperm, "umount": eperm, "fsopen": eperm,
		"unshare user": eperm, "unshare mount": eperm,
		"clone newuser": eperm, "clone newns": eperm, "clone newpid": eperm, "clone3": enosys,
		"plain fork": "ok", // ordinary processes still work
		"setns":      eperm, "chroot": eperm, "pivot_root": eperm,
		// Other processes and the kernel.
		"ptrace host pid": eperm, "ptrace traceme": eperm, "kill host pid": esrch,
		"bpf": eperm, "perf_event_open": eperm, "userfaultfd": eperm, "io_uring_setup": eperm,
		"add_key": eperm, "keyctl": eperm, "kexec_load": eperm, "reboot": eperm, "swapon": eperm,
		"open_by_handle_at": eperm, "setuid 0": eperm,
		// Raw network access.
		"socket AF_PACKET": eperm, "socket SOCK_RAW": eperm,
		// Devices and /proc.
		"stat /dev/sda": enoent, "stat /dev/kvm": enoent, "stat /dev/mem": enoent,
		"mknod block": eperm, "mknod char": eperm,
		"write /proc/sys": erofs,
		"/dev":            "fd full null random shm stderr stdin stdout urandom zero",
	}
	for k, w := range want {
		if r[k] != w {
			t.Errorf("%s: %q, want %q", k, r[k], w)
		}
	}
	t.Logf("escape attempts: %v", r)
	if kc := r["read /proc/kcore"]; kc != "0 bytes" && kc != enoent {
		t.Errorf("read /proc/kcore: %q, want masked (0 bytes) or absent", kc)
	}
	if w := r["write /proc/sysrq-trigger"]; w == "ok" {
		t.Error("the function wrote /proc/sysrq-trigger")
	}
	for _, p := range strings.Fields(r["/proc comms"]) {
		if _, comm, _ := strings.Cut(p, ":"); comm != "bootstrap" {
			t.Errorf("the function sees process %s (all: %s)", p, r["/proc comms"])
		}
	}
	if len(r) != len(want)+3 {
		t.Errorf("%d results for %d expectations: keep hostile_test.go and testdata/hostile in step", len(r), len(want)+3)
	}
}

func hostilePrivileges(t *testing.T, ts *testServer) {
	ts.createHostile("privileges", 0, 0)
	var r map[string]string
	decode(t, ts.invoke("privileges", `{"action":"status"}`), &r)
	want := map[string]string{
		"CapInh": zeroCap, "CapPrm": zeroCap, "CapEff": zeroCap, "CapBnd": zeroCap, "CapAmb": zeroCap,
		"NoNewPrivs": "1", "Seccomp": "2", "Uid": "993 993 993 993", "Gid": "990 990 990 990", "Groups": "",
		"RLIMIT_NOFILE": "1024 1024", "RLIMIT_CORE": "0 0",
	}
	for k, w := range want {
		if r[k] != w {
			t.Errorf("%s = %q, want %q", k, r[k], w)
		}
	}
}

// hostileForeignABIs: a syscall of the x32 ABI or of i386 (int 0x80) kills
// the function, which the caller sees as Runtime.ExitError.
func hostileForeignABIs(t *testing.T, ts *testServer) {
	ts.createHostile("abis", 0, 0)
	// Each probe calls exit_group(43) through a foreign ABI. Hosts refuse
	// that in different ways — Owl's seccomp filter kills the process
	// (SIGSYS), a kernel without IA32 emulation faults int 0x80 (SIGSEGV,
	// which the Go runtime turns into exit status 2), another returns
	// ENOSYS — and each is fine. What matters: the call did not take effect
	// (no exit status 43), and the function runs again.
	for _, action := range []string{"x32", "int80"} {
		r := ts.invoke("abis", `{"action":"`+action+`"}`)
		if r.payload == `"unsupported"` {
			continue // int 0x80 exists only on amd64
		}
		if strings.Contains(r.payload, "exit status 43") {
			t.Errorf("%s: the foreign exit_group(43) took effect: %s", action, r.payload)
		}
		if r.funcErr == "" && !strings.Contains(r.payload, "returned") {
			t.Errorf("%s: neither refused nor returned: %s", action, r.payload)
		}
		if r.funcErr != "" {
			wantFunctionError(t, r, "Runtime.ExitError", "Runtime exited with error: ")
			ts.wantHostileRecovers("abis")
		}
	}
	if r := ts.invoke("abis", `{"action":"status"}`); r.funcErr != "" {
		t.Errorf("abis after the probes: %s %s", r.funcErr, r.payload)
	}
}

// wantHostileRecovers checks that a function whose environment was killed
// runs again, in a fresh environment.
func (ts *testServer) wantHostileRecovers(name string) {
	ts.t.Helper()
	r := ts.invoke(name, `{"action":"status"}`)
	if r.funcErr != "" || !parseReport(ts.t, r.log).cold {
		ts.t.Errorf("%s after its environment died: %s %s (want a cold start)", name, r.funcErr, r.payload)
	}
}

func hostileOOM(t *testing.T, ts *testServer) {
	ts.createHostile("oom", 128, 10)
	r := ts.invoke("oom", `{"action":"oom"}`)
	wantFunctionError(t, r, "Runtime.ExitError", "Runtime exited with error: signal: killed")
	if rep := parseReport(t, r.log); rep.maxMB > 128 {
		t.Errorf("Max Memory Used %d MB of 128", rep.maxMB)
	}
	ts.wantHostileRecovers("oom")
}

func hostileForkBomb(t *testing.T, ts *testServer) {
	ts.createHostile("forkbomb", 1769, 20)
	r := ts.invoke("forkbomb", `{"action":"forkbomb"}`)
	if r.funcErr != "" {
		// The Go runtime of the function may itself fail to start a thread
		// at the limit and die: contained all the same.
		wantFunctionError(t, r, "Runtime.ExitError", "Runtime exited with error")
	} else {
		var out struct {
			Started int
			Err     string
		}
		decode(t, r, &out)
		if out.Err != "resource temporarily unavailable" || out.Started < 900 || out.Started >= 1024 {
			t.Errorf("fork bomb: %d processes, then %q; want EAGAIN before the 1024 pids limit", out.Started, out.Err)
		}
		t.Logf("the fork bomb got %d processes, then %s", out.Started, out.Err)
	}
	r = ts.invoke("forkbomb", `{"action":"status"}`)
	if r.funcErr != "" {
		t.Errorf("after the fork bomb: %s %s", r.funcErr, r.payload)
	}
}

func hostileBusyLoop(t *testing.T, ts *testServer) {
	ts.createHostile("spin", 128, 1)
	start := time.Now()
	r := ts.invoke("spin", `{"action":"spin"}`)
	wantFunctionError(t, r, "Sandbox.Timedout", "Task timed out after 1.00 seconds")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a 1 s timeout took %v", d)
	}
	ts.wantHostileRecovers("spin")
}

// hostileFillTmp: /tmp is disk, as on Lambda, not memory: a 128 MB
// function writes its 512 MB /tmp full and gets ENOSPC there, not an OOM
// kill on the way.
func hostileFillTmp(t *testing.T, ts *testServer) {
	// Writing 512 MB at 128/1769 of a CPU takes a while on a loaded
	// machine: a timeout for the property, not the speed.
	ts.createHostile("filltmp", 128, 120, func(in *lambda.CreateFunctionInput) {
		in.EphemeralStorage = &types.EphemeralStorage{Size: aws.Int32(512)}
	})
	var out struct {
		Written int
		Err     string
	}
	decode(t, ts.invoke("filltmp", `{"action":"filltmp"}`), &out)
	if out.Err != "no space left on device" || out.Written < 511<<20 || out.Written > 516<<20 {
		t.Errorf("filling /tmp: wrote %d bytes, then %q; want ENOSPC at 512 MB", out.Written, out.Err)
	}
}

// diskUsage is the bytes allocated to the files under dir.
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // files come and go meanwhile
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

func hostileOpenFiles(t *testing.T, ts *testServer) {
	ts.createHostile("openfiles", 0, 0)
	var out struct {
		Opened int
		Err    string
	}
	decode(t, ts.invoke("openfiles", `{"action":"openfiles"}`), &out)
	if out.Err != "too many open files" || out.Opened < 1000 || out.Opened >= 1024 {
		t.Errorf("opened %d files, then %q; want EMFILE just before 1024", out.Opened, out.Err)
	}
}

func hostileLogFlood(t *testing.T, ts *testServer) {
	ts.createHostile("flood", 512, 30)
	const flood = 100 << 20
	r := ts.invoke("flood", fmt.Sprintf(`{"action":"flood","bytes":%d}`, flood))
	var out struct{ Written, Ms int }
	decode(t, r, &out)
	if out.Written < flood {
		t.Errorf("the function wrote %d bytes of %d: it did not keep running", out.Written, flood)
	}
	marker := "[owl] log output truncated: this invocation wrote more than 1048576 bytes"
	if !strings.Contains(r.log, marker) {
		t.Errorf("the log tail lacks the truncation marker:\n%s", r.log)
	}
	// The stored log of the function: one invocation, cut at the limit.
	text := ts.logText("flood")
	if strings.Count(text, marker) != 1 || len(text) > 1<<20+64<<10 {
		t.Errorf("stored log: %d bytes with %d markers; want at most ~1 MiB and one marker", len(text), strings.Count(text, marker))
	}
	t.Logf("the function wrote %d MB in %d ms", out.Written>>20, out.Ms)
}

// hostileIsolation: function A leaves a secret in /tmp, its environment
// and a running process; function B finds none of them, nor A's code.
func hostileIsolation(t *testing.T, ts *testServer) {
	secret := fmt.Sprintf("s3cr3t%d", time.Now().UnixNano())
	aOnly := filepath.Join(t.TempDir(), "a-only.txt")
	if err := os.WriteFile(aOnly, []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	ts.createKitchensink("iso-a", func(in *lambda.CreateFunctionInput) {
		in.Code = &types.FunctionCode{ZipFile: hostileZip(t, map[string]string{"a-only.txt": aOnly})}
		in.Environment = &types.Environment{Variables: map[string]string{"SECRET": secret}}
	})
	ts.createHostile("iso-b", 0, 0)
	var envA []string
	decode(t, ts.invoke("iso-a", `{"action":"secret","secret":"`+secret+`"}`), &envA)
	if !slices.Contains(envA, "SECRET="+secret) {
		t.Fatalf("A's environment lacks its SECRET: %v", envA)
	}
	var b struct {
		Tmp, Procs, Env, Task []string
		Read                  string
		EnvHasSecret          bool
	}
	decode(t, ts.invoke("iso-b", `{"action":"peek","secret":"`+secret+`"}`), &b)
	if len(b.Tmp) != 0 || b.Read != enoent {
		t.Errorf("B's /tmp: %v, reading A's secret: %q; want empty and ENOENT", b.Tmp, b.Read)
	}
	if b.EnvHasSecret {
		t.Errorf("B's environment shows A's secret: %v", b.Env)
	}
	if slices.Contains(b.Task, "a-only.txt") || !slices.Contains(b.Task, "bootstrap") {
		t.Errorf("B's /var/task: %v", b.Task)
	}
	for _, p := range b.Procs {
		if _, comm, _ := strings.Cut(p, ":"); comm != "bootstrap" {
			t.Errorf("B sees process %s (all: %v)", p, b.Procs)
		}
	}
	// And A, invoked again warm, still has its own.
	var a struct{ Tmp, Procs []string }
	decode(t, ts.invoke("iso-a", `{"action":"peek","secret":"`+secret+`"}`), &a)
	if !slices.Contains(a.Tmp, "secret-"+secret) || !slices.ContainsFunc(a.Procs, func(p string) bool { return strings.HasSuffix(p, ":sleep") }) {
		t.Errorf("A's own /tmp %v and processes %v lack what it left", a.Tmp, a.Procs)
	}
}
