package server_test

// Real AWS clients, unmodified: boto3 and the AWS CLI.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"github.com/owl-project/owl/internal/runtimes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/owl-project/owl/internal/testkit"
)

// awsClientEnv is the environment for AWS tools: the test's key pair and
// region, and nothing from the developer's own AWS configuration.
func awsClientEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"AWS_ACCESS_KEY_ID="+testKeyID,
		"AWS_SECRET_ACCESS_KEY="+testSecret,
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=",
	)
}

// pythonWithBoto3 finds a python3 that imports boto3: python3 on PATH,
// else /usr/bin/python3.
func pythonWithBoto3(t *testing.T) string {
	t.Helper()
	var tried []string
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append([]string{p}, candidates...)
	}
	for _, py := range candidates {
		if err := exec.Command(py, "-c", "import boto3").Run(); err == nil {
			return py
		}
		tried = append(tried, py)
	}
	testkit.Skipf(t, "no python3 with boto3 (tried %v): pip install boto3 to run this test", tried)
	return ""
}

// runBoto3 runs the script testdata/clients/<script> with py and returns
// what it printed; a failure (its traceback) fails the test.
func runBoto3(t *testing.T, py, script string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(py, append([]string{filepath.Join("testdata/clients", script)}, args...)...)
	cmd.Env = awsClientEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("boto3 script %s: %v\n%s", script, err, stderr.String())
	}
	return stdout
}

func TestBoto3(t *testing.T) {
	t.Parallel()
	py := pythonWithBoto3(t)
	ts := startServer(t, "")
	ts.createKitchensink("boto3-neighbour")
	zipPath := filepath.Join(t.TempDir(), "fn.zip")
	if err := os.WriteFile(zipPath, kitchenZip, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout := runBoto3(t, py, "boto3_client.py", ts.URL, testKeyID, testSecret, zipPath, "from-boto3")
	var out struct {
		Create map[string]any
		Invoke struct {
			Status                               int
			Payload, FunctionError, Version, Log string
		}
		InvokeError struct {
			Status        int
			FunctionError string
			Payload       map[string]any
		}
		AfterUpdate struct{ Memory, From string }
		List        []string
		Get         map[string]any
		Missing     map[string]any
		Deleted     bool
	}
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("boto3 script output: %v\n%s", err, stdout)
	}
	if out.Create["FunctionName"] != "from-boto3" || out.Create["State"] != "Active" || out.Create["CodeSha256"] != codeSha256(kitchenZip) ||
		out.Create["MemorySize"] != float64(128) || out.Create["FunctionArn"] != "arn:aws:lambda:us-east-1:000000000000:function:from-boto3" {
		t.Errorf("create_function answered %v", out.Create)
	}
	if out.Invoke.Status != 200 || out.Invoke.Payload != `{"message":"hello boto3"}` || out.Invoke.FunctionError != "" ||
		out.Invoke.Version != "$LATEST" || !strings.Contains(out.Invoke.Log, "REPORT RequestId: ") {
		t.Errorf("invoke answered %+v", out.Invoke)
	}
	if out.InvokeError.Status != 200 || out.InvokeError.FunctionError != "Unhandled" || out.InvokeError.Payload["errorMessage"] != "something went wrong" {
		t.Errorf("invoke of a failing function answered %+v", out.InvokeError)
	}
	if out.AfterUpdate.Memory != "256" || out.AfterUpdate.From != "boto3" {
		t.Errorf("after update_function_configuration the function sees %+v", out.AfterUpdate)
	}
	if !slices.Equal(out.List, []string{"boto3-neighbour", "from-boto3"}) {
		t.Errorf("list_functions: %v", out.List)
	}
	if out.Get["CodeSha256"] != codeSha256(kitchenZip) || out.Get["MemorySize"] != float64(256) || out.Get["Timeout"] != float64(9) ||
		out.Get["State"] != "Active" || out.Get["LastUpdateStatus"] != "Successful" || out.Get["RepositoryType"] != "S3" {
		t.Errorf("get_function: %v", out.Get)
	}
	if out.Missing["code"] != "ResourceNotFoundException" || out.Missing["status"] != float64(404) ||
		out.Missing["message"] != "Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function" {
		t.Errorf("invoking a missing function: %v", out.Missing)
	}
	if !out.Deleted {
		t.Errorf("get_function still finds the deleted function")
	}
	if s := ts.functionsSnapshot(); !strings.HasPrefix(s, "boto3-neighbour ") || strings.Count(s, "\n") != 1 {
		t.Errorf("functions after the script:\n%s", s)
	}
}

