package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/hostcheck"

	"github.com/owl-project/owl/internal/testkit"
)

// fakeChecks makes the host checks return rep and record the options they
// were given.
func fakeChecks(t *testing.T, rep hostcheck.Report) *hostcheck.Options {
	t.Helper()
	got := &hostcheck.Options{}
	saved := runHostChecks
	runHostChecks = func(_ context.Context, o hostcheck.Options) hostcheck.Report {
		*got = o
		return rep
	}
	t.Cleanup(func() { runHostChecks = saved })
	return got
}

var (
	okCheck   = hostcheck.Result{Name: "root", Status: hostcheck.OK, Message: "running as root"}
	warnCheck = hostcheck.Result{Name: "swap", Status: hostcheck.Warn, Message: "2.0 GiB of swap", Fix: "swapoff -a"}
	failCheck = hostcheck.Result{Name: "nft", Status: hostcheck.Fail, Message: "nft is not installed", Fix: "apt-get install nftables, or OWL_NETWORK_EGRESS=false"}
)

// doctor checks what serve would use: the same flags and variables.
func TestDoctorUsesServeConfig(t *testing.T) {
	got := fakeChecks(t, hostcheck.Report{okCheck})
	t.Setenv("OWL_PREWARM", "0")
	t.Setenv("OWL_ADDR", "127.0.0.1:9999")
	out, errOut, code := runOwl(t, "", "", "doctor", "--data", "/srv/owl", "--addr", "0.0.0.0:8790", "--network-egress=false")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := hostcheck.Options{DataDir: "/srv/owl", Addr: "0.0.0.0:8790", NetworkEgress: false, Prewarm: 0, DiskReserveBytes: 128 << 20}
	if *got != want {
		t.Errorf("checks got %+v, want %+v", *got, want)
	}
	if out != "ok    config  valid\nok    root    running as root\n" {
		t.Errorf("output:\n%s", out)
	}
}

func TestDoctorExitStatus(t *testing.T) {
	fakeChecks(t, hostcheck.Report{okCheck, warnCheck})
	out, _, code := runOwl(t, "", "", "doctor")
	if code != 0 || !strings.Contains(out, "warn  swap    2.0 GiB of swap; fix: swapoff -a\n") {
		t.Errorf("warnings only: exit %d\n%s", code, out)
	}

	fakeChecks(t, hostcheck.Report{okCheck, warnCheck, failCheck})
	out, errOut, code := runOwl(t, "", "", "doctor")
	if code != 1 || errOut != "" || !strings.Contains(out, "fail  nft     nft is not installed; fix: apt-get install nftables, or OWL_NETWORK_EGRESS=false\n") {
		t.Errorf("a failure: exit %d, stderr %q\n%s", code, errOut, out)
	}
}

// A bad setting is a failed line of its own, naming the setting.
func TestDoctorConfigLine(t *testing.T) {
	fakeChecks(t, hostcheck.Report{okCheck})
	out, _, code := runOwl(t, "", "", "doctor", "--prewarm", "99", "--addr", "nope")
	if code != 1 || !strings.Contains(out, `fail  config  addr "nope": want HOST:PORT`) || !strings.Contains(out, "; prewarm 99: must be between 0 (off) and 16; fix: correct the settings named") {
		t.Errorf("exit %d\n%s", code, out)
	}
}

