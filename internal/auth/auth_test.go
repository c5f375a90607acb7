package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/httpbinding"

	"github.com/owl-project/owl/internal/testkit"

	"github.com/owl-project/owl/internal/lambdaerr"
)

var testCreds = Credentials{
	AccessKeyID:     "AKIAIOSFODNN7EXAMPLE",
	SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	Token:           "owl_test-token-0123456789abcdefghijklmnop",
}

const testARN = "arn:aws:lambda:us-east-1:123456789012:function:my-fn"

// authServer is a real HTTP server whose handler authenticates every request
// the way Owl's API server does and answers AWS-style.
type authServer struct {
	*httptest.Server
	mu        sync.Mutex
	lastErr   error
	principal Principal
}

func newAuthServer(t *testing.T) *authServer {
	t.Helper()
	a, err := NewAuthenticator([]Credentials{testCreds})
	if err != nil {
		t.Fatal(err)
	}
	s := &authServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p, err := a.Authenticate(r, body)
		s.mu.Lock()
		s.lastErr, s.principal = err, p
		s.mu.Unlock()
		var ae *lambdaerr.Error
		if errors.As(err, &ae) {
			w.Header().Set("X-Amzn-ErrorType", ae.Code)
			w.WriteHeader(ae.Status())
			_ = json.NewEncoder(w).Encode(map[string]string{"message": ae.Message, "Type": "User"})
			return
		}
		if err != nil {
			t.Errorf("Authenticate returned a non-*lambdaerr.Error: %v", err)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *authServer) last() (Principal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.principal, s.lastErr
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sdkRequest builds a request the way aws-sdk-go-v2's Lambda serializer does:
// the function name label is escaped into URL.RawPath (":" -> %3A, "$" ->
// %24) while URL.Path holds it unescaped.
func sdkRequest(t *testing.T, base, method, template, fn, query string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, base, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Path = strings.Replace(template, "{FunctionName}", fn, 1)
	req.URL.RawPath = strings.Replace(template, "{FunctionName}", httpbinding.EscapePath(fn, true), 1)
	req.URL.RawQuery = query
	return req
}

func TestGoSignerRequests(t *testing.T) {
	srv := newAuthServer(t)
	type tc struct {
		name         string
		method, tmpl string
		fn, query    string
		body         string
		header       map[string]string // set before signing
		akid, secret string
		sessionToken string
		service      string
		signAt       time.Duration // offset from now
		payloadHash  string        // default: sha256 of body
		noSign       bool
		mutate       func(*http.Request) // after signing
		wantErr      error
		wantCode     string
	}
	const inv = "/2015-03-31/functions/{FunctionName}/invocations"
	cases := []tc{
		{name: "list", method: "GET", tmpl: "/2015-03-31/functions"},
		{name: "list paged", method: "GET", tmpl: "/2015-03-31/functions", query: "Marker=x&MaxItems=2"},
		{name: "list unsorted query", method: "GET", tmpl: "/2015-03-31/functions", query: "MaxItems=2&Marker=a%2Fb&FunctionVersion=ALL"},
		{name: "create", method: "POST", tmpl: "/2015-03-31/functions", body: `{"FunctionName":"f"}`,
			header: map[string]string{"Content-Type": "application/json"}},
		{name: "invoke", method: "POST", tmpl: inv, fn: "my-fn", body: `{"a":1}`},
		{name: "invoke $LATEST", method: "POST", tmpl: inv, fn: "my-fn:$LATEST", body: `{"a":1}`,
			header: map[string]string{"X-Amz-Invocation-Type": "Event", "X-Amz-Log-Type": "Tail"}},
		{name: "invoke arn with qualifier", method: "POST", tmpl: inv, fn: testARN, query: "Qualifier=%24LATEST", body: `{}`},
		{name: "get function qualified", method: "GET", tmpl: "/2015-03-31/functions/{FunctionName}", fn: "my-fn:1", query: "Qualifier=%24LATEST"},
		{name: "delete", method: "DELETE", tmpl: "/2015-03-31/functions/{FunctionName}", fn: "my-fn"},
		{name: "session token", method: "GET", tmpl: "/2015-03-31/functions", sessionToken: "FwoGZXIvYXdzEXAMPLE"},
		{name: "within skew", method: "GET", tmpl: "/2015-03-31/functions", signAt: -10 * time.Minute},
		{name: "unsigned payload", method: "POST", tmpl: inv, fn: "my-fn", body: `{"a":1}`,
			header: map[string]string{"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"}, payloadHash: "UNSIGNED-PAYLOAD"},
		{name: "declared payload hash", method: "POST", tmpl: inv, fn: "my-fn", body: `{"a":1}`,
			header: map[string]string{"X-Amz-Content-Sha256": sha256Hex([]byte(`{"a":1}`))}},
		{name: "header spaces collapsed", method: "POST", tmpl: inv, fn: "my-fn", body: `{}`,
			header: map[string]string{"X-Amz-Client-Context": "  a   b  "}},

		{name: "wrong secret", method: "GET", tmpl: "/2015-03-31/functions", secret: "wrong",
			wantErr: ErrInvalidSignature, wantCode: "InvalidSignatureException"},
		{name: "unknown key", method: "GET", tmpl: "/2015-03-31/functions", akid: "AKIAUNKNOWNUNKNOWN00",
			wantErr: ErrUnrecognizedClient, wantCode: "UnrecognizedClientException"},
		{name: "wrong service", method: "GET", tmpl: "/2015-03-31/functions", service: "s3",
			wantErr: ErrInvalidSignature, wantCode: "InvalidSignatureException"},
		{name: "stale date", method: "GET", tmpl: "/2015-03-31/functions", signAt: -20 * time.Minute,
			wantErr: ErrSignatureExpired, wantCode: "InvalidSignatureException"},
		{name: "future date", method: "GET", tmpl: "/2015-03-31/functions", signAt: 20 * time.Minute,
			wantErr: ErrSignatureExpired, wantCode: "InvalidSignatureException"},
		{name: "tampered body", method: "POST", tmpl: inv, fn: "my-fn", body: `{"a":1}`,
			mutate:  func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader(`{"a":2}`)) },
			wantErr: ErrInvalidSignature, wantCode: "InvalidSignatureException"},
		{name: "declared hash mismatch", method: "POST", tmpl: inv, fn: "my-fn", body: `{"a":1}`,
			header:      map[string]string{"X-Amz-Content-Sha256": sha256Hex([]byte(`{"a":2}`))},
			payloadHash: sha256Hex([]byte(`{"a":2}`)),
			wantErr:     ErrInvalidSignature, wantCode: "InvalidSignatureException"},
		{name: "tampered signed header", method: "POST", tmpl: inv, fn: "my-fn", body: `{}`,
			header:  map[string]string{"X-Amz-Invocation-Type": "Event"},
			mutate:  func(r *http.Request) { r.Header.Set("X-Amz-Invocation-Type", "RequestResponse") },
			wantErr: ErrInvalidSignature, wantCode: "InvalidSignatureException"},
		{name: "tampered path", method: "POST", tmpl: inv, fn: "my-fn", body: `{}`,
			mutate: func(r *http.Request) {
				r.URL.Path = "/2015-03-31/functions/other/invocations"
				r.URL.RawPath = ""
			},
			wantErr: ErrInvalidSignature, wantCode: "InvalidSignatureException"},
		{name: "tampered query", method: "GET", tmpl: "/2015-03-31/functions", query: "Marker=x&MaxItems=2",
			mutate:  func(r *http.Request) { r.URL.RawQuery = "Marker=x&MaxItems=3" },
			wantErr: ErrInvalidSignature, wantCode: "InvalidSignatureException"},
		{name: "missing auth", method: "GET", tmpl: "/2015-03-31/functions", noSign: true,
			wantErr: ErrMissingAuthenticationToken, wantCode: "MissingAuthenticationTokenException"},
		{name: "malformed sigv4 header", method: "GET", tmpl: "/2015-03-31/functions",
			mutate: func(r *http.Request) {
				r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testCreds.AccessKeyID+"/20240101/us-east-1/lambda/aws4_request")
			},
			wantErr: ErrIncompleteSignature, wantCode: "IncompleteSignatureException"},
		{name: "malformed credential", method: "GET", tmpl: "/2015-03-31/functions",
			mutate: func(r *http.Request) {
				r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID, SignedHeaders=host;x-amz-date, Signature=00")
			},
			wantErr: ErrIncompleteSignature, wantCode: "IncompleteSignatureException"},
		{name: "unsupported scheme", method: "GET", tmpl: "/2015-03-31/functions",
			mutate:  func(r *http.Request) { r.Header.Set("Authorization", "Basic dXNlcjpwYXNz") },
			wantErr: ErrIncompleteSignature, wantCode: "IncompleteSignatureException"},
		{name: "date unsigned", method: "GET", tmpl: "/2015-03-31/functions",
			mutate: func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), ";x-amz-date", "", 1))
			},
			wantErr: ErrInvalidSignature, wantCode: "InvalidSignatureException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := sdkRequest(t, srv.URL, c.method, c.tmpl, c.fn, c.query, []byte(c.body))
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			if !c.noSign {
				creds := aws.Credentials{AccessKeyID: testCreds.AccessKeyID, SecretAccessKey: testCreds.SecretAccessKey,
					SessionToken: c.sessionToken}
				if c.akid != "" {
					creds.AccessKeyID = c.akid
				}
				if c.secret != "" {
					creds.SecretAccessKey = c.secret
				}
				service, hash := "lambda", sha256Hex([]byte(c.body))
				if c.service != "" {
					service = c.service
				}
				if c.payloadHash != "" {
					hash = c.payloadHash
				}
				// A fresh signer per case: the SDK caches signing keys by access
				// key id, not secret. DisableURIPathEscaping stays false, as for lambda.
				err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, service, "eu-west-3", time.Now().Add(c.signAt))
				if err != nil {
					t.Fatal(err)
				}
			}
			if c.mutate != nil {
				c.mutate(req)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			p, authErr := srv.last()
			if c.wantErr == nil {
				if authErr != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("got status %d, error %v; want success", resp.StatusCode, authErr)
				}
				if p.ID != testCreds.AccessKeyID || p.Method != "sigv4" || p.Region != "eu-west-3" {
					t.Errorf("principal = %+v", p)
				}
				return
			}
			if !errors.Is(authErr, c.wantErr) {
				t.Fatalf("error = %v, want %v", authErr, c.wantErr)
			}
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Amzn-ErrorType") != c.wantCode {
				t.Errorf("got %d %q, want 403 %q", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), c.wantCode)
			}
			if strings.Contains(authErr.Error(), testCreds.SecretAccessKey) {
				t.Errorf("error leaks the secret: %v", authErr)
			}
		})
	}
}

