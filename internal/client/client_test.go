package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/testkit"
)

const testToken = "tok-123"

// fakeLambda is an httptest server whose handler the test sets; it checks the bearer token on
// every request before calling the handler.
func fakeLambda(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
			t.Errorf("%s %s: Authorization = %q", r.Method, r.URL, got)
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return New(srv.URL, testToken)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func wantRequest(t *testing.T, r *http.Request, method, path string) {
	t.Helper()
	if r.Method != method || r.URL.EscapedPath() != path {
		t.Errorf("request = %s %s, want %s %s", r.Method, r.URL.EscapedPath(), method, path)
	}
}

func TestNewNormalizesEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"":                        DefaultEndpoint,
		"http://127.0.0.1:8790/":  "http://127.0.0.1:8790",
		"localhost:9000":          "http://localhost:9000",
		"https://owl.example/api": "https://owl.example/api",
	} {
		if got := New(in, "").Endpoint(); got != want {
			t.Errorf("New(%q).Endpoint() = %q, want %q", in, got, want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Run("token and endpoint from env", func(t *testing.T) {
		t.Setenv(EnvToken, "env-token")
		t.Setenv(EnvEndpoint, "10.0.0.1:1234")
		c, err := FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		if c.token != "env-token" || c.Endpoint() != "http://10.0.0.1:1234" {
			t.Errorf("client = %q %q", c.token, c.Endpoint())
		}
	})
	t.Run("token from the credentials file in OWL_DATA", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv(EnvToken, "")
		t.Setenv(EnvEndpoint, "")
		t.Setenv(EnvDataDir, dir)
		cred := `{"access_key_id":"AK","secret_access_key":"SK","token":"file-token"}`
		if err := os.WriteFile(filepath.Join(dir, CredentialsFile), []byte(cred), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		if c.token != "file-token" || c.Endpoint() != DefaultEndpoint {
			t.Errorf("client = %q %q", c.token, c.Endpoint())
		}
	})
	t.Run("data dir defaults to HOME/.owl", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv(EnvToken, "")
		t.Setenv(EnvDataDir, "")
		t.Setenv("HOME", home)
		_, err := TokenFromEnv()
		want := "no Owl token: set OWL_TOKEN or run `owl serve` on this machine (looked in " +
			filepath.Join(home, ".owl", CredentialsFile) + ")"
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v\nwant %s", err, want)
		}
		if !errors.Is(err, ErrNoToken) {
			t.Errorf("err does not wrap ErrNoToken")
		}
	})
	t.Run("malformed credentials file", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv(EnvToken, "")
		t.Setenv(EnvDataDir, dir)
		if err := os.WriteFile(filepath.Join(dir, CredentialsFile), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := TokenFromEnv(); err == nil || !strings.Contains(err.Error(), "reading Owl credentials") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCreateFunction(t *testing.T) {
	zip := []byte("PK\x03\x04 not really a zip, the server does not care here")
	c := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		wantRequest(t, r, "POST", "/2015-03-31/functions")
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if r.ContentLength <= 0 {
			t.Errorf("ContentLength = %d, want a fixed length", r.ContentLength)
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"FunctionName": "hello",
			"Runtime":      "provided.al2023",
			"Handler":      "bootstrap",
			"Role":         DefaultRole,
			"MemorySize":   256.0,
			"Environment":  map[string]any{"Variables": map[string]any{"A": "1"}},
			"Code":         map[string]any{"ZipFile": base64.StdEncoding.EncodeToString(zip)},
		}
		if !reflect.DeepEqual(body, want) {
			t.Errorf("body = %v\nwant %v", body, want)
		}
		writeJSON(w, 201, map[string]any{
			"FunctionName": "hello", "Runtime": "provided.al2023", "CodeSize": len(zip),
			"CodeSha256": "abc=", "State": "Pending", "MemorySize": 256, "Timeout": 3,
		})
	})
	var lastSent, lastTotal int64
	calls := 0
	fc, err := c.CreateFunction(context.Background(), &CreateFunctionInput{
		FunctionName: "hello",
		Runtime:      "provided.al2023",
		Handler:      "bootstrap",
		MemorySize:   256,
		Environment:  &Environment{Variables: map[string]string{"A": "1"}},
		Code:         FunctionCode{ZipFile: zip},
		Progress: func(sent, total int64) {
			calls++
			if sent < lastSent || sent > total {
				t.Errorf("progress went from %d to %d of %d", lastSent, sent, total)
			}
			lastSent, lastTotal = sent, total
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if fc.FunctionName != "hello" || fc.CodeSize != int64(len(zip)) || fc.State != StatePending || fc.MemorySize != 256 {
		t.Errorf("configuration = %+v", fc)
	}
	if calls == 0 || lastSent != lastTotal {
		t.Errorf("progress: %d calls, last %d/%d", calls, lastSent, lastTotal)
	}
}

func TestGetFunctionEscapesName(t *testing.T) {
	c := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		wantRequest(t, r, "GET", "/2015-03-31/functions/a%2Fb%20c:prod")
		writeJSON(w, 200, map[string]any{
			"Configuration": map[string]any{"FunctionName": "a/b c", "State": "Active"},
			"Code":          map[string]any{"RepositoryType": "S3", "Location": "http://x/code.zip"},
			"Tags":          map[string]string{"team": "owl"},
		})
	})
	out, err := c.GetFunction(context.Background(), "a/b c:prod")
	if err != nil {
		t.Fatal(err)
	}
	if out.Configuration.FunctionName != "a/b c" || out.Code.Location != "http://x/code.zip" || out.Tags["team"] != "owl" {
		t.Errorf("GetFunction = %+v", out)
	}
}

func TestUpdates(t *testing.T) {
	desc := ""
	c := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatal(err)
		}
		switch r.URL.Path {
		case "/2015-03-31/functions/f/code":
			wantRequest(t, r, "PUT", "/2015-03-31/functions/f/code")
			want := map[string]any{"ZipFile": base64.StdEncoding.EncodeToString([]byte("zip"))}
			if !reflect.DeepEqual(body, want) {
				t.Errorf("code body = %s", raw)
			}
		case "/2015-03-31/functions/f/configuration":
			wantRequest(t, r, "PUT", "/2015-03-31/functions/f/configuration")
			// Only what was set: an empty Description is set, zero Timeout is not.
			want := map[string]any{"MemorySize": 512.0, "Description": ""}
			if !reflect.DeepEqual(body, want) {
				t.Errorf("configuration body = %s", raw)
			}
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
		}
		writeJSON(w, 200, map[string]any{"FunctionName": "f", "LastUpdateStatus": "InProgress"})
	})
	ctx := context.Background()
	if fc, err := c.UpdateFunctionCode(ctx, "f", &UpdateFunctionCodeInput{ZipFile: []byte("zip")}); err != nil || fc.LastUpdateStatus != UpdateInProgress {
		t.Errorf("UpdateFunctionCode = %+v, %v", fc, err)
	}
	if _, err := c.UpdateFunctionConfiguration(ctx, "f", &UpdateFunctionConfigurationInput{MemorySize: 512, Description: &desc}); err != nil {
		t.Errorf("UpdateFunctionConfiguration: %v", err)
	}
}