// awsCLI runs the AWS CLI against ts and returns stdout, stderr and the
// exit code.
type awsCLI struct {
	bin      string
	major    int
	endpoint string
}

func findAWSCLI(t *testing.T) awsCLI {
	t.Helper()
	bin, err := exec.LookPath("aws")
	if err != nil {
		testkit.Skip(t, "no AWS CLI on PATH (aws): install it to run this test")
	}
	cmd := exec.Command(bin, "--version")
	cmd.Env = awsClientEnv()
	v, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aws --version: %v\n%s", err, v)
	}
	m := regexp.MustCompile(`aws-cli/(\d+)\.`).FindSubmatch(v)
	if m == nil {
		t.Fatalf("cannot tell the AWS CLI's version from %q", v)
	}
	t.Logf("using %s", bytes.TrimSpace(v))
	return awsCLI{bin: bin, major: int(m[1][0] - '0')}
}

func (c awsCLI) run(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	full := append([]string{"--endpoint-url", c.endpoint, "--output", "json", "lambda"}, args...)
	if c.major >= 2 && args[0] == "invoke" {
		full = append(full, "--cli-binary-format", "raw-in-base64-out")
	}
	cmd := exec.Command(c.bin, full...)
	cmd.Env = awsClientEnv()
	cmd.Dir = dir
	return runCmd(t, cmd)
}

// runJSON runs aws lambda args in dir, fails the test unless it exits 0
// and what it printed, if anything, decodes as JSON into out (when out is
// not nil), and returns what it printed.
func (c awsCLI) runJSON(t *testing.T, dir string, out any, args ...string) string {
	t.Helper()
	stdout, stderr, code := c.run(t, dir, args...)
	if code != 0 {
		t.Fatalf("aws lambda %s: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	if out != nil && stdout != "" {
		if err := json.Unmarshal([]byte(stdout), out); err != nil {
			t.Fatalf("aws lambda %s printed %s: %v", strings.Join(args, " "), stdout, err)
		}
	}
	return stdout
}

func TestAWSCLI(t *testing.T) {
	t.Parallel()
	cli := findAWSCLI(t)
	ts := startServer(t, "")
	cli.endpoint = ts.URL
	ts.createKitchensink("cli-fn")
	dir := t.TempDir()

	t.Run("invoke", func(t *testing.T) {
		var meta struct {
			StatusCode      int
			ExecutedVersion string
			FunctionError   string
		}
		stdout := cli.runJSON(t, dir, &meta, "invoke", "--function-name", "cli-fn", "--payload", `{"name":"cli"}`, "out.json")
		if meta.StatusCode != 200 || meta.ExecutedVersion != "$LATEST" || meta.FunctionError != "" {
			t.Errorf("aws lambda invoke printed %s", stdout)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "out.json")); string(b) != `{"message":"hello cli"}` {
			t.Errorf("out.json = %q", b)
		}
	})

	t.Run("invoke failing", func(t *testing.T) {
		var meta struct {
			StatusCode    int
			FunctionError string
			LogResult     string
		}
		stdout := cli.runJSON(t, dir, &meta, "invoke", "--function-name", "arn:aws:lambda:us-east-1:000000000000:function:cli-fn",
			"--payload", `{"action":"error"}`, "--log-type", "Tail", "err.json")
		logTail, _ := base64.StdEncoding.DecodeString(meta.LogResult)
		if meta.StatusCode != 200 || meta.FunctionError != "Unhandled" || !strings.Contains(string(logTail), "START RequestId: ") {
			t.Errorf("aws lambda invoke of a failing function printed %s (log %q)", stdout, logTail)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "err.json")); !strings.Contains(string(b), `"errorMessage":"something went wrong"`) {
			t.Errorf("err.json = %q", b)
		}
	})

	t.Run("list-functions", func(t *testing.T) {
		var out struct {
			Functions []struct{ FunctionName, CodeSha256 string }
		}
		stdout := cli.runJSON(t, dir, &out, "list-functions")
		if len(out.Functions) != 1 || out.Functions[0].FunctionName != "cli-fn" || out.Functions[0].CodeSha256 != codeSha256(kitchenZip) {
			t.Errorf("list-functions printed %s", stdout)
		}
	})

	t.Run("get-function", func(t *testing.T) {
		var out struct {
			Configuration struct{ FunctionName, CodeSha256, State string }
			Code          struct{ Location string }
		}
		stdout := cli.runJSON(t, dir, &out, "get-function", "--function-name", "cli-fn")
		if out.Configuration.FunctionName != "cli-fn" || out.Configuration.CodeSha256 != codeSha256(kitchenZip) ||
			out.Configuration.State != "Active" || !strings.HasPrefix(out.Code.Location, ts.URL+"/") {
			t.Errorf("get-function printed %s", stdout)
		}
	})

	t.Run("get-function missing", func(t *testing.T) {
		stdout, stderr, code := cli.run(t, dir, "get-function", "--function-name", "nope")
		if code == 0 || !strings.Contains(stderr, "ResourceNotFoundException") ||
			!strings.Contains(stderr, "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope") {
			t.Errorf("get-function of a missing function: exit %d\n%s\n%s", code, stdout, stderr)
		}
	})
}