// TestGoLambdaClient drives the real aws-sdk-go-v2 Lambda client (serializer,
// endpoint resolution, signer) against the verifier.
func TestGoLambdaClient(t *testing.T) {
	srv := newAuthServer(t)
	client := func(secret string) *lambda.Client {
		return lambda.New(lambda.Options{
			Region:       "us-east-1",
			BaseEndpoint: aws.String(srv.URL),
			Credentials:  credentials.NewStaticCredentialsProvider(testCreds.AccessKeyID, secret, ""),
			Retryer:      aws.NopRetryer{},
		})
	}
	good, bad := client(testCreds.SecretAccessKey), client("wrong")
	ctx := context.Background()
	calls := []struct {
		name string
		call func(*lambda.Client) error
	}{
		{"ListFunctions", func(c *lambda.Client) error {
			_, err := c.ListFunctions(ctx, &lambda.ListFunctionsInput{Marker: aws.String("x"), MaxItems: aws.Int32(2)})
			return err
		}},
		{"GetFunction qualified", func(c *lambda.Client) error {
			_, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("my-fn:$LATEST")})
			return err
		}},
		{"Invoke", func(c *lambda.Client) error {
			_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("my-fn"), Payload: []byte(`{"k":"v"}`)})
			return err
		}},
		{"Invoke ARN with qualifier", func(c *lambda.Client) error {
			_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(testARN),
				Qualifier: aws.String("$LATEST"), Payload: []byte(`{}`)})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(good); err != nil {
				_, authErr := srv.last()
				t.Fatalf("call failed: %v (server: %v)", err, authErr)
			}
			err := c.call(bad)
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidSignatureException" {
				t.Fatalf("with a wrong secret: err = %v, want InvalidSignatureException", err)
			}
		})
	}
}

