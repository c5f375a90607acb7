package server_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/sandbox"
	"github.com/owl-project/owl/internal/server"
)

// Test credentials every test server accepts.
const (
	testKeyID  = "AKIAOWLTESTKEY000001"
	testSecret = "owl-test-secret-key-0123456789abcdefghij"
	testToken  = "owl_test_token_0123456789abcdefghijklmnop"
)

var (
	buildDir string
	// kitchenZip is a zip holding the kitchensink function as bootstrap.
	kitchenZip []byte
	owlBinary  string
	buildOnce  sync.Once
	buildErr   error
)

func TestMain(m *testing.M) {
	sandbox.MaybeRunInit()
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// requireRoot skips tests that need real sandboxes when not root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: real sandboxes use namespaces and cgroups")
	}
}

// build compiles the test function and the owl binary once per run.
func build(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "owl-test-build-")
		if buildErr != nil {
			return
		}
		bin := filepath.Join(buildDir, "bootstrap")
		if buildErr = goBuild(bin, "./testdata/kitchensink"); buildErr != nil {
			return
		}
		kitchenZip, buildErr = zipFiles(map[string]string{"bootstrap": bin})
		if buildErr != nil {
			return
		}
		owlBinary = filepath.Join(buildDir, "owl")
		buildErr = goBuild(owlBinary, "../../cmd/owl")
	})
	if buildErr != nil {
		t.Fatalf("building test binaries: %v", buildErr)
	}
}

func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// zipFiles zips host files under the given names, keeping their modes.
func zipFiles(files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, path := range files {
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		hdr, err := zip.FileInfoHeader(st)
		if err != nil {
			return nil, err
		}
		hdr.Name, hdr.Method = name, zip.Deflate
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(w, f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// testServer is a real Owl server with embedded NATS and real sandboxes.
type testServer struct {
	*server.Server
	t       *testing.T
	dataDir string
	URL     string
}

func testConfig(dataDir string) config.Config {
	cfg := config.Default()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = dataDir
	cfg.AccessKeyID, cfg.SecretAccessKey, cfg.Token = testKeyID, testSecret, testToken
	cfg.ShutdownTimeout = 10 * time.Second
	return cfg
}

// startServer starts a server on dataDir (a fresh temp dir when empty) and
// shuts it down when the test ends.
func startServer(t *testing.T, dataDir string, mutate ...func(*config.Config)) *testServer {
	t.Helper()
	requireRoot(t)
	build(t)
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	cfg := testConfig(dataDir)
	for _, m := range mutate {
		m(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.New(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("starting server: %v", err)
	}
	srv.Start()
	ts := &testServer{Server: srv, t: t, dataDir: dataDir, URL: "http://" + srv.Addr()}
	t.Cleanup(func() { ts.stop() })
	return ts
}

func (ts *testServer) stop() {
	if ts.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ts.Server.Shutdown(ctx); err != nil {
		ts.t.Errorf("shutdown: %v", err)
	}
	ts.Server = nil
}

// testWriter sends server logs to the test log, dropping them after the
// test ends (late background logs must not panic).
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// sdk returns an aws-sdk-go-v2 Lambda client for ts.
func (ts *testServer) sdk() *lambda.Client {
	return lambda.New(lambda.Options{
		BaseEndpoint: aws.String(ts.URL),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(testKeyID, testSecret, ""),
		// The SDK must not retry: a retried invoke would run twice.
		RetryMaxAttempts: 1,
	})
}

// do sends a request with the bearer token (or the given auth header).
func (ts *testServer) do(method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
