package server_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/sandbox"
	"github.com/owl-project/owl/internal/server"

	"github.com/owl-project/owl/internal/testkit"
)

// Test credentials every test server accepts.
const (
	testKeyID  = "AKIAOWLTESTKEY000001"
	testSecret = "owl-test-secret-key-0123456789abcdefghij"
	testToken  = "owl_test_token_0123456789abcdefghijklmnop"
)

var (
	// kitchenBin is the kitchensink function, kitchenZip a zip holding
	// it as bootstrap.
	kitchenBin string
	kitchenZip []byte
	owlBinary  string
	buildOnce  sync.Once
	buildErr   error
)

func TestMain(m *testing.M) {
	sandbox.MaybeRunInit()
	code := m.Run()
	testkit.RemoveBuilds()
	os.Exit(code)
}

// requireRoot skips tests that need real sandboxes when not root.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testkit.Skip(t, "needs root: real sandboxes use namespaces and cgroups")
	}
}

// build compiles the test function and the owl binary once per run.
func build(t testing.TB) {
	t.Helper()
	buildOnce.Do(func() {
		if kitchenBin, buildErr = testkit.Build("./testdata/kitchensink"); buildErr != nil {
			return
		}
		if kitchenZip, buildErr = zipFiles(map[string]string{"bootstrap": kitchenBin}); buildErr != nil {
			return
		}
		owlBinary, buildErr = testkit.Build("../../cmd/owl")
	})
	if buildErr != nil {
		t.Fatalf("building test binaries: %v", buildErr)
	}
}

// runCmd runs cmd and returns its stdout, stderr and exit status; a
// command that could not run at all fails the test.
func runCmd(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	return so.String(), se.String(), code
}

