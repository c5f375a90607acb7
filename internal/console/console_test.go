package console

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/auth"
)

const token = "owl_console-test-token-0123456789abcdefghij"

func newTestHandler(t *testing.T) (*Handler, *auth.Sessions) {
	t.Helper()
	a, err := auth.NewAuthenticator([]auth.Credentials{{Token: token}})
	if err != nil {
		t.Fatal(err)
	}
	s := auth.NewSessions(a, time.Hour)
	return New(s, SignInLimit{Failures: 5, Window: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil))), s
}

func serve(h http.Handler, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// Bad sign-ins get Lambda's error types and start no session; every
// answer carries the CSP.
func TestSignInRefusals(t *testing.T) {
	h, s := newTestHandler(t)
	for _, tc := range []struct {
		name, method, body string
		hdr                map[string]string
		status             int
		code, message      string
	}{
		{"not JSON", "POST", `token=` + token, nil, 400, "InvalidRequestContentException", "The sign-in body must be JSON"},
		{"too long", "POST", `{"token":"` + strings.Repeat("a", 5000) + `"}`, nil, 400, "InvalidRequestContentException", "The sign-in body must be JSON"},
		{"no token", "POST", `{}`, nil, 403, "UnrecognizedClientException", "The security token included in the request is invalid."},
		{"wrong token", "POST", `{"token":"owl_nope"}`, nil, 403, "UnrecognizedClientException", "The security token included in the request is invalid."},
		{"another origin", "POST", `{"token":"` + token + `"}`, map[string]string{"Origin": "https://evil.example"}, 403, "AccessDeniedException", "Sign-in from another origin"},
		{"no session", "GET", ``, nil, 403, "UnrecognizedClientException", "sign in again"},
		{"sign-out without a session", "DELETE", ``, nil, 403, "UnrecognizedClientException", "sign in again"},
		{"unknown method", "PUT", `{}`, nil, 404, "UnknownOperationException", "Unknown operation PUT /console/session"},
		{"a page is not written", "POST", `{}`, nil, 404, "UnknownOperationException", "Unknown operation POST /console/app.js"},
	} {
		path := "/console/session"
		if strings.Contains(tc.name, "page") {
			path = "/console/app.js"
		}
		w := serve(h, tc.method, path, tc.body, tc.hdr)
		if w.Code != tc.status || w.Header().Get("X-Amzn-ErrorType") != tc.code || !strings.Contains(w.Body.String(), tc.message) {
			t.Errorf("%s: %d %s %s, want %d %s %q", tc.name, w.Code, w.Header().Get("X-Amzn-ErrorType"), w.Body, tc.status, tc.code, tc.message)
		}
		if w.Header().Get("Set-Cookie") != "" {
			t.Errorf("%s: set a cookie %q", tc.name, w.Header().Get("Set-Cookie"))
		}
		if w.Header().Get("Content-Security-Policy") != ContentSecurityPolicy {
			t.Errorf("%s: no CSP", tc.name)
		}
	}
	if s.Len() != 0 {
		t.Fatalf("refused sign-ins made %d sessions", s.Len())
	}
}

// The pages are served with the CSP; the index loads only its own module.
func TestPages(t *testing.T) {
	h, _ := newTestHandler(t)
	for path, want := range map[string]string{
		"/console/":            `<script type="module" src="app.js"></script>`,
		"/console/app.js":      "import",
		"/console/console.css": ":root",
	} {
		w := serve(h, "GET", path, "", nil)
		if w.Code != 200 || !strings.Contains(w.Body.String(), want) || w.Header().Get("Content-Security-Policy") != ContentSecurityPolicy {
			t.Errorf("GET %s: %d, CSP %q, body %.100s", path, w.Code, w.Header().Get("Content-Security-Policy"), w.Body)
		}
	}
	index := serve(h, "GET", "/console/", "", nil).Body.String()
	if strings.Contains(index, "<script>") || strings.Contains(index, "style=") || strings.Contains(index, "http") {
		t.Errorf("the index has inline script, inline style or a link elsewhere: %s", index)
	}
}
