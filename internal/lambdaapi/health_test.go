package lambdaapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/owl-project/owl/internal/auth"

	"github.com/owl-project/owl/internal/testkit"
)

// fakeHealth is a HealthFunc whose answer the test sets.
type fakeHealth struct {
	mu       sync.Mutex
	problems []HealthProblem
	calls    int
}

func (f *fakeHealth) set(p ...HealthProblem) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.problems = p
}

func (f *fakeHealth) check(context.Context) []HealthProblem {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.problems
}

func testAPI(t *testing.T, hf HealthFunc) (*API, *testkit.Buffer) {
	t.Helper()
	authn, err := auth.NewAuthenticator([]auth.Credentials{{AccessKeyID: "AKIAOWLTEST", SecretAccessKey: "secret", Token: "token"}})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(Options{Region: "us-east-1", AccountID: "000000000000", Health: hf, Logger: logger}, authn, nil, nil, nil), logs
}

func serve(h http.Handler, method, path string) (*httptest.ResponseRecorder, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec, string(b)
}

func TestHealthz(t *testing.T) {
	f := &fakeHealth{}
	api, logs := testAPI(t, f.check)

	rec, body := serve(api, "GET", "/healthz")
	if rec.Code != 200 || body != `{"status":"ok"}` || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("healthy GET: %d %s", rec.Code, body)
	}
	rec, body = serve(api, "HEAD", "/healthz")
	if rec.Code != 200 || body != "" {
		t.Errorf("healthy HEAD: %d %q", rec.Code, body)
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		rec, _ = serve(api, m, "/healthz")
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
	// Everything else still needs credentials.
	rec, _ = serve(api, "GET", "/2015-03-31/functions")
	if rec.Code != http.StatusForbidden {
		t.Errorf("unauthenticated list: %d, want 403", rec.Code)
	}
	if strings.Contains(logs.String(), "healthz") {
		t.Errorf("healthy probes were logged:\n%s", logs.String())
	}
}

// Unhealthy: 503 naming the failed checks and nothing else; the cause is
// logged once, at WARN, and the recovery once, at INFO.
func TestHealthzUnavailable(t *testing.T) {
	f := &fakeHealth{}
	logs := &testkit.Buffer{}
	h := newHealth(f.check, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	h.ttl = 0

	f.set(HealthProblem{Check: "nats", Err: errors.New("NATS connection down: CLOSED")},
		HealthProblem{Check: "disk", Err: errors.New("/srv/owl: 12 MiB free")})
	for range 3 {
		rec, body := serve(h, "GET", "/healthz")
		if rec.Code != http.StatusServiceUnavailable || body != `{"status":"unavailable","failed":["nats","disk"]}` {
			t.Errorf("unhealthy: %d %s", rec.Code, body)
		}
	}
	if got := strings.Count(logs.String(), "level=WARN"); got != 1 ||
		!strings.Contains(logs.String(), "nats: NATS connection down: CLOSED; disk: /srv/owl: 12 MiB free") {
		t.Errorf("want one WARN with the causes, got:\n%s", logs.String())
	}

	f.set()
	for range 3 {
		if rec, _ := serve(h, "GET", "/healthz"); rec.Code != 200 {
			t.Errorf("recovered: %d", rec.Code)
		}
	}
	if got := strings.Count(logs.String(), "level=INFO"); got != 1 {
		t.Errorf("want one INFO for the recovery, got:\n%s", logs.String())
	}
}

// Probes within the cache TTL share one run of the checks.
func TestHealthzCache(t *testing.T) {
	f := &fakeHealth{}
	h := newHealth(f.check, nil)
	for range 10 {
		serve(h, "GET", "/healthz")
	}
	if f.calls != 1 {
		t.Errorf("%d runs of the checks for 10 probes within %v", f.calls, healthCacheTTL)
	}
	// Without a HealthFunc the API answering is the whole answer.
	if rec, body := serve(newHealth(nil, nil), "GET", "/healthz"); rec.Code != 200 || body != `{"status":"ok"}` {
		t.Errorf("no HealthFunc: %d %s", rec.Code, body)
	}
}