// TestBotocore runs botocore's SigV4Auth and boto3's Lambda client (Python)
// against the verifier over real HTTP.
func TestBotocore(t *testing.T) {
	if err := exec.Command("python3", "-c", "import boto3, botocore").Run(); err != nil {
		testkit.Skipf(t, "python3 with boto3/botocore not available (%v): skipping botocore interoperability test", err)
	}
	srv := newAuthServer(t)
	cmd := exec.Command("python3", "testdata/botocore_client.py", srv.URL, testCreds.AccessKeyID, testCreds.SecretAccessKey)
	// Keep the developer's AWS configuration out of the test.
	cmd.Env = []string{"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("botocore script: %v\n%s", err, stderr.String())
	}
	var results []struct {
		Name      string `json:"name"`
		Status    int    `json:"status"`
		ErrorType string `json:"error_type"`
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("parsing script output %q: %v", out, err)
	}
	want := map[string]string{
		"raw wrong secret":   "InvalidSignatureException",
		"raw unknown key":    "UnrecognizedClientException",
		"raw wrong service":  "InvalidSignatureException",
		"boto3 wrong secret": "InvalidSignatureException",
	}
	if len(results) < 14 {
		t.Fatalf("script reported %d results, want 14: %s", len(results), out)
	}
	for _, r := range results {
		t.Run(r.Name, func(t *testing.T) {
			wantCode := want[r.Name]
			wantStatus := http.StatusOK
			if wantCode != "" {
				wantStatus = http.StatusForbidden
			}
			if r.Status != wantStatus || r.ErrorType != wantCode {
				t.Errorf("got %d %q, want %d %q", r.Status, r.ErrorType, wantStatus, wantCode)
			}
		})
	}
}