// zipFiles zips host files under the given names, keeping their modes.
func zipFiles(files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, path := range files {
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		hdr, err := zip.FileInfoHeader(st)
		if err != nil {
			return nil, err
		}
		hdr.Name, hdr.Method = name, zip.Deflate
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(w, f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// testHTTPClient never follows redirects: the API must answer, not send a
// client elsewhere.
var testHTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// testServer is a real Owl server with embedded NATS and real sandboxes.
type testServer struct {
	*server.Server
	t       testing.TB
	dataDir string
	URL     string
}

func testConfig(dataDir string) config.Config {
	cfg := config.Default()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = dataDir
	cfg.AccessKeyID, cfg.SecretAccessKey, cfg.Token = testKeyID, testSecret, testToken
	cfg.ShutdownTimeout = 10 * time.Second
	return cfg
}

// startServer starts a server on dataDir (a fresh temp dir when empty) and
// shuts it down when the test ends.
func startServer(t testing.TB, dataDir string, mutate ...func(*config.Config)) *testServer {
	t.Helper()
	requireRoot(t)
	build(t)
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	cfg := testConfig(dataDir)
	for _, m := range mutate {
		m(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.New(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("starting server: %v", err)
	}
	srv.Start()
	ts := &testServer{Server: srv, t: t, dataDir: dataDir, URL: "http://" + srv.Addr()}
	t.Cleanup(func() { ts.stop() })
	return ts
}

func (ts *testServer) stop() {
	if ts.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ts.Server.Shutdown(ctx); err != nil {
		ts.t.Errorf("shutdown: %v", err)
	}
	ts.Server = nil
}

// testWriter sends server logs to the test log, dropping them after the
// test ends (late background logs must not panic).
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// sdk returns an aws-sdk-go-v2 Lambda client for ts.
func (ts *testServer) sdk() *lambda.Client {
	return lambda.New(lambda.Options{
		BaseEndpoint: aws.String(ts.URL),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(testKeyID, testSecret, ""),
		// The SDK must not retry: a retried invoke would run twice.
		RetryMaxAttempts: 1,
	})
}

// do sends a request with the bearer token (or the given auth header).
func (ts *testServer) do(method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := testHTTPClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// as returns a copy of ts whose helpers report to t: subtests must not
// fail the parent's *testing.T from their own goroutine.
func (ts *testServer) as(t *testing.T) *testServer {
	c := *ts
	c.t = t
	return &c
}

// eventually polls cond until it returns nil, failing t with cond's last
// error when timeout passes. Tests wait with it, never with bare sleeps.
var eventually = testkit.Eventually

// apiError is a Lambda service error as the wire carries it.
type apiError struct {
	status  int
	code    string // X-Amzn-ErrorType
	message string // "message" or "Message"
	body    map[string]any
}

func parseAPIError(t testing.TB, resp *http.Response, body []byte) apiError {
	t.Helper()
	e := apiError{status: resp.StatusCode, code: resp.Header.Get("X-Amzn-ErrorType")}
	if err := json.Unmarshal(body, &e.body); err != nil {
		t.Fatalf("error body is not JSON (status %d): %v\n%s", resp.StatusCode, err, body)
	}
	for _, k := range []string{"message", "Message"} {
		if m, ok := e.body[k].(string); ok {
			e.message = m
		}
	}
	return e
}

// wantError checks a service error's status, type and message; message
// must equal want, or contain it when want starts with "~".
func wantError(t testing.TB, resp *http.Response, body []byte, status int, code, want string) apiError {
	t.Helper()
	e := parseAPIError(t, resp, body)
	if e.status != status || e.code != code {
		t.Errorf("got %d %q, want %d %q; body %s", e.status, e.code, status, code, body)
	}
	if sub, ok := strings.CutPrefix(want, "~"); ok {
		if !strings.Contains(e.message, sub) {
			t.Errorf("%s message %q lacks %q", code, e.message, sub)
		}
	} else if e.message != want {
		t.Errorf("%s message:\n got %q\nwant %q", code, e.message, want)
	}
	// Lambda's shapes: ValidationException and authentication errors carry
	// only the message; the others say who is at fault.
	_, hasType := e.body["Type"]
	switch {
	case code == "ValidationException" || status == http.StatusForbidden:
		if hasType {
			t.Errorf("%s body has a Type: %s", code, body)
		}
	case status >= 500:
		if e.body["Type"] != "Service" {
			t.Errorf("%s body lacks \"Type\": \"Service\": %s", code, body)
		}
	case e.body["Type"] != "User":
		t.Errorf("%s body lacks \"Type\": \"User\": %s", code, body)
	}
	return e
}

// rawInvoke invokes over plain HTTP with the bearer token.
func (ts *testServer) rawInvoke(path, payload string, hdr map[string]string) (*http.Response, []byte) {
	ts.t.Helper()
	return ts.do(http.MethodPost, "/2015-03-31/functions/"+path, []byte(payload), hdr)
}

// logText is function name's stored log (GET /owl/v1/functions/{name}/logs).
func (ts *testServer) logText(name string) string {
	ts.t.Helper()
	resp, body := ts.do(http.MethodGet, "/owl/v1/functions/"+name+"/logs?limit=100000", nil, nil)
	if resp.StatusCode != http.StatusOK {
		ts.t.Fatalf("logs of %s: %d %s", name, resp.StatusCode, body)
	}
	return string(body)
}

var sentinelSeq atomic.Int64

// loggedInvocations counts the invocations of name in its stored log. Logs
// are stored asynchronously, so it first runs a sentinel invocation and
// waits for its line: every earlier invocation is stored by then. The
// sentinel itself is counted.
func (ts *testServer) loggedInvocations(name string) int {
	ts.t.Helper()
	marker := fmt.Sprintf("sentinel-%d-%d", time.Now().UnixNano(), sentinelSeq.Add(1))
	if r := ts.invoke(name, `{"print":"`+marker+`"}`); r.funcErr != "" {
		ts.t.Fatalf("sentinel invoke of %s failed: %s", name, r.payload)
	}
	n := 0
	eventually(ts.t, 10*time.Second, func() error {
		text := ts.logText(name)
		if !strings.Contains(text, marker) {
			return fmt.Errorf("the sentinel invocation of %s is not in its log yet", name)
		}
		n = countStarts(text)
		return nil
	})
	return n
}

func countStarts(log string) int {
	n := 0
	for line := range strings.Lines(log) {
		if strings.HasPrefix(line, "START RequestId: ") {
			n++
		}
	}
	return n
}

// functionsSnapshot lists every function with the fields a failed request
// must not change, through the raw API.
func (ts *testServer) functionsSnapshot() string {
	ts.t.Helper()
	resp, body := ts.do(http.MethodGet, "/2015-03-31/functions?MaxItems=50", nil, nil)
	if resp.StatusCode != http.StatusOK {
		ts.t.Fatalf("ListFunctions: %d %s", resp.StatusCode, body)
	}
	var out struct {
		Functions []struct {
			FunctionName, RevisionId, CodeSha256 string
			MemorySize, Timeout                  int
		}
		NextMarker *string
	}
	if err := json.Unmarshal(body, &out); err != nil {
		ts.t.Fatalf("ListFunctions: %v", err)
	}
	if out.NextMarker != nil {
		ts.t.Fatalf("functionsSnapshot: more than one page")
	}
	var b strings.Builder
	for _, f := range out.Functions {
		fmt.Fprintf(&b, "%s rev=%s sha=%s mem=%d timeout=%d\n", f.FunctionName, f.RevisionId, f.CodeSha256, f.MemorySize, f.Timeout)
	}
	return b.String()
}

// zipEntry is one entry of a hand-made zip.
type zipEntry struct {
	name string
	body string
	mode fs.FileMode // 0 means 0644; fs.ModeSymlink makes body the target
}

func makeZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		hdr := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr.SetMode(mode)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// kitchenZipWith is the kitchensink zip plus extra entries (new code with
// a new CodeSha256).
func kitchenZipWith(t testing.TB, extra ...zipEntry) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(kitchenZip), int64(len(kitchenZip)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		if err := zw.Copy(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range extra {
		w, err := zw.Create(e.name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(w, e.body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// instanceOf is the sandbox instance of a data dir, derived as
// internal/server does: the first 4 bytes of the sha256 of the absolute
// path, in hex. Its cgroups live under owl/<instance> of each hierarchy.
func instanceOf(t testing.TB, dataDir string) string {
	t.Helper()
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(abs))
	return hex.EncodeToString(sum[:4])
}

// sandboxProc is a process in a sandbox cgroup of an instance.
type sandboxProc struct {
	comm   string
	cgroup string // the sandbox's cgroup name, under owl/<instance>
	state  string // from /proc/<pid>/stat: R, S, Z...
}

// procState is the state letter of process pid.
func procState(pid string) string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "?"
	}
	// pid (comm) state ...; comm may contain spaces and parentheses.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return string(b[i+2])
	}
	return "?"
}

// sandboxProcessCgroups lists the processes whose cgroup (in any
// hierarchy) is under owl/<instance>.
func sandboxProcessCgroups(instance string) map[int]sandboxProc {
	procs := map[int]sandboxProc{}
	ents, _ := os.ReadDir("/proc")
	marker := "/owl/" + instance + "/"
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, err := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(cg)) {
			// hierarchy-id:controllers:path
			parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
			if len(parts) != 3 {
				continue
			}
			_, rest, ok := strings.Cut(parts[2]+"/", marker)
			if !ok {
				continue
			}
			comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
			name, _, _ := strings.Cut(rest, "/")
			procs[pid] = sandboxProc{comm: strings.TrimSpace(string(comm)), cgroup: name, state: procState(e.Name())}
			break
		}
	}
	return procs
}

// sandboxProcesses lists the processes of an instance's sandboxes.
func sandboxProcesses(instance string) map[int]string {
	out := map[int]string{}
	for pid, p := range sandboxProcessCgroups(instance) {
		out[pid] = p.comm + "(" + p.state + ") in " + p.cgroup
	}
	return out
}

// cgroupMounts lists the mount points of every cgroup (v1 and v2) hierarchy.
func cgroupMounts(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var mnts []string
	for line := range strings.Lines(string(data)) {
		pre, post, ok := strings.Cut(line, " - ")
		pf, sf := strings.Fields(pre), strings.Fields(post)
		if ok && len(pf) >= 5 && len(sf) >= 1 && (sf[0] == "cgroup" || sf[0] == "cgroup2") {
			mnts = append(mnts, pf[4])
		}
	}
	return mnts
}

// instanceCgroups lists what exists of owl/<instance> in every hierarchy:
// the instance directories and the sandbox cgroups in them.
func instanceCgroups(t testing.TB, instance string) []string {
	t.Helper()
	var found []string
	for _, mnt := range cgroupMounts(t) {
		dir := filepath.Join(mnt, "owl", instance)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		found = append(found, dir)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.IsDir() {
				found = append(found, filepath.Join(dir, e.Name()))
			}
		}
	}
	return found
}

// cgroupRunsFunction reports whether a process of cgroup dir was started
// with a function's environment (AWS_LAMBDA_FUNCTION_NAME).
func cgroupRunsFunction(dir string) bool {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && functionOfProcess(pid) != "" {
			return true
		}
	}
	return false
}

// sandboxCgroupNames lists the sandbox cgroups (not the instance dirs) of
// instance, once per name, but not those of pre-warmed environments
// (prewarm-*: see prewarm_test.go) nor, on cgroup v2, those of spare inits
// still waiting for a sandbox, which come and go on their own. A custom
// runtime's pre-warmed environment that became a function's counts: its
// bootstrap was exec'd with the function's environment.
func sandboxCgroupNames(t testing.TB, instance string) []string {
	t.Helper()
	var names []string
	for _, d := range instanceCgroups(t, instance) {
		if strings.HasPrefix(filepath.Base(d), "prewarm-") && !cgroupRunsFunction(d) || idleSpareCgroup(d) {
			continue
		}
		if filepath.Base(d) != instance && !slices.Contains(names, filepath.Base(d)) {
			names = append(names, filepath.Base(d))
		}
	}
	sort.Strings(names)
	return names
}

// idleSpareCgroup reports whether dir is the cgroup v2 cgroup of a spare
// init that no sandbox uses yet: spares are cloned into a cgroup named
// @spare-... (a sandbox made from one keeps that name), and get limits
// only when they become a sandbox, so their memory.max is still "max".
func idleSpareCgroup(dir string) bool {
	if !strings.HasPrefix(filepath.Base(dir), "@spare-") {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, "memory.max"))
	return err == nil && strings.TrimSpace(string(b)) == "max"
}

// mountsUnder lists the mount points in this mount namespace that
// mention dir.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for line := range strings.Lines(string(data)) {
		if strings.Contains(line, dir) {
			found = append(found, strings.TrimSpace(line))
		}
	}
	return found
}

