package server_test

// Bad requests: each gets Lambda's status, X-Amzn-ErrorType and message,
// and loses nothing — no function is created or changed, none runs.

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/json"
	"github.com/owl-project/owl/internal/runtimes"
	"hash/crc32"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/config"
)

// createBody is a valid CreateFunction body for a tiny zip, changed by mutate.
func createBody(t testing.TB, name string, mutate func(m map[string]any)) []byte {
	t.Helper()
	m := map[string]any{
		"FunctionName": name,
		"Runtime":      "provided.al2023",
		"Role":         "arn:aws:iam::000000000000:role/owl",
		"Handler":      "bootstrap",
		"Code":         map[string]any{"ZipFile": tinyZip(t)},
	}
	if mutate != nil {
		mutate(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tinyZip is a small valid code zip.
func tinyZip(t testing.TB) []byte {
	return makeZip(t, zipEntry{name: "bootstrap", body: "#!/bin/sh\n", mode: 0o755})
}

func withCode(zip []byte) func(map[string]any) {
	return func(m map[string]any) { m["Code"] = map[string]any{"ZipFile": zip} }
}

var bombs struct {
	once         sync.Once
	honest, liar []byte
	inflatedMB   int
}

// zipBombs returns two zips of one entry inflating to 300 MB of zeros
// (about 300 KB zipped): one declaring its true size, one whose headers
// claim 1 KB.
func zipBombs(t testing.TB) (honest, liar []byte) {
	t.Helper()
	bombs.once.Do(func() {
		const mb = 300
		var deflated bytes.Buffer
		fw, _ := flate.NewWriter(&deflated, flate.BestCompression)
		crc := crc32.NewIEEE()
		zeros := make([]byte, 1<<20)
		for range mb {
			_, _ = fw.Write(zeros)
			_, _ = crc.Write(zeros)
		}
		_ = fw.Close()
		build := func(declared uint64) []byte {
			var buf bytes.Buffer
			zw := zip.NewWriter(&buf)
			hdr := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, CRC32: crc.Sum32(),
				CompressedSize64: uint64(deflated.Len()), UncompressedSize64: declared}
			hdr.SetMode(0o755)
			w, err := zw.CreateRaw(hdr)
			if err == nil {
				_, err = w.Write(deflated.Bytes())
			}
			if err == nil {
				err = zw.Close()
			}
			if err != nil {
				panic(err)
			}
			return buf.Bytes()
		}
		bombs.honest, bombs.liar = build(mb<<20), build(1024)
		bombs.inflatedMB = mb
	})
	return bombs.honest, bombs.liar
}

// peakRSSGrowth resets the process's peak RSS, runs fn, and returns how far
// the peak rose above the RSS before fn, in MB.
func peakRSSGrowth(t testing.TB, fn func()) int64 {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS: %v", err)
	}
	before := procStatusKB(t, "VmRSS")
	fn()
	return (procStatusKB(t, "VmHWM") - before) >> 10
}

func procStatusKB(t testing.TB, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ts.createKitchensink("exists")
	honestBomb, liarBomb := zipBombs(t)

	tooBigEnv := map[string]any{"Variables": map[string]string{"BIG": strings.Repeat("x", 4100)}}
	cases := []struct {
		name   string
		body   []byte
		status int
		code   string
		msg    string // exact, or "~substring"
	}{
		{"unknown runtime", createBody(t, "f", func(m map[string]any) { m["Runtime"] = "python9.9" }), 400, "InvalidParameterValueException",
			"Value python9.9 at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [" + strings.Join(runtimes.IDs(), ", ") + "] or be a valid ARN"},
		// Known to Owl, but no such interpreter on this machine.
		{"runtime not installed here", createBody(t, "f", func(m map[string]any) { m["Runtime"] = "python3.9" }), 400, "InvalidParameterValueException",
			"Value python3.9 at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [" + strings.Join(runtimes.IDs(), ", ") + "] or be a valid ARN"},
		{"memory 64", createBody(t, "f", func(m map[string]any) { m["MemorySize"] = 64 }), 400, "ValidationException",
			"1 validation error detected: Value '64' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128"},
		{"memory 20000", createBody(t, "f", func(m map[string]any) { m["MemorySize"] = 20000 }), 400, "ValidationException",
			"1 validation error detected: Value '20000' at 'memorySize' failed to satisfy constraint: Member must have value less than or equal to 10240"},
		{"timeout 0", createBody(t, "f", func(m map[string]any) { m["Timeout"] = 0 }), 400, "ValidationException",
			"1 validation error detected: Value '0' at 'timeout' failed to satisfy constraint: Member must have value greater than or equal to 1"},
		{"timeout 901", createBody(t, "f", func(m map[string]any) { m["Timeout"] = 901 }), 400, "ValidationException",
			"1 validation error detected: Value '901' at 'timeout' failed to satisfy constraint: Member must have value less than or equal to 900"},
		{"name with a space", createBody(t, "bad name", nil), 400, "ValidationException",
			"~1 validation error detected: Value 'bad name' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern"},
		{"name of 65 characters", createBody(t, strings.Repeat("n", 65), nil), 400, "ValidationException",
			"~Value '" + strings.Repeat("n", 65) + "' at 'functionName' failed to satisfy constraint"},
		{"name with a slash", createBody(t, "a/b", nil), 400, "ValidationException", "~Value 'a/b' at 'functionName' failed to satisfy constraint"},
		{"environment over 4 KB", createBody(t, "f", func(m map[string]any) { m["Environment"] = tooBigEnv }), 400, "InvalidParameterValueException",
			"~exceeded the 4KB limit"},
		{"reserved variable", createBody(t, "f", func(m map[string]any) {
			m["Environment"] = map[string]any{"Variables": map[string]string{"AWS_REGION": "eu-west-1"}}
		}), 400, "InvalidParameterValueException", "~reserved keys that are currently not supported for modification. Reserved keys used in this request: AWS_REGION"},
		{"not a zip", createBody(t, "f", withCode([]byte("this is not a zip"))), 400, "InvalidParameterValueException",
			"Could not unzip uploaded file. Please check your file, then try to upload again."},
		{"zip slip", createBody(t, "f", withCode(makeZip(t, zipEntry{name: "../evil", body: "x"}))), 400, "InvalidParameterValueException",
			`Could not unzip uploaded file: entry "../evil" escapes the code root.`},
		{"absolute path", createBody(t, "f", withCode(makeZip(t, zipEntry{name: "/etc/evil", body: "x"}))), 400, "InvalidParameterValueException",
			`Could not unzip uploaded file: entry "/etc/evil" is an absolute path.`},
		{"symlink out", createBody(t, "f", withCode(makeZip(t,
			zipEntry{name: "bootstrap", body: "#!/bin/sh\n", mode: 0o755},
			zipEntry{name: "dir/link", body: "../../../etc/passwd", mode: fs.ModeSymlink | 0o777}))), 400, "InvalidParameterValueException",
			`~Could not unzip uploaded file: entry "dir/link"`},
		{"absolute symlink", createBody(t, "f", withCode(makeZip(t,
			zipEntry{name: "link", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}))), 400, "InvalidParameterValueException",
			`Could not unzip uploaded file: entry "link" is a symbolic link to absolute path "/etc/passwd".`},
		{"zip bomb", createBody(t, "f", withCode(honestBomb)), 400, "InvalidParameterValueException",
			"Unzipped size must be smaller than 262144000 bytes"},
		{"zip bomb lying about its size", createBody(t, "f", withCode(liarBomb)), 400, "InvalidParameterValueException",
			"~Could not unzip uploaded file"},
		{"duplicate name", createBody(t, "exists", nil), 409, "ResourceConflictException", "Function already exist: exists"},
		{"body not JSON", []byte(`{"FunctionName": "f",`), 400, "InvalidRequestContentException", "~Could not parse request body into json"},
		{"code from S3", createBody(t, "f", func(m map[string]any) {
			m["Code"] = map[string]any{"S3Bucket": "bucket", "S3Key": "fn.zip"}
		}), 400, "InvalidParameterValueException", "~S3"},
		{"no code", createBody(t, "f", func(m map[string]any) { delete(m, "Code") }), 400, "InvalidParameterValueException", "~Code"},
	}
	before := ts.functionsSnapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := ts.as(t)
			var resp *http.Response
			var body []byte
			growth := peakRSSGrowth(t, func() {
				resp, body = ts.do(http.MethodPost, "/2015-03-31/functions", c.body, nil)
			})
			wantError(t, resp, body, c.status, c.code, c.msg)
			if strings.HasPrefix(c.name, "zip bomb") {
				t.Logf("peak RSS rose by %d MB", growth)
			}
			if strings.HasPrefix(c.name, "zip bomb") && growth > 150 {
				t.Errorf("refusing a zip bomb of %d MB raised the peak RSS by %d MB", bombs.inflatedMB, growth)
			}
			if after := ts.functionsSnapshot(); after != before {
				t.Errorf("the refused request changed the functions:\nbefore:\n%safter:\n%s", before, after)
			}
		})
	}

	t.Run("unknown path", func(t *testing.T) {
		ts := ts.as(t)
		for _, r := range []struct{ method, path string }{
			{"GET", "/2015-03-31/nothing"},
			{"GET", "/2015-03-31/functions/exists/nothing"},
			{"POST", "/2015-03-31/functions/exists/nothing"},
			{"GET", "/2016-08-19/account-settings/more"},
			{"GET", "/"},
		} {
			body := []byte(nil)
			if r.method == "POST" {
				body = createBody(t, "created-by-an-unknown-path", nil)
			}
			resp, respBody := ts.do(r.method, r.path, body, nil)
			wantError(t, resp, respBody, http.StatusNotFound, "UnknownOperationException", "Unknown operation "+r.method+" "+r.path)
		}
		if after := ts.functionsSnapshot(); after != before {
			t.Errorf("an unknown path changed the functions:\nbefore:\n%safter:\n%s", before, after)
		}
	})
}

