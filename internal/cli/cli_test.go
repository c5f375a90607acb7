package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/owl-project/owl/internal/client"
	"github.com/owl-project/owl/internal/testkit"
)

const testToken = "owl_test_token"

// fakeOwl is an in-memory stand-in for the Lambda API at the HTTP seam: it keeps functions and
// their last uploaded zip, and logs the requests it served as "METHOD path".
type fakeOwl struct {
	t   *testing.T
	srv *httptest.Server

	// invoke answers invocations; by default it echoes the payload.
	invoke func(w http.ResponseWriter, r *http.Request, payload []byte)
	// pendingPolls makes GetFunction report a new function Pending this many times first.
	pendingPolls int
	// hideOnce makes the next GetFunction answer not found, as if the function were created
	// concurrently right after.
	hideOnce bool

	mu       sync.Mutex
	fns      map[string]*client.FunctionConfiguration
	zips     map[string][]byte
	requests []string
	bodies   map[string][]map[string]any // request bodies by "METHOD path"
}

func newFakeOwl(t *testing.T) *fakeOwl {
	t.Helper()
	f := &fakeOwl{t: t, fns: map[string]*client.FunctionConfiguration{}, zips: map[string][]byte{}, bodies: map[string][]map[string]any{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	t.Setenv("OWL_TOKEN", testToken)
	t.Setenv("OWL_ENDPOINT", "")
	return f
}

func (f *fakeOwl) add(name, runtime string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fns[name] = &client.FunctionConfiguration{
		FunctionName: name, Runtime: runtime, Handler: "bootstrap", MemorySize: 128, Timeout: 3,
		CodeSize: 1234, LastModified: "2024-01-01T00:00:00.000+0000", State: "Active", LastUpdateStatus: "Successful",
	}
}

func (f *fakeOwl) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func lambdaError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"Type": "User", "message": msg})
}