// networkLeft lists what exists of instance's egress network: its
// bridge, the host ends of its veth pairs and its nftables table.
func networkLeft(t testing.TB, instance string) []string {
	t.Helper()
	names := sandbox.NetworkNamesOf(instance)
	var found []string
	ents, _ := os.ReadDir("/sys/class/net")
	for _, e := range ents {
		if e.Name() == names.Bridge || strings.HasPrefix(e.Name(), names.VethPrefix) {
			found = append(found, "link "+e.Name())
		}
	}
	if nftTables(t)[names.Table] {
		found = append(found, "nftables table inet "+names.Table)
	}
	return found
}

// nftTables lists the nftables tables of the inet family; none when the
// host has no nft command.
func nftTables(t testing.TB) map[string]bool {
	t.Helper()
	nft, err := exec.LookPath("nft")
	if err != nil {
		if nft, err = exec.LookPath("/usr/sbin/nft"); err != nil {
			return nil
		}
	}
	out, err := exec.Command(nft, "list", "tables", "inet").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v\n%s", err, out)
	}
	tables := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "table" {
			tables[f[2]] = true
		}
	}
	return tables
}

// waitEnvironments waits up to 10 s for the worker to hold n environments;
// when says at what point the test expects it, for the failure.
func (ts *testServer) waitEnvironments(n int, when string) {
	ts.t.Helper()
	eventually(ts.t, 10*time.Second, func() error {
		if got := ts.Worker().Stats().Environments; got != n {
			return fmt.Errorf("%d environments %s, want %d", got, when, n)
		}
		return nil
	})
}

