package bench

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/client"
)

// fakeOwl is the management and invoke API of one function, enough for
// Cold and Deploy: a configuration change makes a new revision, whose first
// invocation is cold (its log tail carries an Init Duration).
type fakeOwl struct {
	t *testing.T

	mu          sync.Mutex
	exists      bool
	zip         []byte
	env         map[string]string
	revision    int
	warmRev     int // revision of the warm environment; 0 is none
	updates     []map[string]string
	creates     int
	codeUpdates int
	invokes     int
	pendingGets int          // GetFunction answers InProgress this many times after an update
	neverCold   map[int]bool // revisions whose first invocation reports no Init Duration
}

func (f *fakeOwl) config() client.FunctionConfiguration {
	c := client.FunctionConfiguration{FunctionName: "hello", State: client.StateActive, LastUpdateStatus: client.UpdateSuccessful,
		CodeSha256: codeSha256(f.zip)}
	if len(f.env) > 0 {
		c.Environment = &client.EnvironmentState{Variables: maps.Clone(f.env)}
	}
	return c
}

func (f *fakeOwl) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Authorization") != "Bearer tok" {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/2015-03-31/functions")
	if !f.exists && path != "" {
		w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"Message":"Function not found"}`)
		return
	}
	reply := func(status int, cfg client.FunctionConfiguration) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(cfg)
	}
	switch r.Method + " " + path {
	case "POST ":
		var in client.CreateFunctionInput
		if err := json.Unmarshal(body, &in); err != nil || in.Runtime != DeployRuntime || in.Handler != "bootstrap" {
			f.t.Errorf("CreateFunction %s: %v", body, err)
		}
		f.exists, f.zip, f.revision = true, in.Code.ZipFile, f.revision+1
		f.creates++
		c := f.config()
		c.State, c.LastUpdateStatus = client.StatePending, ""
		f.pendingGets = 1
		reply(http.StatusCreated, c)
	case "GET /hello":
		c := f.config()
		if f.pendingGets > 0 {
			f.pendingGets--
			c.LastUpdateStatus = client.UpdateInProgress
		}
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(client.GetFunctionOutput{Configuration: c})
	case "PUT /hello/code":
		var in client.UpdateFunctionCodeInput
		_ = json.Unmarshal(body, &in)
		f.zip, f.revision = in.ZipFile, f.revision+1
		f.codeUpdates++
		reply(http.StatusOK, f.config())
	case "PUT /hello/configuration":
		var in client.UpdateFunctionConfigurationInput
		_ = json.Unmarshal(body, &in)
		f.env = in.Environment.Variables
		f.updates = append(f.updates, maps.Clone(f.env))
		f.revision++
		f.pendingGets = 2
		c := f.config()
		c.LastUpdateStatus = client.UpdateInProgress
		reply(http.StatusOK, c)
	case "POST /hello/invocations":
		f.invokes++
		report := "REPORT RequestId: r\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 9 MB"
		if f.warmRev != f.revision && !f.neverCold[f.revision] {
			report += "\tInit Duration: 3.25 ms"
		}
		f.warmRev = f.revision
		if r.Header.Get("X-Amz-Log-Type") == "Tail" {
			w.Header().Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString([]byte("START RequestId: r\nEND RequestId: r\n"+report+"\n")))
		}
		fmt.Fprint(w, `{"message":"hi"}`)
	default:
		f.t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotImplemented)
	}
}

func startFake(t *testing.T, f *fakeOwl) Config {
	f.t = t
	srv, _ := newServer(t, f)
	cfg := testConfig(srv)
	return cfg
}

func TestCold(t *testing.T) {
	f := &fakeOwl{exists: true, env: map[string]string{"STAGE": "prod"}, neverCold: map[int]bool{}}
	cfg := startFake(t, f)
	cfg.Requests, cfg.Settle = 5, time.Millisecond
	r, err := Cold(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != ModeCold || r.OK != 5 || r.Errors != 0 || r.Latency.Count != 5 || r.Connections != 1 {
		t.Errorf("cold result = %+v", r)
	}
	if r.InitDuration == nil || r.InitDuration.Count != 5 || r.InitDuration.P50 != 3250*time.Microsecond {
		t.Errorf("init duration = %+v, want 5 × 3.25ms", r.InitDuration)
	}
	if r.Update == nil || r.Update.Count != 5 {
		t.Errorf("update = %+v", r.Update)
	}
	// One update per iteration, each with a new BENCH_ITER and the
	// function's own variables kept, then the original restored.
	if len(f.updates) != 6 {
		t.Fatalf("%d updates, want 6: %v", len(f.updates), f.updates)
	}
	iters := map[string]bool{}
	for i, u := range f.updates[:5] {
		if u["STAGE"] != "prod" || !strings.HasPrefix(u[coldVar], fmt.Sprintf("%d-", i+1)) || iters[u[coldVar]] {
			t.Errorf("update %d = %v", i+1, u)
		}
		iters[u[coldVar]] = true
	}
	if last := f.updates[5]; len(last) != 1 || last["STAGE"] != "prod" {
		t.Errorf("restored environment = %v, want the original", last)
	}
	if f.invokes != 6 {
		t.Errorf("%d invocations, want the probe and 5 timed", f.invokes)
	}
}

func TestColdThatIsNotColdIsAnError(t *testing.T) {
	f := &fakeOwl{exists: true, neverCold: map[int]bool{3: true}}
	cfg := startFake(t, f)
	cfg.Requests, cfg.Settle = 3, 0
	r, err := Cold(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Revision 1 is the probe's; iterations make revisions 2, 3, 4.
	if r.OK != 2 || r.Errors != 1 || len(r.ErrorKinds) != 1 || !strings.HasPrefix(r.ErrorKinds[0].Kind, "not a cold start") ||
		!strings.HasPrefix(r.ErrorKinds[0].Example, "REPORT RequestId: r\tDuration") {
		t.Errorf("ok %d errors %d kinds %v", r.OK, r.Errors, r.ErrorKinds)
	}
	if last := f.updates[len(f.updates)-1]; len(last) != 0 {
		t.Errorf("restored environment = %v, want none", last)
	}
}

func TestColdOfAMissingFunction(t *testing.T) {
	cfg := startFake(t, &fakeOwl{})
	if _, err := Cold(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "ResourceNotFoundException") {
		t.Errorf("Cold of a missing function = %v", err)
	}
}

func TestInitDuration(t *testing.T) {
	tests := map[string]time.Duration{
		"REPORT RequestId: x\tDuration: 1.00 ms\tInit Duration: 12.34 ms":         12340 * time.Microsecond,
		"REPORT RequestId: x\tDuration: 1.00 ms\tInit Duration: 7 ms\tStatus: ok": 7 * time.Millisecond,
		"REPORT RequestId: x\tDuration: 1.00 ms":                                  -1,
		"Init Duration: 3.00 ms (printed by the function, no tab)":                -1,
	}
	for log, want := range tests {
		got, ok := initDuration(log)
		if (want < 0 && ok) || (want >= 0 && (!ok || got != want)) {
			t.Errorf("initDuration(%q) = %v, %v; want %v", log, got, ok, want)
		}
	}
}

// writeFile writes a file under dir with mode.
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPackage(t *testing.T) {
	dir := t.TempDir()
	fn := filepath.Join(dir, "fn")
	if _, err := LoadPackage(fn); err == nil {
		t.Error("LoadPackage of a missing path succeeded")
	}
	writeFile(t, fn, "README", "hi", 0o644)
	if _, err := LoadPackage(fn); err == nil || !strings.Contains(err.Error(), "no bootstrap") {
		t.Errorf("directory without bootstrap: %v", err)
	}
	writeFile(t, fn, "bootstrap", "#!/bin/sh\n", 0o644)
	if _, err := LoadPackage(fn); err == nil || !strings.Contains(err.Error(), "executable") {
		t.Errorf("bootstrap not executable: %v", err)
	}
	if err := os.Chmod(filepath.Join(fn, "bootstrap"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fn, "lib/data.txt", "data", 0o600)
	b, err := LoadPackage(fn)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range zr.File {
		got = append(got, fmt.Sprintf("%s %v", f.Name, f.Mode().Perm()))
	}
	if want := "[README -rw-r--r-- bootstrap -rwxr-xr-x lib/data.txt -rw-------]"; fmt.Sprint(got) != want {
		t.Errorf("zip holds %v, want %s", got, want)
	}
	// The same directory gives the same bytes, so redeploying changes nothing.
	if again, _ := LoadPackage(fn); !bytes.Equal(again, b) {
		t.Error("zipping the same directory twice gave different bytes")
	}
	zipPath := writeFile(t, dir, "fn.zip", string(b), 0o644)
	if z, err := LoadPackage(zipPath); err != nil || !bytes.Equal(z, b) {
		t.Errorf("LoadPackage(zip) = %v, changed %v", err, !bytes.Equal(z, b))
	}
	notZip := writeFile(t, dir, "bootstrap", "binary", 0o755)
	if _, err := LoadPackage(notZip); err == nil || !strings.Contains(err.Error(), "not a zip") {
		t.Errorf("LoadPackage(not a zip) = %v", err)
	}
}

func TestDeploy(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bootstrap", "v1", 0o755)
	f := &fakeOwl{}
	cfg := startFake(t, f)
	ctx := context.Background()
	// Created, then polled until Active/Successful.
	if err := Deploy(ctx, cfg, dir); err != nil {
		t.Fatal(err)
	}
	if f.creates != 1 || f.codeUpdates != 0 || f.pendingGets != 0 {
		t.Errorf("creates %d, code updates %d, pending %d", f.creates, f.codeUpdates, f.pendingGets)
	}
	// Same code: nothing to do (a needless update would retire warm environments).
	if err := Deploy(ctx, cfg, dir); err != nil {
		t.Fatal(err)
	}
	if f.creates != 1 || f.codeUpdates != 0 {
		t.Errorf("redeploying the same code: creates %d, code updates %d", f.creates, f.codeUpdates)
	}
	writeFile(t, dir, "bootstrap", "v2", 0o755)
	if err := Deploy(ctx, cfg, dir); err != nil {
		t.Fatal(err)
	}
	if f.creates != 1 || f.codeUpdates != 1 {
		t.Errorf("deploying new code: creates %d, code updates %d", f.creates, f.codeUpdates)
	}
	if err := Deploy(ctx, cfg, filepath.Join(dir, "missing")); err == nil {
		t.Error("Deploy of a missing path succeeded")
	}
}
