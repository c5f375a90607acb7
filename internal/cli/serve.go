package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/server"
)

// newServeCmd is `owl serve`: the whole platform in this process, until
// SIGINT/SIGTERM, then a graceful shutdown.
func newServeCmd() *cobra.Command {
	var sc *serverConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Owl platform (API, embedded NATS, sandboxes) on this machine",
		Long: `Run the whole Owl platform in this process: the Lambda-compatible API, an embedded
NATS server with JetStream storing under --data, and the sandboxes functions run in.

Every flag has an environment variable: --addr is OWL_ADDR, --memory-budget is
OWL_MEMORY_BUDGET, and so on; flags win over the environment (docs/settings.md).
Credentials come from OWL_ACCESS_KEY_ID/OWL_SECRET_ACCESS_KEY and OWL_TOKEN; those
unset are generated on first start and stored (mode 0600) in <data>/credentials.json.

OWL_PPROF_ADDR=127.0.0.1:6060 (off when unset) serves Go's net/http/pprof profiles
(/debug/pprof/) on a separate listener, for profiling the server; keep it on loopback:
profiles reveal memory contents and cost CPU.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := sc.resolve()
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, cmd.ErrOrStderr())
		},
	}
	sc = bindServerConfig(cmd)
	return cmd
}

// newLogger is Owl's own logger, writing to w at cfg's level, as text
// (key=value) or JSON (one object a line).
func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", cfg.LogLevel, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// serve runs the platform until ctx ends. Before anything is set up it
// validates cfg and runs the host checks of `owl doctor`: a failure stops
// it there, with one line per failed check on stderr.
func serve(ctx context.Context, cfg config.Config, stderr io.Writer) error {
	server.Version = version()
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	if err := checkHost(ctx, cfg, logger, stderr); err != nil {
		return err
	}
	// A node of a cluster waits for a majority of its peers, however
	// long they take (it says so every 10 s); a single node's start is
	// bounded.
	startCtx, cancel := context.WithCancel(ctx)
	if !cfg.Clustered() {
		startCtx, cancel = context.WithTimeout(ctx, time.Minute)
	}
	defer cancel()
	srv, err := server.New(startCtx, cfg, logger)
	if err != nil {
		return err
	}
	srv.Start()
	if addr := os.Getenv("OWL_PPROF_ADDR"); addr != "" {
		stop, err := servePprof(addr, logger)
		if err != nil {
			_ = srv.Shutdown(context.Background())
			return err
		}
		defer stop()
	}
	// Until a signal, or until the API stops serving on its own (its
	// listener failed): then the node shuts down and exits non-zero, so a
	// supervisor restarts it instead of it sitting there unreachable.
	var died error
	select {
	case <-ctx.Done():
	case <-srv.Done():
		died = srv.Err()
		if died == nil {
			died = errors.New("the API stopped serving")
		}
		logger.Error("the API stopped serving; shutting down", "err", died)
	}
	logger.Info("shutting down", "deadline", cfg.ShutdownTimeout)
	sctx, cancel2 := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel2()
	err = srv.Shutdown(sctx)
	if died != nil {
		return fmt.Errorf("serving the API on %s: %w", cfg.Addr, died)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// servePprof serves net/http/pprof on its own listener at addr, apart from
// the API (which never exposes it), until stop is called. It is opt-in
// (OWL_PPROF_ADDR) and meant for loopback: profiling the warm path needs a
// CPU profile of the server under load.
func servePprof(addr string, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("OWL_PPROF_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("pprof server", "err", err)
		}
	}()
	logger.Info("pprof serving", "addr", ln.Addr().String())
	return func() { _ = hs.Close() }, nil
}