func TestBearer(t *testing.T) {
	a, err := NewAuthenticator([]Credentials{testCreds, {Token: "owl_second"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		header string
		want   error
	}{
		{"first token", "Bearer " + testCreds.Token, nil},
		{"second token", "Bearer owl_second", nil},
		{"lowercase scheme", "bearer " + testCreds.Token, nil},
		{"unknown token", "Bearer owl_nope", ErrUnrecognizedClient},
		{"token prefix", "Bearer " + testCreds.Token[:10], ErrUnrecognizedClient},
		{"empty token", "Bearer ", ErrUnrecognizedClient},
		{"missing", "", ErrMissingAuthenticationToken},
		{"no scheme", testCreds.Token, ErrIncompleteSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/2015-03-31/functions", nil)
			if c.header != "" {
				r.Header.Set("Authorization", c.header)
			}
			p, err := a.Authenticate(r, nil)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, c.want)
			}
			if c.want == nil && (p.ID != "token" || p.Method != "bearer") {
				t.Errorf("principal = %+v", p)
			}
			var ae *lambdaerr.Error
			if c.want != nil && (!errors.As(err, &ae) || ae.Status() != http.StatusForbidden) {
				t.Errorf("want *lambdaerr.Error with status 403, got %#v", err)
			}
		})
	}
}