func TestCodeStorageQuota(t *testing.T) {
	t.Parallel()
	build(t)
	small := tinyZip(t)
	// Room for the tiny zip but not for kitchensink.
	limit := int64(len(small)) + 100
	ts := startServer(t, "", func(c *config.Config) { c.CodeStorageLimit = limit })

	resp, body := ts.do(http.MethodPost, "/2015-03-31/functions", createBody(t, "big", withCode(kitchenZip)), nil)
	wantError(t, resp, body, 400, "CodeStorageExceededException", "~Code storage limit exceeded")
	if s := ts.functionsSnapshot(); s != "" {
		t.Errorf("a function was created over the quota:\n%s", s)
	}
	checkAccount(t, ts, 0, 0)

	// What fits is accepted; then nothing more fits, and a refused code
	// update leaves the function as it was.
	resp, body = ts.do(http.MethodPost, "/2015-03-31/functions", createBody(t, "small", nil), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating a function within the quota: %d %s", resp.StatusCode, body)
	}
	before := ts.functionsSnapshot()
	resp, body = ts.do(http.MethodPost, "/2015-03-31/functions",
		createBody(t, "second", withCode(makeZip(t, zipEntry{name: "bootstrap", body: "#!/bin/sh\necho 2\n", mode: 0o755}))), nil)
	wantError(t, resp, body, 400, "CodeStorageExceededException", "~Code storage limit exceeded")
	upd, _ := json.Marshal(map[string]any{"ZipFile": kitchenZip})
	resp, body = ts.do(http.MethodPut, "/2015-03-31/functions/small/code", upd, nil)
	wantError(t, resp, body, 400, "CodeStorageExceededException", "~Code storage limit exceeded")
	if after := ts.functionsSnapshot(); after != before {
		t.Errorf("refused requests changed the functions:\nbefore:\n%safter:\n%s", before, after)
	}
	checkAccount(t, ts, 1, int64(len(small)))
}