func TestDoctorJSON(t *testing.T) {
	fakeChecks(t, hostcheck.Report{okCheck, failCheck})
	out, _, code := runOwl(t, "", "", "doctor", "--json")
	var rep struct {
		OK     bool `json:"ok"`
		Checks []struct{ Name, Status, Message, Fix string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if code != 1 || rep.OK || len(rep.Checks) != 3 || rep.Checks[2].Status != "fail" || rep.Checks[2].Fix != failCheck.Fix {
		t.Errorf("exit %d: %+v", code, rep)
	}
}

// serve logs warnings at WARN and refuses to start on a failure, one line
// per failed check in doctor's words.
func TestCheckHostBeforeServe(t *testing.T) {
	var logs, stderr bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	fakeChecks(t, hostcheck.Report{okCheck, warnCheck})
	if err := checkHost(context.Background(), testServeConfig(t), logger, &stderr); err != nil || stderr.Len() != 0 {
		t.Errorf("warnings only: %v, stderr %q", err, stderr.String())
	}
	if !strings.Contains(logs.String(), `level=WARN msg="host check: swap" found="2.0 GiB of swap" fix="swapoff -a"`) {
		t.Errorf("warning not logged at WARN:\n%s", logs.String())
	}

	fakeChecks(t, hostcheck.Report{okCheck, failCheck, failCheck})
	err := checkHost(context.Background(), testServeConfig(t), logger, &stderr)
	want := "owl: cannot start: " + failCheck.Line() + "\n" +
		"owl: cannot start: " + failCheck.Line() + "\n" +
		"owl: refusing to start: 2 host check(s) failed (owl doctor shows every check)\n"
	if !errors.Is(err, errReported) || stderr.String() != want {
		t.Errorf("failure: %v\n%s\nwant\n%s", err, stderr.String(), want)
	}
}

// testServeConfig is serve's configuration from no flags and no OWL_*
// variables.
func testServeConfig(t *testing.T) config.Config {
	t.Helper()
	sc := bindServerConfig(&cobra.Command{Use: "serve"})
	sc.getenv = func(string) string { return "" }
	cfg, err := sc.resolve()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestMain removes the owl binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveBuilds()
	os.Exit(code)
}

// builtOwl builds cmd/owl once per test run.
func builtOwl(t *testing.T) string {
	t.Helper()
	bin, err := testkit.Build("../../cmd/owl")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// cleanEnv is the environment without the developer's OWL_* settings.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OWL_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// The real binary refuses to start on a failed check: exit 1, the check's
// line, no stack trace, nothing set up (the data dir is not created).
func TestServeRefusesOnFailedCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the owl binary")
	}
	bin := builtOwl(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(file, "data")
	cmd := exec.Command(bin, "serve", "--data", data, "--addr", "127.0.0.1:0")
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("owl serve: %v, want exit status 1\n%s", err, stderr.String())
	}
	wantLine := "owl: cannot start: data dir: " + data + " cannot be created: " + file +
		" is not a directory; fix: choose another data dir with --data (OWL_DATA)\n"
	got := stderr.String()
	if !strings.Contains(got, wantLine) || !strings.HasSuffix(got, "host check(s) failed (owl doctor shows every check)\n") {
		t.Errorf("stderr:\n%s\nwant the line\n%s", got, wantLine)
	}
	for _, bad := range []string{"goroutine ", "panic", "owl serving", "level=ERROR", "level=INFO"} {
		if strings.Contains(got, bad) {
			t.Errorf("stderr has %q:\n%s", bad, got)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q", stdout.String())
	}

	// doctor says the same words for the same settings.
	cmd = exec.Command(bin, "doctor", "--data", data, "--addr", "127.0.0.1:0")
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	if !errors.As(err, &exit) || exit.ExitCode() != 1 ||
		!strings.Contains(string(out), "fail  data dir    "+strings.TrimPrefix(strings.TrimSuffix(wantLine, "\n"), "owl: cannot start: data dir: ")) {
		t.Errorf("owl doctor: %v\n%s", err, out)
	}
}

// With egress on and no nft where the sandbox looks (PATH, /usr/sbin,
// /sbin: hidden here by an empty directory mounted over them in a private
// mount namespace), the real binary refuses to start, naming nft and how
// to disable egress.
func TestServeRefusesWithoutNft(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the owl binary")
	}
	if os.Geteuid() != 0 {
		testkit.Skip(t, "needs root to hide nft in a mount namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		testkit.Skip(t, "no unshare command")
	}
	bin := builtOwl(t)
	empty, data := t.TempDir(), filepath.Join(t.TempDir(), "data")
	script := `mount --bind "$EMPTY" /usr/sbin || exit 97
if [ -d /sbin ] && [ ! -L /sbin ]; then mount --bind "$EMPTY" /sbin || exit 97; fi
exec "$OWL" serve --data "$DATA" --addr 127.0.0.1:0 --network-egress`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(cleanEnv(), "PATH=/usr/bin:/bin", "EMPTY="+empty, "OWL="+bin, "DATA="+data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("owl serve without nft: %v, want exit status 1\n%s", err, stderr.String())
	}
	want := "owl: cannot start: nft: network egress is on, but the nft command (package nftables) is not installed; " +
		"fix: apt-get install nftables, or OWL_NETWORK_EGRESS=false"
	if !strings.Contains(stderr.String(), want) || strings.Contains(stderr.String(), "goroutine ") {
		t.Errorf("stderr:\n%s\nwant a line with\n%s", stderr.String(), want)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data dir was created before the refusal (stat: %v)", err)
	}
}

// TestDoctorNATS: with --nats, doctor connects as serve would and says
// what failed.
func TestDoctorNATS(t *testing.T) {
	fakeChecks(t, hostcheck.Report{okCheck})
	addr := testkit.FreeAddr(t) // nothing listens there
	out, _, code := runOwl(t, "", "", "doctor", "--nats", "nats://"+addr)
	if code != 1 || !strings.Contains(out, "fail  nats") || !strings.Contains(out, "connecting to NATS at nats://"+addr+": nats: no servers available") ||
		!strings.Contains(out, "max_payload of at least 8 MB") {
		t.Errorf("exit %d\n%s", code, out)
	}
}