// TestClockSkewMessage pins the AWS wording and the configurable limit.
func TestClockSkewMessage(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 30, 0, 0, time.UTC)
	a, err := NewAuthenticator([]Credentials{testCreds})
	if err != nil {
		t.Fatal(err)
	}
	a.Now = func() time.Time { return now }
	a.MaxClockSkew = 5 * time.Minute
	r := httptest.NewRequest("GET", "http://owl.test/2015-03-31/functions", nil)
	creds := aws.Credentials{AccessKeyID: testCreds.AccessKeyID, SecretAccessKey: testCreds.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, sha256Hex(nil), "lambda", "us-east-1", now.Add(-6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(r, nil)
	var ae *lambdaerr.Error
	if !errors.As(err, &ae) || !errors.Is(err, ErrSignatureExpired) {
		t.Fatalf("err = %v, want signature expired", err)
	}
	want := "Signature expired: 20240101T002400Z is now earlier than 20240101T002500Z (20240101T003000Z - 5 min.)"
	if ae.Code != "InvalidSignatureException" || ae.Message != want {
		t.Errorf("got %s %q, want InvalidSignatureException %q", ae.Code, ae.Message, want)
	}
	a.MaxClockSkew = DefaultMaxClockSkew
	if _, err := a.Authenticate(r, nil); err != nil {
		t.Errorf("within the default skew: %v", err)
	}
}

func TestNewAuthenticatorRejectsBadConfig(t *testing.T) {
	for name, creds := range map[string][]Credentials{
		"none":                nil,
		"empty":               {{}},
		"key without secret":  {{AccessKeyID: "AKIA"}},
		"conflicting secrets": {{AccessKeyID: "AKIA", SecretAccessKey: "a"}, {AccessKeyID: "AKIA", SecretAccessKey: "b"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewAuthenticator(creds); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

// TestAuthenticateHeaders: what the headers alone prove, before a body is
// read.
func TestAuthenticateHeaders(t *testing.T) {
	a, err := NewAuthenticator([]Credentials{testCreds})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"a":1}`)
	sign := func(t *testing.T, akid, payloadHash string, declare bool) *http.Request {
		req, err := http.NewRequest("POST", "http://127.0.0.1:8790/2015-03-31/functions/f/invocations", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if declare {
			req.Header.Set("X-Amz-Content-Sha256", payloadHash)
		}
		err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: testCreds.SecretAccessKey},
			req, payloadHash, "lambda", "us-east-1", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	bearer := func(token string) *http.Request {
		req, _ := http.NewRequest("POST", "http://127.0.0.1:8790/x", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		return req
	}

	t.Run("bearer", func(t *testing.T) {
		if p, pending, err := a.AuthenticateHeaders(bearer(testCreds.Token)); err != nil || pending != nil || p.Method != "bearer" {
			t.Errorf("valid token: %+v pending %v err %v", p, pending, err)
		}
		if _, _, err := a.AuthenticateHeaders(bearer("nope")); !errors.Is(err, ErrUnrecognizedClient) {
			t.Errorf("bad token: err %v", err)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "http://127.0.0.1:8790/x", bytes.NewReader(body))
		if _, _, err := a.AuthenticateHeaders(req); err == nil {
			t.Errorf("no Authorization: no error")
		}
	})
	t.Run("sigv4 over an undeclared body hash", func(t *testing.T) {
		req := sign(t, testCreds.AccessKeyID, sha256Hex(body), false)
		p, pending, err := a.AuthenticateHeaders(req)
		if err != nil || pending == nil {
			t.Fatalf("undeclared hash: %+v pending %v err %v; want pending, no error", p, pending, err)
		}
		if p, err := pending.Verify(body); err != nil || p.ID != testCreds.AccessKeyID {
			t.Errorf("then with the body: %+v %v", p, err)
		}
		if _, err := pending.Verify([]byte(`{"a":2}`)); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("then with another body: %v", err)
		}
		// A streamed body: its hash and length.
		if p, err := pending.VerifySum(sha256.Sum256(body), int64(len(body))); err != nil || p.ID != testCreds.AccessKeyID {
			t.Errorf("then with the body's sum: %+v %v", p, err)
		}
		if _, err := pending.VerifySum(sha256.Sum256([]byte(`{"a":2}`)), int64(len(body))); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("then with another body's sum: %v", err)
		}
		if NeedsBodySum(req) {
			t.Errorf("NeedsBodySum of a Pending's request: it has no declared hash to compare")
		}
	})
	t.Run("sigv4 with an unknown key is refused before the body", func(t *testing.T) {
		req := sign(t, "AKIAUNKNOWNKEY000000", sha256Hex(body), false)
		if _, pending, err := a.AuthenticateHeaders(req); !errors.Is(err, ErrUnrecognizedClient) || pending != nil {
			t.Errorf("unknown key: pending %v err %v", pending, err)
		}
	})
	t.Run("sigv4 with a declared body hash", func(t *testing.T) {
		req := sign(t, testCreds.AccessKeyID, sha256Hex(body), true)
		p, pending, err := a.AuthenticateHeaders(req)
		if err != nil || pending != nil || p.ID != testCreds.AccessKeyID {
			t.Fatalf("declared hash: %+v pending %v err %v", p, pending, err)
		}
		if err := CheckBody(req, body); err != nil {
			t.Errorf("the declared body: %v", err)
		}
		if err := CheckBody(req, []byte("other")); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("another body: %v, want ErrInvalidSignature", err)
		}
		if !NeedsBodySum(req) || CheckBodySum(req, sha256.Sum256(body)) != nil {
			t.Errorf("a streamed body's sum: NeedsBodySum %v, CheckBodySum %v", NeedsBodySum(req), CheckBodySum(req, sha256.Sum256(body)))
		}
		if err := CheckBodySum(req, sha256.Sum256([]byte("other"))); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("another body's sum: %v, want ErrInvalidSignature", err)
		}
		// A declared hash the signature does not cover.
		req.Header.Set("X-Amz-Content-Sha256", sha256Hex([]byte("other")))
		if _, _, err := a.AuthenticateHeaders(req); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("swapped declared hash: err %v", err)
		}
	})
	t.Run("sigv4 unsigned payload", func(t *testing.T) {
		req := sign(t, testCreds.AccessKeyID, "UNSIGNED-PAYLOAD", true)
		if _, pending, err := a.AuthenticateHeaders(req); err != nil || pending != nil {
			t.Fatalf("UNSIGNED-PAYLOAD: pending %v err %v", pending, err)
		}
		if err := CheckBody(req, []byte("anything")); err != nil {
			t.Errorf("UNSIGNED-PAYLOAD body: %v", err)
		}
	})
}