func TestInvokeErrors(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	// The largest payload is 6 MB of JSON: a whole CPU (1769 MB) and a
	// timeout that holds on a loaded machine.
	ts.createKitchensink("target", func(in *lambda.CreateFunctionInput) {
		in.MemorySize, in.Timeout = aws.Int32(1769), aws.Int32(60)
	})
	ran := ts.loggedInvocations("target")
	before := ts.functionsSnapshot()

	ctx64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tooLarge := `"` + strings.Repeat("a", 6291556-1) + `"` // 6291557 bytes of valid JSON
	cases := []struct {
		name    string
		path    string
		payload string
		hdr     map[string]string
		status  int
		code    string
		msg     string
	}{
		{"payload not JSON", "target/invocations", "this is not json", nil, 400, "InvalidRequestContentException",
			"~Could not parse request body into json"},
		{"payload too large", "target/invocations", tooLarge, nil, 413, "RequestTooLargeException",
			"Request must be smaller than 6291556 bytes for the InvokeFunction operation"},
		{"unknown invocation type", "target/invocations", `{}`, map[string]string{"X-Amz-Invocation-Type": "Later"}, 400, "ValidationException",
			"1 validation error detected: Value 'Later' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"},
		{"bad log type", "target/invocations", `{}`, map[string]string{"X-Amz-Log-Type": "Full"}, 400, "ValidationException",
			"1 validation error detected: Value 'Full' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [None, Tail]"},
		{"client context not base64", "target/invocations", `{}`, map[string]string{"X-Amz-Client-Context": "not base64!"}, 400,
			"InvalidParameterValueException", "Client context must be a valid Base64-encoded JSON object."},
		{"client context not JSON", "target/invocations", `{}`, map[string]string{"X-Amz-Client-Context": ctx64("not json")}, 400,
			"InvalidParameterValueException", "Client context must be a valid Base64-encoded JSON object."},
		{"client context too large", "target/invocations", `{}`, map[string]string{"X-Amz-Client-Context": ctx64(`{"custom":{"a":"` + strings.Repeat("a", 3000) + `"}}`)}, 400,
			"InvalidParameterValueException", "Client context must be no larger than 3583 bytes."},
		{"unknown function", "nope/invocations", `{}`, nil, 404, "ResourceNotFoundException",
			"Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"},
		{"unknown qualifier", "target:v9/invocations", `{}`, nil, 404, "ResourceNotFoundException",
			"Function not found: arn:aws:lambda:us-east-1:000000000000:function:target:v9"},
		{"unknown Qualifier parameter", "target/invocations?Qualifier=v9", `{}`, nil, 404, "ResourceNotFoundException",
			"Function not found: arn:aws:lambda:us-east-1:000000000000:function:target:v9"},
		{"unknown function by ARN", "arn:aws:lambda:us-east-1:000000000000:function:nope/invocations", `{}`, nil, 404, "ResourceNotFoundException",
			"Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := ts.as(t)
			resp, body := ts.rawInvoke(c.path, c.payload, c.hdr)
			wantError(t, resp, body, c.status, c.code, c.msg)
			if resp.Header.Get("X-Amz-Function-Error") != "" {
				t.Errorf("a refused invoke carries X-Amz-Function-Error")
			}
			if after := ts.functionsSnapshot(); after != before {
				t.Errorf("the refused invoke changed the functions:\nbefore:\n%safter:\n%s", before, after)
			}
		})
	}

	t.Run("dry run", func(t *testing.T) {
		resp, body := ts.as(t).rawInvoke("target/invocations", `{"action":"exit","code":1}`, map[string]string{"X-Amz-Invocation-Type": "DryRun"})
		if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
			t.Errorf("DryRun: %d %q, want 204 and no body", resp.StatusCode, body)
		}
	})

	// Only the sentinel of loggedInvocations ran: no refused request and
	// no dry run reached the function.
	if got := ts.loggedInvocations("target"); got != ran+1 {
		t.Errorf("the function ran %d times during the refused invokes, want 0", got-ran-1)
	}

	t.Run("largest payload", func(t *testing.T) {
		// Exactly the limit is accepted.
		payload := `{"name":"max","pad":"` + strings.Repeat("a", 6291556-len(`{"name":"max","pad":""}`)) + `"}`
		resp, body := ts.as(t).rawInvoke("target/invocations", payload, nil)
		if resp.StatusCode != http.StatusOK || string(body) != `{"message":"hello max"}` {
			t.Errorf("a payload of exactly 6291556 bytes: %d %.200s", resp.StatusCode, body)
		}
	})
}
