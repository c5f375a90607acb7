package server_test

// Start-up failures: each is one clear error, and whatever was set up
// before it is undone. A second server on a data dir in use is refused
// before it touches anything of the first.

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/server"
	"github.com/owl-project/owl/internal/testkit"
)

// newServer runs server.New on cfg and returns its error; a server that
// does start is shut down at once.
func newServer(t *testing.T, cfg config.Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err == nil {
		_ = srv.Shutdown(ctx)
		t.Fatalf("server.New succeeded; want a start-up failure")
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("the start-up error is not one line: %q", err)
	}
	return err
}

func TestStartupFailures(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	build(t)

	t.Run("data dir in use", func(t *testing.T) {
		ts := startServer(t, "")
		ts.createKitchensink("first")
		ts.wantWorks("first")
		inst := instanceOf(t, ts.dataDir)
		before := len(sandboxProcesses(inst))

		cfg := testConfig(ts.dataDir)
		cfg.Addr = testkit.FreeAddr(t) // another port: the data dir alone collides
		err := newServer(t, cfg)
		if !errors.Is(err, server.ErrDataDirInUse) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
			t.Errorf("second server on the same data dir: %v; want ErrDataDirInUse naming pid %d", err, os.Getpid())
		}
		// The first server's sandboxes were not "cleaned up".
		if after := len(sandboxProcesses(inst)); after < before || before == 0 {
			t.Errorf("sandbox processes of the first server: %d before the second start, %d after", before, after)
		}
		if rep := parseReport(t, ts.wantWorks("first").log); rep.cold {
			t.Errorf("the first server's warm environment is gone after the refused second start")
		}
	})

	t.Run("port in use", func(t *testing.T) {
		ts := startServer(t, "")
		dataDir := t.TempDir()
		cfg := testConfig(dataDir)
		cfg.Addr = strings.TrimPrefix(ts.URL, "http://")
		err := newServer(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "listening on "+cfg.Addr) || !strings.Contains(err.Error(), "--addr") {
			t.Errorf("port in use: %v", err)
		}
		checkNothingLeft(t, dataDir)
		// And the data dir is free again: a server starts on it.
		startServer(t, dataDir).stop()
	})

	t.Run("failure after the sandboxes and the store are up", func(t *testing.T) {
		// The runtimes are installed after the sandbox manager, the
		// network, NATS, the registry and the log store: a file where
		// their directory belongs fails the start at the last step.
		dataDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dataDir, "runtime"), []byte("in the way"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := newServer(t, testConfig(dataDir))
		if err == nil || !strings.Contains(err.Error(), "runtime") {
			t.Errorf("runtime dir blocked: %v", err)
		}
		checkNothingLeft(t, dataDir)
		os.Remove(filepath.Join(dataDir, "runtime"))
		startServer(t, dataDir).stop()
	})

	t.Run("second owl serve process", func(t *testing.T) {
		first := startOwl(t, t.TempDir())
		cmd := exec.Command(owlBinary, "serve", "--addr", testkit.FreeAddr(t), "--data", first.dataDir)
		cmd.Env = owlEnv()
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("second owl serve: %v, want exit status 1\n%s", err, out)
		}
		msg := strings.TrimSpace(string(out))
		if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "owl: ") ||
			!strings.Contains(msg, "pid "+strconv.Itoa(first.cmd.Process.Pid)) {
			t.Errorf("second owl serve said %q; want one line naming pid %d", msg, first.cmd.Process.Pid)
		}
		if resp, body := first.do("GET", "/2016-08-19/account-settings", nil, nil); resp.StatusCode != 200 {
			t.Errorf("the first owl serve answers %d after the second was refused: %s", resp.StatusCode, body)
		}
	})
}
