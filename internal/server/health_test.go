package server_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/config"
)

// /healthz answers without credentials and reveals nothing but "ok";
// everything else still needs them.
func TestHealthz(t *testing.T) {
	ts := startServer(t, "")
	noAuth := map[string]string{"Authorization": ""}

	resp, body := ts.do(http.MethodGet, "/healthz", nil, noAuth)
	if resp.StatusCode != http.StatusOK || string(body) != `{"status":"ok"}` {
		t.Fatalf("GET /healthz: %d %s", resp.StatusCode, body)
	}
	for k := range resp.Header {
		if !slices.Contains([]string{"Content-Type", "Content-Length", "Cache-Control", "Date", "X-Amzn-Requestid"}, k) {
			t.Errorf("/healthz answers header %s: %q", k, resp.Header.Get(k))
		}
	}
	for _, secret := range []string{ts.dataDir, "nats", "version", testToken} {
		if strings.Contains(string(body), secret) {
			t.Errorf("/healthz body reveals %q: %s", secret, body)
		}
	}

	resp, body = ts.do(http.MethodHead, "/healthz", nil, noAuth)
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD /healthz: %d %q", resp.StatusCode, body)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		resp, _ = ts.do(m, "/healthz", nil, noAuth)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /healthz: %d, Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}

	resp, body = ts.do(http.MethodGet, "/2015-03-31/functions", nil, noAuth)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("ListFunctions without credentials: %d %s", resp.StatusCode, body)
	}
	resp, body = ts.do(http.MethodGet, "/2015-03-31/functions", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("ListFunctions with the token: %d %s", resp.StatusCode, body)
	}
}

// A sandbox manager that can no longer create sandboxes (its root mount
// point is gone) makes /healthz answer 503 naming it, and only it; putting
// it back makes it 200 again.
func TestHealthzUnavailable(t *testing.T) {
	ts := startServer(t, "", func(c *config.Config) { c.Prewarm = 0 })
	noAuth := map[string]string{"Authorization": ""}
	rootfs := filepath.Join(ts.dataDir, "sandboxes", "rootfs")
	if err := os.Remove(rootfs); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		resp, body := ts.do(http.MethodGet, "/healthz", nil, noAuth)
		if resp.StatusCode != http.StatusServiceUnavailable || string(body) != `{"status":"unavailable","failed":["sandbox"]}` {
			return fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return nil
	})
	if err := os.Mkdir(rootfs, 0o700); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if resp, body := ts.do(http.MethodGet, "/healthz", nil, noAuth); resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return nil
	})
}