func (f *fakeOwl) serve(w http.ResponseWriter, r *http.Request) {
	if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
		lambdaError(w, 403, "UnrecognizedClientException", "bad token "+got)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, key)
	var body map[string]any
	if json.Unmarshal(raw, &body) == nil {
		f.bodies[key] = append(f.bodies[key], body)
	}

	const prefix = "/2015-03-31/functions"
	rest := strings.TrimPrefix(r.URL.Path, prefix)
	name, sub, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	fn := f.fns[name]
	if f.hideOnce && r.Method == "GET" && sub == "" && name != "" {
		f.hideOnce, fn = false, nil
	}
	notFound := func() {
		lambdaError(w, 404, "ResourceNotFoundException", "Function not found: arn:aws:lambda:us-east-1:000000000000:function:"+name)
	}

	switch {
	case r.Method == "POST" && r.URL.Path == prefix:
		var in client.CreateFunctionInput
		if err := json.Unmarshal(raw, &in); err != nil {
			lambdaError(w, 400, "InvalidRequestContentException", err.Error())
			return
		}
		if f.fns[in.FunctionName] != nil {
			lambdaError(w, 409, "ResourceConflictException", "Function already exist: "+in.FunctionName)
			return
		}
		fc := &client.FunctionConfiguration{
			FunctionName: in.FunctionName, Runtime: in.Runtime, Handler: in.Handler,
			MemorySize: orDefault(in.MemorySize, 128), Timeout: orDefault(in.Timeout, 3), Description: in.Description,
			CodeSize: int64(len(in.Code.ZipFile)), CodeSha256: codeSha256(in.Code.ZipFile), State: "Pending",
		}
		if in.Environment != nil {
			fc.Environment = &client.EnvironmentState{Variables: in.Environment.Variables}
		}
		f.fns[in.FunctionName] = fc
		f.zips[in.FunctionName] = in.Code.ZipFile
		reply(201, fc)
		if f.pendingPolls == 0 {
			fc.State = "Active"
			fc.LastUpdateStatus = "Successful"
		}
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/owl/v1/functions/"):
		name, _, _ = strings.Cut(strings.TrimPrefix(r.URL.Path, "/owl/v1/functions/"), "/")
		if f.fns[name] == nil {
			notFound()
			return
		}
		_, _ = io.WriteString(w, "START RequestId: 1\n")
	case r.Method == "GET" && r.URL.Path == prefix:
		var out []client.FunctionConfiguration
		for _, fc := range f.fns {
			out = append(out, *fc)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].FunctionName > out[j].FunctionName })
		reply(200, map[string]any{"Functions": out})
	case fn == nil && strings.HasPrefix(r.URL.Path, prefix+"/"):
		notFound()
	case r.Method == "GET" && sub == "":
		if fn.State == "Pending" {
			if f.pendingPolls--; f.pendingPolls <= 0 {
				fn.State, fn.LastUpdateStatus = "Active", "Successful"
			}
		}
		reply(200, map[string]any{"Configuration": fn, "Code": map[string]string{"RepositoryType": "S3", "Location": f.srv.URL + "/code"}})
	case r.Method == "PUT" && sub == "code":
		var in client.UpdateFunctionCodeInput
		_ = json.Unmarshal(raw, &in)
		f.zips[name] = in.ZipFile
		fn.CodeSize, fn.CodeSha256 = int64(len(in.ZipFile)), codeSha256(in.ZipFile)
		fn.LastUpdateStatus = "InProgress"
		reply(200, fn)
		fn.LastUpdateStatus = "Successful"
	case r.Method == "PUT" && sub == "configuration":
		if fn.LastUpdateStatus == "InProgress" {
			lambdaError(w, 409, "ResourceConflictException", "An update is in progress for resource: "+name)
			return
		}
		var in client.UpdateFunctionConfigurationInput
		_ = json.Unmarshal(raw, &in)
		if in.MemorySize != 0 {
			fn.MemorySize = in.MemorySize
		}
		if in.Timeout != 0 {
			fn.Timeout = in.Timeout
		}
		if in.Handler != "" {
			fn.Handler = in.Handler
		}
		if in.Runtime != "" {
			fn.Runtime = in.Runtime
		}
		if in.Environment != nil {
			fn.Environment = &client.EnvironmentState{Variables: in.Environment.Variables}
		}
		reply(200, fn)
	case r.Method == "DELETE" && sub == "":
		delete(f.fns, name)
		w.WriteHeader(204)
	case r.Method == "POST" && sub == "invocations":
		w.Header().Set("X-Amz-Executed-Version", "$LATEST")
		w.Header().Set("x-amzn-RequestId", "req-1")
		if r.Header.Get("X-Amz-Log-Type") == "Tail" {
			w.Header().Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString([]byte("START RequestId: req-1 Version: $LATEST\nhello from the function\n")))
		}
		if f.invoke != nil {
			f.invoke(w, r, raw)
			return
		}
		_, _ = w.Write(raw)
	default:
		f.t.Errorf("fake Owl: unexpected %s %s", r.Method, r.URL)
		w.WriteHeader(400)
	}
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// runOwl runs the owl command line in-process against the fake and returns its outputs and
// exit code.
func runOwl(t *testing.T, endpoint, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := NewRootCmd()
	if endpoint != "" {
		args = append([]string{"--endpoint", endpoint}, args...)
	}
	root.SetArgs(args)
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	code = execute(context.Background(), root, &errb)
	return out.String(), errb.String(), code
}

// writeTree creates files under dir: name → content; a name ending in "*" is made executable.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		mode := fs.FileMode(0o644)
		if strings.HasSuffix(name, "*") {
			name, mode = strings.TrimSuffix(name, "*"), 0o755
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask must not decide the test
			t.Fatal(err)
		}
	}
}