// Owl's Python and Node.js runtimes through the AWS CLI: create from a zip
// file, invoke, and a handler error.
func TestAWSCLIInterpretedRuntimes(t *testing.T) {
	t.Parallel()
	cli := findAWSCLI(t)
	ts := startServer(t, "")
	cli.endpoint = ts.URL
	dir := t.TempDir()
	for _, tc := range []struct {
		prefix, handler, file, body, errorType string
	}{
		{"python3", "app.handler", "app.py", pythonApp, "ValueError"},
		{"nodejs", "index.handler", "index.mjs", nodeApp, "TypeError"},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			i := slices.IndexFunc(runtimes.IDs(), func(id string) bool { return strings.HasPrefix(id, tc.prefix) })
			if i < 0 {
				testkit.Skipf(t, "no %s interpreter on this machine", tc.prefix)
			}
			runtime, name := runtimes.IDs()[i], "cli-"+tc.prefix
			zipPath := filepath.Join(dir, name+".zip")
			if err := os.WriteFile(zipPath, makeZip(t, zipEntry{name: tc.file, body: tc.body}), 0o644); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := cli.run(t, dir, "create-function", "--function-name", name, "--runtime", runtime,
				"--handler", tc.handler, "--role", "arn:aws:iam::000000000000:role/owl",
				"--zip-file", "fileb://"+zipPath, "--environment", "Variables={GREETING=Hi}")
			if code != 0 || !strings.Contains(stdout, `"Runtime": "`+runtime+`"`) {
				t.Fatalf("create-function: exit %d\n%s\n%s", code, stdout, stderr)
			}

			out := filepath.Join(dir, name+".json")
			stdout, stderr, code = cli.run(t, dir, "invoke", "--function-name", name, "--payload", `{"name":"cli"}`, out)
			b, _ := os.ReadFile(out)
			if code != 0 || strings.Contains(stdout, "FunctionError") || !strings.Contains(string(b), "Hi, cli!") {
				t.Errorf("invoke: exit %d\n%s\n%s\npayload %s", code, stdout, stderr, b)
			}

			stdout, stderr, code = cli.run(t, dir, "invoke", "--function-name", name, "--payload", `{"name":"x","fail":true}`, out)
			b, _ = os.ReadFile(out)
			var e struct{ ErrorType, ErrorMessage string }
			_ = json.Unmarshal(b, &e)
			if code != 0 || !strings.Contains(stdout, `"FunctionError": "Unhandled"`) || e.ErrorType != tc.errorType || e.ErrorMessage != "bad x" {
				t.Errorf("failing invoke: exit %d\n%s\n%s\npayload %s", code, stdout, stderr, b)
			}
		})
	}
}
