package server_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/server"
)

// Shutdown works in any state: before Start, twice, and after the
// listener died; a dead listener closes Done with the reason in Err.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	build(t)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	newSrv := func() *server.Server {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cfg := testConfig(t.TempDir())
		cfg.Prewarm = 0
		srv, err := server.New(ctx, cfg, logger)
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	shutdown := func(srv *server.Server) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- srv.Shutdown(ctx) }()
		select {
		case err := <-errc:
			return err
		case <-time.After(time.Minute):
			t.Fatal("Shutdown did not return")
			return nil
		}
	}

	t.Run("never started", func(t *testing.T) {
		srv := newSrv()
		if err := shutdown(srv); err != nil {
			t.Errorf("Shutdown of a server never started: %v", err)
		}
		select {
		case <-srv.Done():
		default:
			t.Error("Done is open after Shutdown")
		}
		if err := shutdown(srv); err != nil {
			t.Errorf("a second Shutdown: %v", err)
		}
		srv.Start() // after Shutdown: nothing happens
		if srv.Err() != nil {
			t.Errorf("Err after Shutdown: %v", srv.Err())
		}
	})

	t.Run("listener dies", func(t *testing.T) {
		srv := newSrv()
		srv.Start()
		select {
		case <-srv.Done():
			t.Fatal("Done closed while serving")
		default:
		}
		if err := srv.CloseListener(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-srv.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("Done still open 30 s after the listener died")
		}
		if srv.Err() == nil {
			t.Error("Err is nil after the listener died")
		}
		if err := shutdown(srv); err == nil {
			t.Error("Shutdown after the listener died reports no error")
		}
	})

	t.Run("started then shut down", func(t *testing.T) {
		srv := newSrv()
		srv.Start()
		if err := shutdown(srv); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if srv.Err() != nil {
			t.Errorf("Err after a clean Shutdown: %v", srv.Err())
		}
	})
}