// zipListing describes a zip as "name mode [-> target]" lines in archive order.
func zipListing(t *testing.T, b []byte) []string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("uploaded package is not a zip: %v", err)
	}
	var out []string
	for _, f := range zr.File {
		line := fmt.Sprintf("%s %v", f.Name, f.Mode())
		if f.Mode()&fs.ModeSymlink != 0 {
			rc, _ := f.Open()
			target, _ := io.ReadAll(rc)
			rc.Close()
			line += " -> " + string(target)
		} else if !f.Mode().IsDir() {
			rc, _ := f.Open()
			content, _ := io.ReadAll(rc)
			rc.Close()
			line += " " + string(content)
		}
		out = append(out, line)
	}
	return out
}

func TestDeployCreatesFunctionFromDirectory(t *testing.T) {
	f := newFakeOwl(t)
	f.pendingPolls = 2
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"bootstrap*":     "#!/bin/sh\necho hi\n",
		"lib/data.txt":   "data",
		".hidden/config": "x",
	})
	if err := os.Symlink("lib/data.txt", filepath.Join(dir, "data-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "outside")); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := runOwl(t, f.srv.URL, "", "deploy", dir, "--name", "hello",
		"--runtime", "provided.al2023", "--memory", "256", "--env", "A=1", "--env", "B=x=y")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr)
	}
	want := []string{
		".hidden/ drwxr-xr-x",
		".hidden/config -rw-r--r-- x",
		"bootstrap -rwxr-xr-x #!/bin/sh\necho hi\n",
		"data-link Lrwxrwxrwx -> lib/data.txt",
		"lib/ drwxr-xr-x",
		"lib/data.txt -rw-r--r-- data",
	}
	if got := zipListing(t, f.zips["hello"]); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("zip entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(stderr, "skipping symlink outside -> /etc/passwd") {
		t.Errorf("stderr has no warning about the escaping symlink: %q", stderr)
	}
	create := f.bodies["POST /2015-03-31/functions"][0]
	if create["Handler"] != "bootstrap" || create["Role"] != client.DefaultRole || create["MemorySize"] != 256.0 {
		t.Errorf("create body = %v", create)
	}
	if env := create["Environment"].(map[string]any)["Variables"]; fmt.Sprint(env) != "map[A:1 B:x=y]" {
		t.Errorf("environment = %v", env)
	}
	wantOut := fmt.Sprintf("created hello: runtime provided.al2023, code %s, sha256 %s, state Active\n",
		humanSize(int64(len(f.zips["hello"]))), codeSha256(f.zips["hello"]))
	if stdout != wantOut {
		t.Errorf("stdout = %q\nwant     %q", stdout, wantOut)
	}
	// GetFunction (not found), create, then polls until Active.
	wantReqs := "GET /2015-03-31/functions/hello,POST /2015-03-31/functions,GET /2015-03-31/functions/hello,GET /2015-03-31/functions/hello"
	if got := strings.Join(f.requestLog(), ","); got != wantReqs {
		t.Errorf("requests = %s\nwant %s", got, wantReqs)
	}
}

func TestDeployUpdatesExistingFunction(t *testing.T) {
	f := newFakeOwl(t)
	f.add("hello", "provided.al2023")
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"bootstrap*": "v2"})

	stdout, stderr, code := runOwl(t, f.srv.URL, "", "deploy", dir, "-n", "hello", "--timeout", "30", "--memory", "128")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr)
	}
	if !strings.HasPrefix(stdout, "updated hello: runtime provided.al2023, ") {
		t.Errorf("stdout = %q", stdout)
	}
	// The code update answers InProgress, so deploy waits for it before changing the configuration.
	wantReqs := "GET /2015-03-31/functions/hello,PUT /2015-03-31/functions/hello/code,GET /2015-03-31/functions/hello,PUT /2015-03-31/functions/hello/configuration"
	if got := strings.Join(f.requestLog(), ","); got != wantReqs {
		t.Errorf("requests = %s\nwant %s", got, wantReqs)
	}
	// Memory is unchanged, so only the timeout is sent.
	if body := f.bodies["PUT /2015-03-31/functions/hello/configuration"][0]; fmt.Sprint(body) != "map[Timeout:30]" {
		t.Errorf("configuration body = %v", body)
	}
	if got := zipListing(t, f.zips["hello"]); strings.Join(got, ",") != "bootstrap -rwxr-xr-x v2" {
		t.Errorf("zip = %v", got)
	}
}