func TestListFunctionsFollowsMarkers(t *testing.T) {
	pages := map[string]struct {
		names []string
		next  string
	}{
		"":   {[]string{"a", "b"}, "m1"},
		"m1": {[]string{"c"}, "m2"},
		"m2": {[]string{"d"}, ""},
	}
	c := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		wantRequest(t, r, "GET", "/2015-03-31/functions")
		if got := r.URL.Query().Get("MaxItems"); got != "50" {
			t.Errorf("MaxItems = %q", got)
		}
		p, ok := pages[r.URL.Query().Get("Marker")]
		if !ok {
			t.Errorf("unknown marker %q", r.URL.Query().Get("Marker"))
		}
		var fns []map[string]any
		for _, n := range p.names {
			fns = append(fns, map[string]any{"FunctionName": n})
		}
		resp := map[string]any{"Functions": fns}
		if p.next != "" {
			resp["NextMarker"] = p.next
		}
		writeJSON(w, 200, resp)
	})
	fns, err := c.ListFunctions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fns {
		names = append(names, f.FunctionName)
	}
	if strings.Join(names, ",") != "a,b,c,d" {
		t.Errorf("names = %v", names)
	}
}

func TestListFunctionsRepeatedMarker(t *testing.T) {
	c := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"Functions": []any{}, "NextMarker": "same"})
	})
	if _, err := c.ListFunctions(context.Background()); err == nil || !strings.Contains(err.Error(), "repeated page marker") {
		t.Fatalf("err = %v", err)
	}
}

func TestDeleteFunction(t *testing.T) {
	c := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		wantRequest(t, r, "DELETE", "/2015-03-31/functions/gone")
		w.WriteHeader(204)
	})
	if err := c.DeleteFunction(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
}

