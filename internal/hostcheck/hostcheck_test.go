package hostcheck

import (
	"github.com/owl-project/owl/internal/diskspace"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Mount tables of the three cgroup layouts, as /proc/self/mountinfo.
const (
	mountsV2 = `22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
25 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw,nsdelegate
`
	mountsHybrid = `25 22 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
28 25 0:26 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
29 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
30 25 0:28 / /sys/fs/cgroup/freezer rw,nosuid - cgroup cgroup rw,freezer
`
)

// fakeRoot writes files (path → content) under a temp dir and returns a
// Host reading it, as root, with no probes.
func fakeRoot(t *testing.T, files map[string]string) Host {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(p, "/") {
			continue // a directory
		}
		if target, isLink := strings.CutPrefix(content, "->"); isLink {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Host{RootDir: root}
}

// v2Tree is a healthy cgroup v2 host's files.
func v2Tree() map[string]string {
	return map[string]string{
		"proc/self/mountinfo":                        mountsV2,
		"sys/fs/cgroup/cgroup.controllers":           "cpuset cpu io memory hugetlb pids rdma misc\n",
		"sys/fs/cgroup/cgroup.subtree_control":       "cpu memory pids\n",
		"sys/fs/cgroup/cgroup.procs":                 "1\n",
		"sys/fs/cgroup/system.slice/cpu.weight":      "100\n",
		"sys/fs/cgroup/system.slice/cpu.max":         "max 100000\n",
		"sys/fs/cgroup/system.slice/memory.max":      "max\n",
		"sys/fs/cgroup/system.slice/memory.swap.max": "max\n",
	}
}

// hybridTree is a healthy hybrid host's files.
func hybridTree() map[string]string {
	return map[string]string{
		"proc/self/mountinfo":                              mountsHybrid,
		"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":       "-1\n",
		"sys/fs/cgroup/memory/memory.memsw.limit_in_bytes": "9223372036854771712\n",
		"sys/fs/cgroup/unified/cgroup.controllers":         "",
	}
}

func with(base map[string]string, changes map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range changes {
		if v == "<delete>" {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// want checks a result's status and that its message (and fix) contain
// the given fragments.
func want(t *testing.T, r Result, status Status, inMessage, inFix string) {
	t.Helper()
	if r.Status != status || !strings.Contains(r.Message, inMessage) || !strings.Contains(r.Fix, inFix) {
		t.Errorf("got %s %q (fix %q), want %s with %q (fix with %q)", r.Status, r.Message, r.Fix, status, inMessage, inFix)
	}
	if (r.Status == OK) != (r.Fix == "") {
		t.Errorf("%s result with fix %q", r.Status, r.Fix)
	}
}

func TestParseRelease(t *testing.T) {
	for in, out := range map[string]string{"6.1.0-18-amd64\n": "6.1", "5.15.0-91-generic": "5.15", "4.19": "4.19"} {
		v, err := parseRelease(in)
		if err != nil || v.String() != out {
			t.Errorf("parseRelease(%q) = %v, %v; want %s", in, v, err, out)
		}
	}
	if _, err := parseRelease("linux"); err == nil {
		t.Error("parseRelease accepted a release without a version")
	}
}

func TestKernel(t *testing.T) {
	all := Options{NetworkEgress: true, Prewarm: 1}
	for _, c := range []struct {
		release string
		tree    map[string]string
		o       Options
		status  Status
		msg     string
		fix     string
	}{
		{"6.1.0-18-amd64", v2Tree(), all, OK, "memory.peak 5.19", ""},
		{"5.15.0-91-generic", v2Tree(), all, Warn, "without memory.peak (5.19) REPORT lines show Max Memory Used: 0 MB", "upgrade the kernel to 5.19"},
		{"5.10.0", v2Tree(), all, Warn, "without cgroup.kill (5.14)", "OWL_PREWARM=0"},
		{"5.4.0", v2Tree(), all, Fail, "without CONFIG_INTO_CGROUP", ""},
		{"5.4.0", hybridTree(), all, Warn, "without mount_setattr (5.12) pre-warmed environments cannot be specialised", "OWL_PREWARM=0"},
		{"5.4.0", hybridTree(), Options{}, OK, "seccomp", ""},
		{"4.15.0", hybridTree(), all, Fail, "without bridge port isolation (4.18)", "OWL_NETWORK_EGRESS=false"},
		{"4.9.0", hybridTree(), Options{}, Fail, "SECCOMP_RET_KILL_PROCESS", "upgrade the kernel to 4.14"},
		{"not-a-version", v2Tree(), all, Fail, "unrecognised kernel release", "Linux"},
	} {
		t.Run(c.release, func(t *testing.T) {
			if c.msg == "without CONFIG_INTO_CGROUP" {
				c.msg = "without CLONE_INTO_CGROUP (5.7) sandboxes cannot be started"
			}
			h := fakeRoot(t, with(c.tree, map[string]string{"proc/sys/kernel/osrelease": c.release + "\n"}))
			want(t, h.Kernel(c.o), c.status, c.msg, c.fix)
		})
	}
	h := fakeRoot(t, v2Tree())
	want(t, h.Kernel(all), Fail, "cannot read the kernel release", "Linux")
}

func TestCgroups(t *testing.T) {
	for _, c := range []struct {
		name   string
		tree   map[string]string
		status Status
		msg    string
		fix    string
	}{
		{"v2", v2Tree(), OK, "v2: memory, pids and cpu (with CFS bandwidth) available and delegable", ""},
		{"v2 no child yet", with(v2Tree(), map[string]string{"sys/fs/cgroup/system.slice/cpu.weight": "<delete>"}),
			OK, "not verifiable yet", ""},
		{"v2 without pids", with(v2Tree(), map[string]string{"sys/fs/cgroup/cgroup.controllers": "cpu memory\n"}),
			Fail, "controller pids not available", "subtree_control"},
		{"v2 read-only", with(v2Tree(), map[string]string{"proc/self/mountinfo": strings.Replace(mountsV2, "cgroup rw,nosuid", "cgroup ro,nosuid", 1)}),
			Fail, "read-only", "writable"},
		{"v2 namespace root with processes", with(v2Tree(), map[string]string{
			"sys/fs/cgroup/cgroup.subtree_control": "", "sys/fs/cgroup/cgroup.type": "domain\n"}),
			Fail, "memory, pids, cpu cannot be delegated", "child cgroup"},
		{"v2 namespace root, empty", with(v2Tree(), map[string]string{
			"sys/fs/cgroup/cgroup.subtree_control": "", "sys/fs/cgroup/cgroup.type": "domain\n", "sys/fs/cgroup/cgroup.procs": ""}),
			OK, "delegable", ""},
		{"v2 without CFS bandwidth", with(v2Tree(), map[string]string{"sys/fs/cgroup/system.slice/cpu.max": "<delete>"}),
			Fail, "no CFS bandwidth", "CONFIG_CFS_BANDWIDTH"},
		{"hybrid", hybridTree(), OK, "hybrid (Owl uses the v1 controllers): memory, pids, cpu (with CFS bandwidth) and freezer", ""},
		{"v1 without freezer", with(hybridTree(), map[string]string{
			"proc/self/mountinfo": strings.Replace(strings.Replace(mountsHybrid, "rw,freezer", "rw,net_cls", 1), "26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n", "", 1)}),
			Fail, "v1: controller freezer not mounted", "mount"},
		{"v1 read-only", with(hybridTree(), map[string]string{"proc/self/mountinfo": strings.Replace(mountsHybrid, "/sys/fs/cgroup/pids rw", "/sys/fs/cgroup/pids ro", 1)}),
			Fail, "mounted read-only: pids (/sys/fs/cgroup/pids)", "writable cgroupfs"},
		{"v1 without CFS bandwidth", with(hybridTree(), map[string]string{"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "<delete>"}),
			Fail, "no CFS bandwidth", "CONFIG_CFS_BANDWIDTH"},
		{"none", map[string]string{"proc/self/mountinfo": "22 1 0:21 / /sys rw - sysfs sysfs rw\n"},
			Fail, "no cgroup filesystem", "mount"},
		{"no /proc", map[string]string{}, Fail, "mount table", "/proc"},
	} {
		t.Run(c.name, func(t *testing.T) { want(t, fakeRoot(t, c.tree).Cgroups(), c.status, c.msg, c.fix) })
	}
}

func TestNamespaces(t *testing.T) {
	ns := map[string]string{}
	for _, n := range []string{"mnt", "pid", "ipc", "uts", "net"} {
		ns["proc/self/ns/"+n] = "->" + n + ":[4026531840]"
	}
	h := fakeRoot(t, ns)
	probed := 0
	h.ProbeNamespaces = func(context.Context) error { probed++; return nil }
	want(t, h.Namespaces(context.Background()), OK, "a process started in new ones", "")
	if probed != 1 {
		t.Errorf("probe ran %d times", probed)
	}

	h.ProbeNamespaces = func(context.Context) error {
		return fmt.Errorf("starting a process in new namespaces: %w", syscall.EPERM)
	}
	want(t, h.Namespaces(context.Background()), Fail, "operation not permitted", "privileged container")

	h.Euid = 1000
	want(t, h.Namespaces(context.Background()), OK, "not probed", "")

	delete(ns, "proc/self/ns/net")
	want(t, fakeRoot(t, ns).Namespaces(context.Background()), Fail, "net (CONFIG_NET_NS)", "namespaces")
}

func TestSeccomp(t *testing.T) {
	const actions = "proc/sys/kernel/seccomp/actions_avail"
	want(t, fakeRoot(t, map[string]string{actions: "kill_process kill_thread trap errno user_notif trace log allow\n"}).Seccomp(),
		OK, "allow, errno, kill_process", "")
	want(t, fakeRoot(t, map[string]string{actions: "kill_thread trap errno trace allow\n"}).Seccomp(),
		Fail, "kill_process unavailable", "4.14")
	want(t, fakeRoot(t, map[string]string{"proc/self/status": "Name:\towl\nSeccomp:\t0\n"}).Seccomp(),
		Warn, "does not list its filter actions", "4.14")
	want(t, fakeRoot(t, map[string]string{"proc/self/status": "Name:\towl\n"}).Seccomp(),
		Fail, "no seccomp", "seccomp")
}

func TestNft(t *testing.T) {
	ctx := context.Background()
	egress := Options{NetworkEgress: true}
	h := Host{FindNft: func() (string, error) { return "/usr/sbin/nft", nil },
		ProbeNft: func(context.Context, string) error { return nil }}
	want(t, h.Nft(ctx, egress), OK, "/usr/sbin/nft works", "")
	want(t, h.Nft(ctx, Options{}), OK, "egress is off", "")

	h.ProbeNft = func(context.Context, string) error {
		return errors.New("/usr/sbin/nft list tables: exit status 1: Error: Could not process rule: Operation not supported")
	}
	want(t, h.Nft(ctx, egress), Fail, "Operation not supported", "OWL_NETWORK_EGRESS=false")

	h.FindNft = func() (string, error) { return "", errors.New("not found") }
	r := h.Nft(ctx, egress)
	want(t, r, Fail, "nft command (package nftables) is not installed", "apt-get install nftables, or OWL_NETWORK_EGRESS=false")
}

func TestInterpreters(t *testing.T) {
	h := Host{Runtimes: func() []string { return []string{"nodejs18.x", "python3.11"} }}
	want(t, h.Interpreters(), OK, "nodejs18.x, python3.11, and provided", "")
	h.Runtimes = func() []string { return nil }
	want(t, h.Interpreters(), Warn, "only provided runtimes", "apt-get install python3 nodejs")
}

func TestDataDir(t *testing.T) {
	var h Host
	dir := t.TempDir()
	want(t, h.DataDir(Options{DataDir: dir}), OK, dir+" is writable", "")
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the check left %v in the data dir", ents)
	}
	want(t, h.DataDir(Options{DataDir: filepath.Join(dir, "a", "b")}), OK, "does not exist yet; owl serve will create it in "+dir, "")

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	want(t, h.DataDir(Options{DataDir: file}), Fail, "exists and is not a directory", "--data (OWL_DATA)")
	want(t, h.DataDir(Options{DataDir: filepath.Join(file, "data")}), Fail, "cannot be created: "+file+" is not a directory", "--data")
	want(t, h.DataDir(Options{}), Fail, "no data dir", "--data")
}

func TestDisk(t *testing.T) {
	dir := t.TempDir()
	o := Options{DataDir: filepath.Join(dir, "data"), DiskReserveBytes: 128 << 20}
	free := func(n uint64) Host {
		return Host{FreeBytes: func(p string) (uint64, error) {
			if p != dir {
				t.Errorf("statfs of %s, want the nearest existing directory %s", p, dir)
			}
			return n, nil
		}}
	}
	want(t, free(100<<30).Disk(o), OK, "100.0 GiB free on "+dir, "")
	want(t, free(2<<30).Disk(o), Warn, "2.0 GiB free", "larger one")
	want(t, free(150<<20).Disk(o), Fail, "too little to start: Owl needs 208.0 MiB there (128.0 MiB kept free for deletions", "--data")

	// A restart counts back what the store holds already.
	if err := os.MkdirAll(filepath.Join(dir, "data", "nats", "jetstream"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "nats", "jetstream", "blk"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := startNeeds(128<<20, 1<<20), int64(128<<20)+diskspace.MinStartBytes-(1<<20); got != want {
		t.Errorf("startNeeds = %d, want %d", got, want)
	}
	h := Host{FreeBytes: func(string) (uint64, error) { return 0, errors.New("statfs: input/output error") }}
	want(t, h.Disk(o), Fail, "input/output error", "")
}

func TestSwap(t *testing.T) {
	const header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
	const swapOn = header + "/swapfile                               file\t\t2097148\t\t0\t\t-2\n"
	want(t, fakeRoot(t, with(hybridTree(), map[string]string{"proc/swaps": header})).Swap(), OK, "off", "")
	want(t, fakeRoot(t, with(hybridTree(), map[string]string{"proc/swaps": swapOn})).Swap(),
		Warn, "2.0 GiB of swap: functions never swap", "swapoff -a")
	want(t, fakeRoot(t, with(hybridTree(), map[string]string{"proc/swaps": swapOn,
		"sys/fs/cgroup/memory/memory.memsw.limit_in_bytes": "<delete>"})).Swap(),
		Warn, "beyond its MemorySize", "swapaccount=1")
	want(t, fakeRoot(t, with(v2Tree(), map[string]string{"proc/swaps": swapOn})).Swap(), Warn, "functions never swap", "swapoff")
	want(t, fakeRoot(t, with(v2Tree(), map[string]string{"proc/swaps": swapOn,
		"sys/fs/cgroup/system.slice/memory.swap.max": "<delete>"})).Swap(), Warn, "beyond its MemorySize", "swap")
}

func TestUser(t *testing.T) {
	want(t, Host{Euid: 0}.User(), OK, "root", "")
	want(t, Host{Euid: 1000}.User(), Fail, "uid 1000, not root", "sudo owl serve")
}

func TestPort(t *testing.T) {
	// Port 8790 (0x2256) is listened on by socket inode 5555, held by pid 1234.
	h := fakeRoot(t, map[string]string{
		"proc/net/tcp": "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
			"   0: 0100007F:2256 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000000000000000 100 0 0 10 0\n",
		"proc/1234/fd/3": "->socket:[5555]",
		"proc/1234/comm": "nginx\n",
		"proc/99/fd/1":   "->/dev/null",
		"proc/99/comm":   "bash\n",
		"proc/net/tcp6":  "",
	})
	h.Listen = func(string) error { return fmt.Errorf("listen tcp 127.0.0.1:8790: bind: %w", syscall.EADDRINUSE) }
	want(t, h.Port(Options{Addr: "127.0.0.1:8790"}), Fail, "127.0.0.1:8790 is in use by nginx (pid 1234)", "--addr (OWL_ADDR)")
	if r := h.Port(Options{Addr: "127.0.0.1:8791"}); r.Status != Fail || r.Message != "127.0.0.1:8791 is in use" {
		t.Errorf("a port nobody in /proc holds: %+v", r)
	}

	h.Listen = func(string) error { return fmt.Errorf("listen: %w", syscall.EACCES) }
	want(t, h.Port(Options{Addr: ":80"}), Fail, "permission denied", "root")
	h.Listen = func(string) error { return errors.New("listen tcp 10.9.9.9:1: bind: cannot assign requested address") }
	want(t, h.Port(Options{Addr: "10.9.9.9:1"}), Fail, "cannot assign requested address", "address of this host")
	h.Listen = func(string) error { return nil }
	want(t, h.Port(Options{Addr: "127.0.0.1:8790"}), OK, "127.0.0.1:8790 is free", "")
	want(t, h.Port(Options{Addr: "8790"}), Fail, `address "8790": want HOST:PORT`, "--addr")
}

func TestReportRendering(t *testing.T) {
	rep := Report{
		ok("root", "running as root"),
		warn("swap", "2.0 GiB of swap", "swapoff -a"),
		fail("nft", "not installed", "apt-get install nftables"),
	}
	wantText := "ok    root  running as root\n" +
		"warn  swap  2.0 GiB of swap; fix: swapoff -a\n" +
		"fail  nft   not installed; fix: apt-get install nftables\n"
	if got := rep.Text(); got != wantText {
		t.Errorf("Text:\n%s\nwant:\n%s", got, wantText)
	}
	if got := rep.Failed()[0].Line(); got != "nft: not installed; fix: apt-get install nftables" {
		t.Errorf("Line = %q", got)
	}
	if len(rep.Warnings()) != 1 {
		t.Errorf("Warnings = %v", rep.Warnings())
	}
	b, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		OK     bool
		Checks []map[string]string
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.OK || len(out.Checks) != 3 || out.Checks[2]["status"] != "fail" || out.Checks[0]["fix"] != "" || out.Checks[1]["fix"] != "swapoff -a" {
		t.Errorf("JSON: %s", b)
	}
}