func TestDeployCodeOnlyUpdateSkipsConfiguration(t *testing.T) {
	f := newFakeOwl(t)
	f.add("hello", "provided.al2023")
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"bootstrap*": "v3"})
	if _, stderr, code := runOwl(t, f.srv.URL, "", "deploy", dir, "--name", "hello"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, r := range f.requestLog() {
		if strings.HasSuffix(r, "/configuration") {
			t.Errorf("unexpected %s", r)
		}
	}
}

func TestDeployCreateConflictFallsBackToUpdate(t *testing.T) {
	f := newFakeOwl(t)
	f.add("race", "provided.al2023")
	f.hideOnce = true
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"bootstrap*": "x"})
	stdout, stderr, code := runOwl(t, f.srv.URL, "", "deploy", dir, "--name", "race", "--runtime", "provided.al2023")
	if code != 0 || !strings.HasPrefix(stdout, "updated race: ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	reqs := strings.Join(f.requestLog(), ",")
	if !strings.HasPrefix(reqs, "GET /2015-03-31/functions/race,POST /2015-03-31/functions,PUT /2015-03-31/functions/race/code") {
		t.Errorf("requests = %s", reqs)
	}
}

func TestDeployZipFile(t *testing.T) {
	f := newFakeOwl(t)
	src := t.TempDir()
	writeTree(t, src, map[string]string{"app.py": "def handler(e, c): return e"})
	pkg, _, err := zipDir(src, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	zipPath := filepath.Join(t.TempDir(), "fn.zip")
	if err := os.WriteFile(zipPath, pkg, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runOwl(t, f.srv.URL, "", "deploy", zipPath, "--name", "py", "--runtime", "python3.12", "--handler", "app.handler")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !bytes.Equal(f.zips["py"], pkg) {
		t.Errorf("the zip was not sent as is")
	}
}

func TestDeployErrors(t *testing.T) {
	f := newFakeOwl(t)
	f.add("exists", "python3.12")
	empty := t.TempDir()
	withFile := t.TempDir()
	writeTree(t, withFile, map[string]string{"bootstrap*": "x", "notzip.txt": "hello"})
	missing := filepath.Join(t.TempDir(), "nope")

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing directory", []string{"deploy", missing, "--name", "f", "--runtime", "provided.al2023"},
			"owl: deploy: " + missing + ": no such file or directory\n"},
		{"empty directory", []string{"deploy", empty, "--name", "f", "--runtime", "provided.al2023"},
			"owl: deploy: " + empty + ": the directory has no files to deploy\n"},
		{"not a zip", []string{"deploy", filepath.Join(withFile, "notzip.txt"), "--name", "f"},
			"owl: deploy: " + filepath.Join(withFile, "notzip.txt") + ": not a directory or a zip archive (zip: not a valid zip file)\n"},
		{"no runtime on create", []string{"deploy", withFile, "--name", "new"},
			"owl: deploy: --runtime is required to create function \"new\"\n"},
		{"no handler for a managed runtime", []string{"deploy", withFile, "--name", "new", "--runtime", "python3.12"},
			"owl: deploy: --handler is required for runtime \"python3.12\"\n"},
		{"bad env", []string{"deploy", withFile, "--name", "new", "--env", "NOVALUE"},
			"owl: deploy: --env \"NOVALUE\": want KEY=VALUE\n"},
		{"no name", []string{"deploy", withFile},
			"owl: required flag(s) \"name\" not set\n"},
		{"no path", []string{"deploy", "--name", "x"},
			"owl: deploy: expected one DIR or ZIP, got 0 arguments (usage: owl deploy DIR|ZIP --name NAME [flags])\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runOwl(t, f.srv.URL, "", tc.args...)
			if code != 1 || stderr != tc.want || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr:\n%q\nwant\n%q", code, stdout, stderr, tc.want)
			}
		})
	}
}

