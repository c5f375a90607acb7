package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/config"
)

// consoleSignIn signs in to the console with token and returns the
// answer, its session cookie (nil when refused) and its CSRF token.
func (ts *testServer) consoleSignIn(token string, hdr map[string]string) (*http.Response, *http.Cookie, string) {
	ts.t.Helper()
	body, _ := json.Marshal(map[string]string{"token": token})
	h := map[string]string{"Authorization": "", "Content-Type": "application/json"}
	for k, v := range hdr {
		h[k] = v
	}
	resp, b := ts.do(http.MethodPost, "/console/session", body, h)
	var out struct{ CSRF string }
	_ = json.Unmarshal(b, &out)
	for _, c := range resp.Cookies() {
		if c.Name == "owl_session" {
			return resp, c, out.CSRF
		}
	}
	return resp, nil, out.CSRF
}

// withCookie sends a request authenticated only by the console's cookie
// (and csrf in X-Owl-Csrf when not empty).
func (ts *testServer) withCookie(method, path string, body []byte, c *http.Cookie, csrf string, hdr map[string]string) (*http.Response, []byte) {
	ts.t.Helper()
	h := map[string]string{"Authorization": "", "Cookie": c.Name + "=" + c.Value}
	if csrf != "" {
		h["X-Owl-Csrf"] = csrf
	}
	for k, v := range hdr {
		h[k] = v
	}
	return ts.do(method, path, body, h)
}

// TestConsoleSession: the console is served at /console/ with a strict
// CSP, a browser's GET / goes there while API clients keep their answer;
// the token signs in to an HttpOnly, SameSite=Strict cookie that
// authenticates the API's reads, and its writes only with the session's
// CSRF header (a refused write changes nothing); function URLs never take
// the cookie; signing out ends the session.
func TestConsoleSession(t *testing.T) {
	ts := startServer(t, "")
	ts.createKitchensink("con")

	consoleServed(t, ts)

	resp, c, _ := ts.consoleSignIn("owl_not_the_token", nil)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Amzn-ErrorType") != "UnrecognizedClientException" || c != nil {
		t.Fatalf("sign-in with a wrong token: %d %s, cookie %v", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), c)
	}
	resp, c, _ = ts.consoleSignIn(testToken, map[string]string{"Origin": "http://evil.example"})
	if resp.StatusCode != http.StatusForbidden || c != nil {
		t.Fatalf("sign-in from another origin: %d, cookie %v", resp.StatusCode, c)
	}
	resp, c, csrf := ts.consoleSignIn(testToken, map[string]string{"Origin": ts.URL})
	if resp.StatusCode != 200 || c == nil || csrf == "" {
		t.Fatalf("sign-in: %d, cookie %v, csrf %q", resp.StatusCode, c, csrf)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.MaxAge <= 0 || c.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP, expiring", c)
	}
	if _, tc, _ := ts.consoleSignIn(testToken, map[string]string{"X-Forwarded-Proto": "https"}); tc == nil || !tc.Secure {
		t.Fatalf("behind a TLS proxy the cookie is not Secure: %+v", tc)
	}

	// The cookie alone authorizes nothing, reads included.
	for _, bad := range []string{"", "not-the-token", testToken} {
		resp, body := ts.withCookie(http.MethodGet, "/2015-03-31/functions/con", nil, c, bad, nil)
		if e := parseAPIError(t, resp, body); e.status != http.StatusForbidden || e.code != "AccessDeniedException" || !strings.Contains(e.message, "X-Owl-Csrf") {
			t.Fatalf("a read with the cookie and CSRF %q: %d %s", bad, resp.StatusCode, body)
		}
	}
	resp, body := ts.withCookie(http.MethodGet, "/2015-03-31/functions/con", nil, c, csrf, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"FunctionName":"con"`) {
		t.Fatalf("GetFunction with the cookie and CSRF: %d %s", resp.StatusCode, body)
	}
	update := []byte(`{"MemorySize":256}`)
	for _, bad := range []string{"", "not-the-token", testToken} {
		resp, body = ts.withCookie(http.MethodPut, "/2015-03-31/functions/con/configuration", update, c, bad, nil)
		if e := parseAPIError(t, resp, body); e.status != http.StatusForbidden || e.code != "AccessDeniedException" || !strings.Contains(e.message, "X-Owl-Csrf") {
			t.Fatalf("an update with the cookie and CSRF %q: %d %s", bad, resp.StatusCode, body)
		}
	}
	resp, body = ts.withCookie(http.MethodPost, "/2015-03-31/functions/con/invocations", []byte(`{}`), c, "", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an invoke with the cookie and no CSRF: %d %s", resp.StatusCode, body)
	}
	resp, body = ts.withCookie(http.MethodPut, "/2015-03-31/functions/con/code", []byte(`{"ZipFile":""}`), c, "", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a code upload with the cookie and no CSRF: %d %s", resp.StatusCode, body)
	}
	if got := ts.loggedInvocations("con"); got != 1 {
		t.Fatalf("refused invocations ran: %d invocations besides the sentinel", got-1)
	}
	fn, err := ts.sdk().GetFunctionConfiguration(t.Context(), &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("con")})
	if err != nil || aws.ToInt32(fn.MemorySize) != 128 {
		t.Fatalf("a refused update changed the function: %v, %v", fn.MemorySize, err)
	}
	resp, body = ts.withCookie(http.MethodPut, "/2015-03-31/functions/con/configuration", update, c, csrf, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"MemorySize":256`) {
		t.Fatalf("an update with the cookie and CSRF: %d %s", resp.StatusCode, body)
	}

	cookieNotForEndpoints(t, ts, c, csrf)

	resp, _ = ts.withCookie(http.MethodDelete, "/console/session", nil, c, "", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF: %d", resp.StatusCode)
	}
	resp, _ = ts.withCookie(http.MethodDelete, "/console/session", nil, c, csrf, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	resp, body = ts.withCookie(http.MethodGet, "/2015-03-31/functions/con", nil, c, csrf, nil)
	wantError(t, resp, body, http.StatusForbidden, "UnrecognizedClientException", "The console session has expired or was signed out: sign in again.")
}