// checkNothingLeft asserts that a stopped server on dataDir left no
// sandbox process, no cgroup of its instance, no mount and nothing of its
// egress network (bridge, veths, nftables table) behind.
func checkNothingLeft(t testing.TB, dataDir string) {
	t.Helper()
	inst := instanceOf(t, dataDir)
	eventually(t, 10*time.Second, func() error {
		if p := sandboxProcesses(inst); len(p) > 0 {
			return fmt.Errorf("processes left in instance %s: %v", inst, p)
		}
		if cg := instanceCgroups(t, inst); len(cg) > 0 {
			return fmt.Errorf("cgroups left of instance %s: %v", inst, cg)
		}
		if m := mountsUnder(t, dataDir); len(m) > 0 {
			return fmt.Errorf("mounts left under %s: %v", dataDir, m)
		}
		// Pre-warmed sandboxes' slots (mount points while they live).
		if slots := filepath.Join(dataDir, "sandboxes", "slots"); exists(slots) {
			ents, _ := os.ReadDir(slots)
			return fmt.Errorf("slot directory %s left, holding %d entries", slots, len(ents))
		}
		if n := networkLeft(t, inst); len(n) > 0 {
			return fmt.Errorf("network of instance %s left: %v", inst, n)
		}
		// The sandboxes' /tmp disks: loop devices over images in the data dir.
		if l := loopImagesUnder(t, dataDir); len(l) > 0 {
			return fmt.Errorf("loop devices left over images under %s: %v", dataDir, l)
		}
		if dir := filepath.Join(dataDir, "sandboxes", "tmpdisks"); exists(dir) {
			return fmt.Errorf("/tmp disk directory %s left", dir)
		}
		return nil
	})
}

// loopImagesUnder lists the images under dir that loop devices are bound
// to (the sandboxes' /tmp disks), by name: each is unlinked once its loop
// device holds it, and sysfs then adds " (deleted)", left out here.
func loopImagesUnder(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		img := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
		if err == nil && strings.HasPrefix(img, dir+"/") {
			found = append(found, img)
		}
	}
	return found
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