func TestDeployWarnsAboutMissingBootstrap(t *testing.T) {
	f := newFakeOwl(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"main": "binary", "bootstrap": "not executable"})
	_, stderr, code := runOwl(t, f.srv.URL, "", "deploy", dir, "--name", "f", "--runtime", "provided.al2")
	if code != 0 || !strings.Contains(stderr, `"bootstrap" in the package is not executable`) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestZipDirIsDeterministic(t *testing.T) {
	files := map[string]string{"bootstrap*": "#!/bin/sh", "b/z.txt": "z", "a.txt": "a", "b/a/c.txt": "c"}
	dir1, dir2 := t.TempDir(), t.TempDir()
	writeTree(t, dir1, files)
	writeTree(t, dir2, files)
	// Different times must not change the package.
	if err := os.Chtimes(filepath.Join(dir2, "a.txt"), zipEpoch.AddDate(30, 0, 0), zipEpoch.AddDate(30, 0, 0)); err != nil {
		t.Fatal(err)
	}
	z1, n, err := zipDir(dir1, func(string) {})
	if err != nil || n != 4 {
		t.Fatalf("zipDir = %d files, %v", n, err)
	}
	z1again, _, _ := zipDir(dir1, func(string) {})
	z2, _, _ := zipDir(dir2, func(string) {})
	if codeSha256(z1) != codeSha256(z1again) || codeSha256(z1) != codeSha256(z2) {
		t.Errorf("same files, different packages: %s %s %s", codeSha256(z1), codeSha256(z1again), codeSha256(z2))
	}
	var names []string
	for _, l := range zipListing(t, z1) {
		names = append(names, strings.Fields(l)[0])
	}
	if got := strings.Join(names, " "); got != "a.txt b/ b/a/ b/a/c.txt b/z.txt bootstrap" {
		t.Errorf("entry order = %s", got)
	}
	// A change in an exec bit is a different package.
	if err := os.Chmod(filepath.Join(dir2, "a.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if z3, _, _ := zipDir(dir2, func(string) {}); codeSha256(z3) == codeSha256(z1) {
		t.Errorf("exec bit change did not change the package")
	}
}

func TestLinkStaysInside(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		want         bool
	}{
		{"a", "b", true},
		{"d/a", "../b", true},
		{"d/a", "../../b", false},
		{"a", "..", false},
		{"a", "/etc/passwd", false},
		{"d/e/a", "../../x/y", true},
	} {
		if got := linkStaysInside(tc.name, tc.target); got != tc.want {
			t.Errorf("linkStaysInside(%q, %q) = %v", tc.name, tc.target, got)
		}
	}
}