func TestInvoke(t *testing.T) {
	c := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		wantRequest(t, r, "POST", "/2015-03-31/functions/echo/invocations")
		if got := r.URL.Query().Get("Qualifier"); got != "live" {
			t.Errorf("Qualifier = %q", got)
		}
		if got := r.Header.Get("X-Amz-Log-Type"); got != "Tail" {
			t.Errorf("X-Amz-Log-Type = %q", got)
		}
		if got := r.Header.Get("X-Amz-Invocation-Type"); got != "RequestResponse" {
			t.Errorf("X-Amz-Invocation-Type = %q", got)
		}
		payload, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		w.Header().Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString([]byte("START RequestId: r1\nboom\n")))
		w.Header().Set("X-Amz-Executed-Version", "3")
		w.Header().Set("x-amzn-RequestId", "r1")
		_, _ = w.Write(payload)
	})
	res, err := c.Invoke(context.Background(), "echo", []byte(`{"x":1}`), InvokeOptions{
		LogTail: true, InvocationType: InvocationRequestResponse, Qualifier: "live",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &InvokeResult{
		StatusCode:      200,
		Payload:         []byte(`{"x":1}`),
		FunctionError:   "Unhandled",
		LogResult:       "START RequestId: r1\nboom\n",
		ExecutedVersion: "3",
		RequestID:       "r1",
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result = %+v\nwant %+v", res, want)
	}
}

func TestInvokeDefaultsSendNoOptionalHeaders(t *testing.T) {
	c := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"X-Amz-Log-Type", "X-Amz-Invocation-Type"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("%s = %q, want none", h, v)
			}
		}
		if r.URL.RawQuery != "" {
			t.Errorf("query = %q", r.URL.RawQuery)
		}
		w.WriteHeader(200)
	})
	res, err := c.Invoke(context.Background(), "f", nil, InvokeOptions{})
	if err != nil || res.FunctionError != "" || len(res.Payload) != 0 {
		t.Fatalf("Invoke = %+v, %v", res, err)
	}
}

func TestLogs(t *testing.T) {
	c := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		wantRequest(t, r, "GET", "/owl/v1/functions/f/logs")
		want := "Qualifier=live&format=json&limit=20&request=r-1&since=2026-12-06T08%3A00%3A00Z"
		if got := r.URL.RawQuery; got != want {
			t.Errorf("query = %q, want %q", got, want)
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "START RequestId: 1\nhi\n")
	})
	since := time.Date(2026, 12, 6, 9, 0, 0, 0, time.FixedZone("CET", 3600))
	got, err := c.Logs(context.Background(), "f", LogFilter{Limit: 20, Since: since, RequestID: "r-1", Qualifier: "live", JSON: true})
	if err != nil || got != "START RequestId: 1\nhi\n" {
		t.Fatalf("Logs = %q, %v", got, err)
	}
}

func TestAPIErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		header     string
		body       string
		want       APIError
		wantString string
	}{
		{
			name: "lowercase message", status: 409, header: "ResourceConflictException",
			body:       `{"Type":"User","message":"Function already exist: f"}`,
			want:       APIError{Status: 409, Code: "ResourceConflictException", Message: "Function already exist: f"},
			wantString: "ResourceConflictException: Function already exist: f",
		},
		{
			name: "capitalised message", status: 404, header: "ResourceNotFoundException",
			body:       `{"Message":"Function not found: arn:aws:lambda:us-east-1:000000000000:function:f","Type":"User"}`,
			want:       APIError{Status: 404, Code: "ResourceNotFoundException", Message: "Function not found: arn:aws:lambda:us-east-1:000000000000:function:f"},
			wantString: "ResourceNotFoundException: Function not found: arn:aws:lambda:us-east-1:000000000000:function:f",
		},
		{
			name: "code with namespace suffix", status: 400, header: "ValidationException:http://internal.amazon.com/coral/",
			body:       `{"message":"1 validation error detected"}`,
			want:       APIError{Status: 400, Code: "ValidationException", Message: "1 validation error detected"},
			wantString: "ValidationException: 1 validation error detected",
		},
		{
			name: "no header, plain body", status: 502, body: "Bad Gateway from the proxy\n<html>",
			want:       APIError{Status: 502, Message: "Bad Gateway from the proxy"},
			wantString: "HTTP 502: Bad Gateway from the proxy",
		},
		{
			name: "nothing at all", status: 401,
			want:       APIError{Status: 401, Message: "Unauthorized"},
			wantString: "HTTP 401: Unauthorized",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set("X-Amzn-ErrorType", tc.header)
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			_, err := c.GetFunction(context.Background(), "f")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %T %v, want *APIError", err, err)
			}
			if *ae != tc.want {
				t.Errorf("APIError = %+v, want %+v", *ae, tc.want)
			}
			if err.Error() != tc.wantString {
				t.Errorf("Error() = %q, want %q", err.Error(), tc.wantString)
			}
			if tc.want.Code != "" && !IsCode(err, tc.want.Code) {
				t.Errorf("IsCode(%q) = false", tc.want.Code)
			}
		})
	}
}

func TestUnreachableServer(t *testing.T) {
	addr := testkit.FreeAddr(t)

	c := New("http://"+addr, testToken)
	_, err := c.ListFunctions(context.Background())
	var ce *ConnError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %T %v, want *ConnError", err, err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("err does not wrap ECONNREFUSED: %v", err)
	}
	prefix := "cannot reach Owl at http://" + addr + ": is `owl serve` running? (dial tcp "
	if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.HasSuffix(msg, "connection refused)") {
		t.Errorf("message = %q", msg)
	}
}

func TestCanceledContext(t *testing.T) {
	c := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Invoke(ctx, "f", nil, InvokeOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