// consoleServed checks a browser's GET / goes to the console while API
// clients keep their answers, and the console comes with a strict CSP.
func consoleServed(t *testing.T, ts *testServer) {
	t.Helper()
	resp, _ := ts.do(http.MethodGet, "/", nil, map[string]string{"Authorization": "", "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("a browser's GET /: %d to %q, want 302 to /console/", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := ts.do(http.MethodGet, "/", nil, nil)
	wantError(t, resp, body, http.StatusNotFound, "UnknownOperationException", "Unknown operation GET /")
	resp, body = ts.do(http.MethodGet, "/", nil, map[string]string{"Authorization": ""})
	wantError(t, resp, body, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")

	resp, body = ts.do(http.MethodGet, "/console/", nil, map[string]string{"Authorization": ""})
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<script type="module" src="app.js">`) ||
		!strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") ||
		strings.Contains(csp, "unsafe") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET /console/: %d, CSP %q, body %.200s", resp.StatusCode, csp, body)
	}
}

// cookieNotForEndpoints checks function URLs and routes refuse the
// console's cookie, CSRF header and all.
func cookieNotForEndpoints(t *testing.T, ts *testServer, c *http.Cookie, csrf string) {
	t.Helper()
	// Function URLs take SigV4 or nothing: not the console's cookie.
	u, err := ts.sdk().CreateFunctionUrlConfig(t.Context(), &lambda.CreateFunctionUrlConfigInput{
		FunctionName: aws.String("con"), AuthType: types.FunctionUrlAuthTypeAwsIam})
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(aws.ToString(u.FunctionUrl), ts.URL)
	resp, body := ts.withCookie(http.MethodPost, path, []byte(`{}`), c, csrf, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an AWS_IAM function URL with the console's cookie: %d %s", resp.StatusCode, body)
	}
	// Nor routes: the cookie may make one (an API operation), not call it.
	resp, body = ts.withCookie(http.MethodPost, "/owl/v1/routes", []byte(`{"RouteKey":"GET /private","Function":"con","AuthType":"AWS_IAM"}`), c, csrf, nil)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("adding a route with the cookie and CSRF: %d %s", resp.StatusCode, body)
	}
	resp, body = ts.withCookie(http.MethodGet, "/http/private", nil, c, csrf, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an AWS_IAM route with the console's cookie: %d %s", resp.StatusCode, body)
	}
	// A public route's function sees the request's other cookies, never
	// the session.
	ts.createZip("con-py", interpreter(t, "python3"), "app.handler", makeZip(t, zipEntry{name: "app.py", body: urlPython}))
	resp, body = ts.withCookie(http.MethodPost, "/owl/v1/routes", []byte(`{"RouteKey":"GET /public","Function":"con-py"}`), c, csrf, nil)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("adding a public route: %d %s", resp.StatusCode, body)
	}
	resp, body = httpDo(t, http.MethodGet, ts.URL+"/http/public", nil, map[string]string{"Cookie": "theme=dark; " + c.Name + "=" + c.Value})
	if resp.StatusCode != 200 || !strings.Contains(string(body), "theme=dark") || strings.Contains(string(body), c.Value) || strings.Contains(string(body), c.Name) {
		t.Fatalf("a public route's event: %d %s", resp.StatusCode, body)
	}
}

// TestConsoleSignInLimited: a real server closes the console's sign-in
// to an address after --console-signin-failures wrong tokens: the next
// attempt, with the right token, is 429 with Retry-After and no cookie;
// the API's bearer token keeps working; once the window has passed the
// right token signs in again.
func TestConsoleSignInLimited(t *testing.T) {
	ts := startServer(t, "", func(c *config.Config) {
		c.ConsoleSignInFailures, c.ConsoleSignInWindow = 3, 5*time.Second
	})
	for i := 0; i < 3; i++ {
		if resp, c, _ := ts.consoleSignIn(fmt.Sprintf("owl_wrong-%d", i), nil); resp.StatusCode != http.StatusForbidden || c != nil {
			t.Fatalf("wrong token %d: %d, cookie %v", i, resp.StatusCode, c)
		}
	}
	resp, c, _ := ts.consoleSignIn(testToken, nil)
	if resp.StatusCode != http.StatusTooManyRequests || c != nil || resp.Header.Get("X-Amzn-ErrorType") != "TooManyRequestsException" {
		t.Fatalf("the right token after 3 wrong ones: %d %s, cookie %v", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), c)
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 5 {
		t.Errorf("Retry-After %q: want 1 to 5 seconds (the window is 5 s)", resp.Header.Get("Retry-After"))
	}
	if resp, body := ts.do(http.MethodGet, "/2015-03-31/functions/", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the API with the bearer token while the sign-in is closed: %d %s", resp.StatusCode, body)
	}
	eventually(t, 30*time.Second, func() error {
		resp, c, csrf := ts.consoleSignIn(testToken, nil)
		if resp.StatusCode != http.StatusOK || c == nil || csrf == "" {
			return fmt.Errorf("sign-in after the window: %d, cookie %v", resp.StatusCode, c)
		}
		return nil
	})
}