func TestInvoke(t *testing.T) {
	f := newFakeOwl(t)
	f.add("echo", "provided.al2023")

	t.Run("inline data", func(t *testing.T) {
		stdout, stderr, code := runOwl(t, f.srv.URL, "", "invoke", "echo", "--data", `{"a":1}`)
		if code != 0 || stdout != "{\"a\":1}\n" || stderr != "" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("default event", func(t *testing.T) {
		stdout, _, code := runOwl(t, f.srv.URL, "", "invoke", "echo")
		if code != 0 || stdout != "{}\n" {
			t.Errorf("exit %d, stdout %q", code, stdout)
		}
	})
	t.Run("stdin and logs", func(t *testing.T) {
		stdout, stderr, code := runOwl(t, f.srv.URL, "{\"from\":\"stdin\"}\n", "invoke", "echo", "--data", "-", "--logs")
		if code != 0 || stdout != "{\"from\":\"stdin\"}\n" {
			t.Errorf("exit %d, stdout %q", code, stdout)
		}
		if stderr != "START RequestId: req-1 Version: $LATEST\nhello from the function\n" {
			t.Errorf("stderr = %q", stderr)
		}
	})
	t.Run("file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "event.json")
		if err := os.WriteFile(p, []byte(`{"file":true}`), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, _, code := runOwl(t, f.srv.URL, "", "invoke", "echo", "--data", "@"+p, "--tail")
		if code != 0 || stdout != "{\"file\":true}\n" {
			t.Errorf("exit %d, stdout %q", code, stdout)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, stderr, code := runOwl(t, f.srv.URL, "", "invoke", "echo", "--data", "@/nonexistent/e.json")
		if code != 1 || stderr != "owl: invoke: /nonexistent/e.json: no such file or directory\n" {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestInvokeFunctionError(t *testing.T) {
	f := newFakeOwl(t)
	f.add("boom", "python3.12")
	errBody := `{"errorMessage":"boom","errorType":"Exception","stackTrace":[]}`
	f.invoke = func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		_, _ = io.WriteString(w, errBody)
	}
	stdout, stderr, code := runOwl(t, f.srv.URL, "", "invoke", "boom")
	if code != 1 || stdout != "" || stderr != errBody+"\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestNotFoundMessages(t *testing.T) {
	f := newFakeOwl(t)
	for _, cmd := range [][]string{{"invoke", "x"}, {"get", "x"}, {"rm", "x"}, {"logs", "x"}} {
		_, stderr, code := runOwl(t, f.srv.URL, "", cmd...)
		if code != 1 || stderr != "owl: function \"x\" not found\n" {
			t.Errorf("%v: exit %d, stderr %q", cmd, code, stderr)
		}
	}
}

func TestList(t *testing.T) {
	f := newFakeOwl(t)
	f.add("beta", "python3.12")
	f.add("alpha", "provided.al2023")
	stdout, stderr, code := runOwl(t, f.srv.URL, "", "ls")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := "" +
		"NAME   RUNTIME          MEMORY  TIMEOUT  CODE-SIZE  LAST-MODIFIED\n" +
		"alpha  provided.al2023  128 MB  3s       1.2 KB     2024-01-01T00:00:00.000+0000\n" +
		"beta   python3.12       128 MB  3s       1.2 KB     2024-01-01T00:00:00.000+0000\n"
	if stdout != want {
		t.Errorf("ls:\n%s\nwant:\n%s", stdout, want)
	}
}

func TestGet(t *testing.T) {
	f := newFakeOwl(t)
	f.add("hello", "provided.al2023")
	stdout, _, code := runOwl(t, f.srv.URL, "", "get", "hello")
	var out client.GetFunctionOutput
	if code != 0 || json.Unmarshal([]byte(stdout), &out) != nil || out.Configuration.FunctionName != "hello" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	if !strings.Contains(stdout, "\n  \"Configuration\": {\n    \"FunctionName\": \"hello\",") {
		t.Errorf("not pretty-printed: %s", stdout)
	}
}

func TestRemove(t *testing.T) {
	f := newFakeOwl(t)
	f.add("a", "python3.12")
	f.add("b", "python3.12")
	stdout, stderr, code := runOwl(t, f.srv.URL, "", "rm", "a", "b")
	if code != 0 || stdout != "deleted a\ndeleted b\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if len(f.fns) != 0 {
		t.Errorf("functions left: %v", f.fns)
	}
}

func TestLogs(t *testing.T) {
	t.Setenv("OWL_TOKEN", testToken)
	var gotLimit string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/owl/v1/functions/hello/logs" || r.Header.Get("Authorization") != "Bearer "+testToken {
			t.Errorf("unexpected %s %s", r.Method, r.URL)
		}
		gotLimit = r.URL.Query().Get("limit")
		_, _ = io.WriteString(w, "START RequestId: 1 Version: $LATEST\nhi\nEND RequestId: 1")
	}))
	defer srv.Close()
	stdout, _, code := runOwl(t, srv.URL, "", "logs", "hello", "--limit", "5")
	if code != 0 || stdout != "START RequestId: 1 Version: $LATEST\nhi\nEND RequestId: 1\n" || gotLimit != "5" {
		t.Errorf("exit %d, limit %q, stdout %q", code, gotLimit, stdout)
	}
}

func TestUnreachableServer(t *testing.T) {
	endpoint := "http://" + testkit.FreeAddr(t)
	t.Setenv("OWL_TOKEN", testToken)
	t.Setenv("OWL_ENDPOINT", endpoint) // the environment, not the flag, this time

	_, stderr, code := runOwl(t, "", "", "ls")
	prefix := "owl: cannot reach Owl at " + endpoint + ": is `owl serve` running? (dial tcp "
	if code != 1 || !strings.HasPrefix(stderr, prefix) || !strings.HasSuffix(stderr, "connection refused)\n") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestNoToken(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("OWL_TOKEN", "")
	t.Setenv("OWL_DATA", dir)
	_, stderr, code := runOwl(t, "", "", "ls")
	want := "owl: no Owl token: set OWL_TOKEN or run `owl serve` on this machine (looked in " + filepath.Join(dir, "credentials.json") + ")\n"
	if code != 1 || stderr != want {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestUsageErrorsAreOneLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dploy"}, "owl: unknown command \"dploy\" (did you mean deploy?); run \"owl --help\" for the list\n"},
		{[]string{"invoke"}, "owl: invoke: missing function name (usage: owl invoke NAME [flags])\n"},
		{[]string{"ls", "--bogus"}, "owl: unknown flag: --bogus\n"},
	} {
		_, stderr, code := runOwl(t, "", "", tc.args...)
		if code != 1 || stderr != tc.want {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestCompletionAndVersion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		stdout, stderr, code := runOwl(t, "", "", "completion", shell)
		if code != 0 || !strings.Contains(stdout, "owl") {
			t.Errorf("completion %s: exit %d, stderr %q", shell, code, stderr)
		}
	}
	stdout, _, code := runOwl(t, "", "", "version")
	if code != 0 || !strings.HasPrefix(stdout, "owl ") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
}

func TestFunctionNameCompletion(t *testing.T) {
	f := newFakeOwl(t)
	f.add("hello", "provided.al2023")
	f.add("help-desk", "python3.12")
	f.add("other", "python3.12")
	stdout, _, code := runOwl(t, f.srv.URL, "", "__complete", "invoke", "hel")
	if code != 0 || !strings.HasPrefix(stdout, "hello\nhelp-desk\n:4\n") {
		t.Errorf("exit %d, completions %q", code, stdout)
	}
	stdout, _, _ = runOwl(t, f.srv.URL, "", "__complete", "rm", "hello", "")
	if !strings.HasPrefix(stdout, "help-desk\nother\n:4\n") {
		t.Errorf("rm completions %q", stdout)
	}
	// A server that is down gives no completions and no error.
	stdout, stderr, code := runOwl(t, "http://127.0.0.1:1", "", "__complete", "get", "")
	if code != 0 || !strings.HasPrefix(stdout, ":4\n") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestProgressRendering(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		sent, total int64
		want        string
	}{
		{0, 29 * mb, "[>         ]   0% 0.0/29.0 MB"},
		{42 * mb, 100 * mb, "[====>     ]  42% 42.0/100.0 MB"},
		{10 * mb, 10 * mb, "[==========] 100% 10.0/10.0 MB"},
	} {
		if got := renderProgress(tc.sent, tc.total, 10); got != tc.want {
			t.Errorf("renderProgress(%d, %d) = %q, want %q", tc.sent, tc.total, got, tc.want)
		}
	}
	// Not a terminal: no bar.
	if newProgressBar(&bytes.Buffer{}, 100*mb) != nil {
		t.Error("progress bar on a buffer")
	}
	var nilBar *progressBar
	if nilBar.progress() != nil {
		t.Error("nil bar has a callback")
	}
	nilBar.finish()
}
