package cli

import (
	"context"
	"errors"
	"fmt"
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
	cfg := config.Default()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Owl platform (API, embedded NATS, sandboxes) on this machine",
		Long: `Run the whole Owl platform in this process: the Lambda-compatible API, an embedded
NATS server with JetStream storing under --data, and the sandboxes functions run in.

Every flag has an environment variable: --addr is OWL_ADDR, --memory-budget is
OWL_MEMORY_BUDGET, and so on; flags win over the environment.
Credentials come from OWL_ACCESS_KEY_ID/OWL_SECRET_ACCESS_KEY and OWL_TOKEN; those
unset are generated on first start and stored (mode 0600) in <data>/credentials.json.

OWL_PPROF_ADDR=127.0.0.1:6060 (off when unset) serves Go's net/http/pprof profiles
(/debug/pprof/) on a separate listener, for profiling the server; keep it on loopback:
profiles reveal memory contents and cost CPU.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Flags()
			// Flags win over the environment, which wins over defaults.
			fromFlags := cfg
			if err := cfg.FromEnv(os.Getenv); err != nil {
				return err
			}
			for name, apply := range map[string]func(){
				"addr":                   func() { cfg.Addr = fromFlags.Addr },
				"data":                   func() { cfg.DataDir = fromFlags.DataDir },
				"shutdown-timeout":       func() { cfg.ShutdownTimeout = fromFlags.ShutdownTimeout },
				"log-level":              func() { cfg.LogLevel = fromFlags.LogLevel },
				"concurrency-limit":      func() { cfg.ConcurrencyLimit = fromFlags.ConcurrencyLimit },
				"memory-budget":          func() { cfg.MemoryBudgetMB = fromFlags.MemoryBudgetMB },
				"memory-overcommit":      func() { cfg.MemoryOvercommit = fromFlags.MemoryOvercommit },
				"capacity-wait":          func() { cfg.CapacityWait = fromFlags.CapacityWait },
				"idle-timeout":           func() { cfg.IdleTimeout = fromFlags.IdleTimeout },
				"max-lifetime":           func() { cfg.MaxLifetime = fromFlags.MaxLifetime },
				"freeze-after":           func() { cfg.FreezeAfter = fromFlags.FreezeAfter },
				"prewarm":                func() { cfg.Prewarm = fromFlags.Prewarm },
				"network-egress":         func() { cfg.NetworkEgress = fromFlags.NetworkEgress },
				"network-cidr":           func() { cfg.NetworkCIDR = fromFlags.NetworkCIDR },
				"disk-reserve":           func() { cfg.DiskReserveMB = fromFlags.DiskReserveMB },
				"store-collect-interval": func() { cfg.StoreCollectInterval = fromFlags.StoreCollectInterval },
			} {
				if flags.Changed(name) {
					apply()
				}
			}
			return serve(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "API listen address HOST:PORT (env OWL_ADDR)")
	f.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (env OWL_DATA)")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long in-flight invocations may finish on SIGTERM (env OWL_SHUTDOWN_TIMEOUT)")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error (env OWL_LOG_LEVEL)")
	f.IntVar(&cfg.ConcurrencyLimit, "concurrency-limit", cfg.ConcurrencyLimit, "invocations running at once on this node (env OWL_CONCURRENCY_LIMIT)")
	f.IntVar(&cfg.MemoryBudgetMB, "memory-budget", cfg.MemoryBudgetMB, "MB of memory for execution environments, all capped together by one cgroup (env OWL_MEMORY_BUDGET; default: RAM less a reserve)")
	f.Float64Var(&cfg.MemoryOvercommit, "memory-overcommit", cfg.MemoryOvercommit, "admit environments whose memory adds up to budget × this factor (env OWL_MEMORY_OVERCOMMIT)")
	f.DurationVar(&cfg.CapacityWait, "capacity-wait", cfg.CapacityWait, "how long an invocation waits for memory before 429 (env OWL_CAPACITY_WAIT)")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "keep-alive of an idle environment (env OWL_IDLE_TIMEOUT)")
	f.DurationVar(&cfg.MaxLifetime, "max-lifetime", cfg.MaxLifetime, "retire environments older than this once idle (env OWL_MAX_LIFETIME)")
	f.DurationVar(&cfg.FreezeAfter, "freeze-after", cfg.FreezeAfter, "freeze idle environments after this; 0 never (env OWL_FREEZE_AFTER)")
	f.IntVar(&cfg.Prewarm, "prewarm", cfg.Prewarm, "pre-warmed environments kept per Python/Node.js runtime; 0 disables (env OWL_PREWARM)")
	f.BoolVar(&cfg.NetworkEgress, "network-egress", cfg.NetworkEgress,
		"let functions reach the host's networks (Network egress, the default); false: loopback only (env OWL_NETWORK_EGRESS)")
	f.StringVar(&cfg.NetworkCIDR, "network-cidr", cfg.NetworkCIDR,
		"IPv4 range of the sandboxes' addresses, shared by the instances of the host (env OWL_NETWORK_CIDR)")
	f.IntVar(&cfg.DiskReserveMB, "disk-reserve", cfg.DiskReserveMB,
		"MB kept free on the data dir's disk for deletions; writes needing space are refused below it (env OWL_DISK_RESERVE)")
	f.DurationVar(&cfg.StoreCollectInterval, "store-collect-interval", cfg.StoreCollectInterval,
		"how often unreferenced code, logs of deleted functions and orphaned uploads are collected (env OWL_STORE_COLLECT_INTERVAL)")
	return cmd
}

func serve(ctx context.Context, cfg config.Config) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("log level %q: %w", cfg.LogLevel, err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
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
	<-ctx.Done()
	logger.Info("shutting down", "deadline", cfg.ShutdownTimeout)
	sctx, cancel2 := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel2()
	if err := srv.Shutdown(sctx); err != nil {
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
