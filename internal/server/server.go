// Package server wires Owl's components into one running platform: the
// embedded NATS bus, the registry, the log store, the sandbox manager, the
// worker and the HTTP API. New builds them in order (rolling back on
// failure), Start serves, Shutdown stops admitting, drains in-flight
// invocations up to a deadline and tears everything down in reverse order.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/owl-project/owl/internal/auth"
	"github.com/owl-project/owl/internal/cluster"
	"github.com/owl-project/owl/internal/codezip"
	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/console"
	"github.com/owl-project/owl/internal/diskspace"
	"github.com/owl-project/owl/internal/events"
	"github.com/owl-project/owl/internal/history"
	"github.com/owl-project/owl/internal/images"
	"github.com/owl-project/owl/internal/lambdaapi"
	"github.com/owl-project/owl/internal/leases"
	"github.com/owl-project/owl/internal/metrics"
	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/routes"
	"github.com/owl-project/owl/internal/runtimes"
	"github.com/owl-project/owl/internal/sandbox"
	"github.com/owl-project/owl/internal/sources"
	"github.com/owl-project/owl/internal/storegc"
	"github.com/owl-project/owl/internal/telemetry"
	"github.com/owl-project/owl/internal/tracing"
	"github.com/owl-project/owl/internal/triggers"
	"github.com/owl-project/owl/internal/usage"
	"github.com/owl-project/owl/internal/worker"
)

// Server is one running Owl node.
type Server struct {
	cfg    config.Config
	logger *slog.Logger
	creds  auth.Credentials

	bus     *natsbus.Bus
	space   *diskspace.Guard
	gc      *storegc.Collector
	reg     *registry.Registry
	logs    *telemetry.LogStore
	events  *events.Queue
	sched   *triggers.Scheduler // schedules, started by Start
	routes  *routes.Table
	sources *sources.Mappings // event source mappings: their pollers run from New
	metrics *metrics.Metrics
	tracer  *tracing.Tracer  // nil: no spans
	deliver *events.Delivery // started by Start
	sbm     *sandbox.Manager
	worker  *worker.Worker
	images  *images.Store
	pulls   *imagePulls // image functions' pulls (images.go)
	httpSrv *http.Server
	ln      net.Listener
	// metricsSrv serves /metrics openly on cfg.MetricsAddr (nil: off).
	metricsSrv *http.Server
	metricsLn  net.Listener
	usage      *usage.Recorder
	// In a cluster (--nats): this node's record in the node registry and
	// the placer invocations go through (cluster.go); nil alone.
	members *cluster.Membership
	placer  *cluster.Placer
	// invoker runs invocations: the local worker, or placement.
	invoker lambdaapi.Invoker
	history *history.Recorder // the metric history (metrics.go)
	leases  *leases.Table     // cluster-wide concurrency limits; nil alone or on an api node
	lock    *os.File          // the data dir's lock (lock.go), held until teardown

	// The lifecycle: Start serves once; done closes when serving stops
	// (the listener died, or Shutdown), with serveErr the reason;
	// Shutdown runs once, in any state.
	startOnce, shutdownOnce sync.Once
	started                 bool // set by Start, read by Shutdown after startOnce
	done                    chan struct{}
	serveErr                error
	shutdownErr             error
}

// New builds every component. On error, whatever was built is torn down.
// It is long because it is the node's wiring, in dependency order, read top
// to bottom: each step uses the ones above it, and teardown undoes them in
// reverse.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (s *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir %q: %w", cfg.DataDir, err)
	}
	cfg.DataDir = dataDir
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	s = &Server{cfg: cfg, logger: logger, done: make(chan struct{})}
	built := s // the named result is nil on the error returns
	defer func() {
		if err != nil {
			built.teardown()
		}
	}()

	// The lock comes before anything in the data dir is touched, and the
	// listener before the sandboxes, cgroups and network are set up: the
	// two commonest start-up failures (a second server, a port in use) then
	// leave nothing to undo.
	if s.lock, err = lockDataDir(dataDir); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w (stop what uses it, or choose another --addr/OWL_ADDR)", cfg.Addr, err)
	}
	s.ln = newCapListener(ln, cfg.MaxConnections)

	// Fresh credentials (none given, none stored) are generated now; in a
	// cluster, such a node adopts the cluster's instead (cluster.go).
	fresh := cfg.AccessKeyID == "" && cfg.Token == "" && !auth.Exists(dataDir)
	s.creds, err = auth.LoadOrCreate(dataDir, auth.Credentials{
		AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey, Token: cfg.Token, NATSPassword: cfg.NATSPassword,
	})
	if err != nil {
		return nil, fmt.Errorf("loading credentials: %w", err)
	}

	// An api node runs no sandbox: no manager, cgroups, spares or network.
	if runsEnvironments(cfg) {
		if err := s.startSandboxes(ctx, dataDir); err != nil {
			return nil, err
		}
	}

	// The store's limits derive from the disk (a small one starts with a
	// smaller log stream, or refuses with one line saying what it needs);
	// the guard refuses writes below the reserve (docs/security.md).
	s.space = diskspace.New(dataDir, int64(cfg.DiskReserveMB)<<20)
	// The sandboxes' /tmp disks are sparse images in the data dir: what
	// their functions may still write is counted as used.
	// What the live /tmp disks may still write, over --tmp-overcommit: a
	// burst of 1000 environments at 512 MB would otherwise need 512 GB.
	if s.sbm != nil {
		s.space.SetPromised(func() int64 { return int64(float64(s.sbm.TmpPromisedBytes()) / cfg.TmpOvercommit) })
	}
	plan, err := diskspace.PlanStart(dataDir, natsbus.DirBytes(natsbus.StoreDir(dataDir)), s.space.Reserve())
	if err != nil {
		return nil, err
	}
	if s.bus, err = connectBus(ctx, cfg, s); err != nil {
		return nil, err
	}
	if cfg.Clustered() {
		if s.creds, err = shareCredentials(ctx, s.bus.JS, dataDir, s.creds, fresh, logger); err != nil {
			return nil, err
		}
	}
	authn, err := auth.NewAuthenticator([]auth.Credentials{s.creds})
	if err != nil {
		return nil, fmt.Errorf("building authenticator: %w", err)
	}
	s.reg, err = registry.Open(ctx, s.bus.JS, registry.Options{
		Region: cfg.Region, AccountID: cfg.AccountID, CodeStorageLimit: cfg.CodeStorageLimit,
		Space:  s.space,
		Logger: logger.With("component", "registry"),
	})
	if err != nil {
		return nil, err
	}
	logBytes := plan.LogBytes
	if cfg.FunctionLogBytes != 0 {
		logBytes = cfg.FunctionLogBytes
	}
	s.logs, err = telemetry.OpenLogStore(ctx, s.bus.JS, cfg.LogRetention, logBytes, s.space, logger)
	if err != nil {
		return nil, err
	}
	logEach := cfg.FunctionLogBytesEach
	if logEach == 0 {
		logEach = logBytes / 4
	}
	s.logs.LimitEach(logEach)
	logger.Info("store", "data", dataDir, "free_bytes", plan.Free, "store_bytes", plan.StoreBytes,
		"reserve_bytes", plan.Reserve, "log_stream_max_bytes", logBytes, "function_log_max_bytes", logEach)
	runtimeDir := filepath.Join(dataDir, "runtime")
	if err := runtimes.Install(runtimeDir); err != nil {
		return nil, err
	}
	// Spans go to an OTLP endpoint when one is configured (nil: none).
	if s.tracer, err = tracing.New(ctx, tracing.Options{Endpoint: cfg.OTLPEndpoint,
		Logger: logger.With("component", "tracing")}); err != nil {
		return nil, err
	}
	// Metrics read the node's parts when scraped (metrics.go); the worker
	// tells them, and the usage sums, of every invocation.
	s.metrics = newMetrics(s)
	if s.usage, err = usage.Open(ctx, s.bus.JS, logger.With("component", "usage")); err != nil {
		return nil, err
	}
	if s.history, err = openHistory(ctx, s, cfg, plan, logger.With("component", "history")); err != nil {
		return nil, err
	}
	// The API serves functions' own calls from inside their sandboxes
	// (worker/caller.go); it is made after the worker, which asks for
	// that handler only once environments start (after New).
	var api *lambdaapi.API
	s.images, err = images.New(images.Config{Dir: filepath.Join(dataDir, "images"), Insecure: cfg.InsecureRegistries,
		AuthFile: cfg.RegistryAuthFile, MaxBytes: cfg.ImageSizeLimit, Space: s.space, Logger: logger.With("component", "images")})
	if err != nil {
		return nil, err
	}
	leaseTable, err := s.openLeases(ctx)
	if err != nil {
		return nil, err
	}
	s.worker = worker.New(worker.Config{
		DataDir: dataDir, RuntimeDir: runtimeDir, Region: cfg.Region, AccountID: cfg.AccountID,
		UID: cfg.SandboxUID, GID: cfg.SandboxGID,
		ConcurrencyLimit: cfg.ConcurrencyLimit, IdleTimeout: cfg.IdleTimeout, FreezeAfter: cfg.FreezeAfter,
		MaxLifetime: cfg.MaxLifetime, MemoryBudgetMB: cfg.MemoryBudgetMB, MemoryOvercommit: cfg.MemoryOvercommit, TmpOvercommit: cfg.TmpOvercommit,
		CapacityWait: cfg.CapacityWait, StartsInParallel: cfg.StartsInParallel, Reservations: s.reg, Provisioning: s.provisioning(s.reg), Staleness: s.reg, Leases: leaseTable,
		Egress: cfg.NetworkEgress, Prewarm: prewarm(cfg), Space: s.space, Images: s.images,
		Inside:   func(c worker.Caller) http.Handler { return insideHandler(api, c, logger) },
		Observer: invocationObserver{s.metrics, s.usage, s.history},
		Tracer:   s.tracer,
		Logger:   logger.With("component", "worker"),
	}, s.reg, s.logs, s.sandboxes())

	s.pulls = newImagePulls(s.images, s.reg, logger.With("component", "images"))
	if err := s.pulls.resume(ctx); err != nil {
		return nil, err
	}
	s.reg.OnCodeCollected(s.worker.DropCode)
	s.gc = storegc.New(s.reg, s.logs, s.bus, s.space, cfg.StoreCollectInterval, logger.With("component", "store"))
	s.reg.OnChange(applyChange(s.worker, s.gc)) // the one path from the registry to the worker (changes.go)
	s.reg.OnChange(func(c registry.Change) {
		if c.Deleted() && c.Version == registry.Latest {
			s.metrics.Forget(c.Name) // a deleted function's series go with it
			s.forgetHistory(c.Name)
		}
	})
	// Accepted asynchronous invocations wait here until delivered, and
	// are kept in the event log for replay; both streams are sized like
	// the log stream unless the event log is given a size.
	eventLog := events.LogOptions{MaxAge: cfg.EventLogAge, MaxBytes: cfg.EventLogBytes}
	if eventLog.MaxBytes == 0 {
		eventLog.MaxBytes = plan.LogBytes
	}
	s.events, err = events.Open(ctx, s.bus.JS, events.Options{
		MaxBytes: plan.LogBytes, Log: eventLog, Space: s.space, WriteError: s.bus.StreamWriteError,
		Logger: logger.With("component", "events"),
	})
	if err != nil {
		return nil, err
	}

	s.invoker = workerInvoker{s.worker}
	if clustered(cfg) {
		if err := s.joinCluster(ctx); err != nil {
			return nil, err
		}
		local := workerInvoker{}
		if runsEnvironments(cfg) {
			local.w = s.worker
		}
		s.invoker = placedInvoker{p: s.placer, m: s.members, local: local}
	}

	s.sched, err = triggers.Open(ctx, s.bus.JS, s.reg, s.events, triggers.Options{
		Region: cfg.Region, AccountID: cfg.AccountID, Logger: logger.With("component", "triggers"),
	})
	if err != nil {
		return nil, err
	}

	// Code uploads spool their zips here, unlinked at once; a crash
	// between creating and unlinking one leaves it, so start empty.
	uploadDir := filepath.Join(dataDir, "uploads")
	if err := os.RemoveAll(uploadDir); err != nil {
		return nil, fmt.Errorf("clearing the upload directory: %w", err)
	}
	if err := os.Mkdir(uploadDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the upload directory: %w", err)
	}
	s.sources, err = sources.Open(ctx, s.bus.JS, s.reg, eventInvoker{s.invoker, s.tracer}, s.events, s.bus.NC.Publish, sources.Options{
		MaxAge: cfg.EventLogAge, MaxBytes: plan.LogBytes, StreamBytes: plan.LogBytes, RetryDelay: min(time.Second, cfg.AsyncRetryDelay),
		Region: cfg.Region, AccountID: cfg.AccountID, Logger: logger.With("component", "sources"),
	})
	if err != nil {
		return nil, err
	}
	// The route table serves through the API, which takes the table: the
	// table calls the API once both exist.
	s.routes, err = routes.Open(ctx, s.bus.JS, s.reg, func(w http.ResponseWriter, r *http.Request, rt routes.Route) {
		api.ServeRoute(w, r, rt)
	}, logger.With("component", "routes"))
	if err != nil {
		return nil, err
	}
	sessions := auth.NewSessions(authn, cfg.ConsoleSessionTTL)
	api = lambdaapi.New(lambdaapi.Options{
		Region: cfg.Region, AccountID: cfg.AccountID, CodeStorageLimit: cfg.CodeStorageLimit,
		ConcurrencyLimit: cfg.ConcurrencyLimit, ZipLimits: codezip.DefaultLimits(),
		NetworkEgress: cfg.NetworkEgress, MaxBodyMemory: int64(cfg.MaxBodyMemoryMB) << 20,
		UploadDir: uploadDir, Space: s.space,
		Health: s.health, Events: s.events, EventLog: s.events, Triggers: s.sched, Routes: s.routes, Mappings: s.sources, Metrics: s.metrics.Handler(), Usage: s.usage, History: s.history,
		Images: s.pulls, Tracer: s.tracer, Sessions: sessions, Console: console.New(sessions,
			console.SignInLimit{Failures: cfg.ConsoleSignInFailures, Window: cfg.ConsoleSignInWindow}, logger.With("component", "console")),
		Nodes: s.nodes(), WorkerOnly: cfg.Role == config.RoleWorker,
		Logger: logger.With("component", "api"),
	}, authn, s.reg, s.invoker, s.logs)
	if cfg.MetricsAddr != "" {
		if s.metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return nil, fmt.Errorf("listening on %s for metrics: %w (choose another --metrics-addr)", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.metrics.Handler())
		s.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	}
	s.httpSrv = &http.Server{
		Handler: api,
		// Headers must arrive within ReadHeaderTimeout and fit in
		// MaxHeaderBytes; bodies are read at a minimum rate by the API
		// (lambdaapi/bodies.go), only once the headers authenticated them.
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// startSandboxes starts the sandbox manager (spare inits, the memory
// budget's parent cgroup, the egress network) and removes what a crashed
// run left.
func (s *Server) startSandboxes(ctx context.Context, dataDir string) error {
	cfg := s.cfg
	sbCfg := sandbox.Config{
		Instance:       instanceID(dataDir),
		RootDir:        filepath.Join(dataDir, "sandboxes"),
		Spares:         cfg.SpareInits,
		TmpSpares:      min(cfg.SpareInits+2, sandbox.MaxSpares),
		MemoryBudgetMB: cfg.MemoryBudgetMB,
		Logger:         s.logger.With("component", "sandbox"),
	}
	if cfg.NetworkEgress {
		pool, _ := cfg.NetworkPool() // checked by Validate
		sbCfg.Egress = &sandbox.EgressConfig{Pool: pool}
	}
	var err error
	if s.sbm, err = sandbox.NewManager(sbCfg); err != nil {
		return fmt.Errorf("starting sandbox manager: %w", err)
	}
	if n, err := s.sbm.CleanupStale(ctx); err != nil {
		return fmt.Errorf("cleaning up after a previous run: %w", err)
	} else if n > 0 {
		s.logger.Warn("removed sandboxes left by a previous run", "count", n)
	}
	return nil
}

// clusterOptions are the embedded NATS server's cluster settings (nil:
// a single node).
func clusterOptions(cfg config.Config) *natsbus.Cluster {
	if !cfg.EmbeddedCluster() {
		return nil
	}
	return &natsbus.Cluster{Name: cfg.ClusterName, Addr: cfg.ClusterAddr, Routes: cfg.Routes,
		User: cfg.ClusterUser, Password: cfg.ClusterPassword,
		CertFile: cfg.ClusterTLSCert, KeyFile: cfg.ClusterTLSKey, CAFile: cfg.ClusterTLSCA}
}

// instanceID names this data dir's sandboxes and cgroups, stable across
// restarts so a start after a crash finds what the crash left.
func instanceID(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return hex.EncodeToString(sum[:4])
}

// Start serves the API in the background. A second call does nothing.
// Done tells when serving stops.
func (s *Server) Start() {
	s.startOnce.Do(func() {
		s.started = true
		s.gc.Start()
		d, err := events.StartDelivery(context.Background(), s.events, s.reg, eventInvoker{s.invoker, s.tracer}, events.DeliveryOptions{
			Concurrency: s.cfg.AsyncDeliveries, RetryDelay: s.cfg.AsyncRetryDelay, ThrottleBackoff: s.cfg.AsyncThrottleBackoff,
			Config: s.reg.AsyncConfig, Publish: s.bus.NC.Publish, RecursionAllowed: s.reg.RecursionAllowed,
			Settled: s.logs.Flush, Logger: s.logger.With("component", "events"),
		})
		if err != nil {
			// The API still accepts events (they are stored); the next
			// start delivers them.
			s.logger.Error("asynchronous invocations will not be delivered until a restart", "err", err)
		}
		s.deliver = d
		s.sched.Start()
		if s.metricsSrv != nil {
			go func() {
				if err := s.metricsSrv.Serve(s.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
					s.logger.Error("the metrics listener stopped", "addr", s.cfg.MetricsAddr, "err", err)
				}
			}()
		}
		go func() {
			err := s.httpSrv.Serve(s.ln)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			s.serveErr = err
			close(s.done)
		}()
		s.logger.Info("owl serving", "addr", s.Addr(), "data", s.cfg.DataDir)
	})
}

// Done is closed when the API stops serving: after Shutdown, or when its
// listener fails (then Err says why and the node should be shut down).
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is why serving stopped, once Done is closed: nil after Shutdown,
// else the listener's error.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.serveErr
	default:
		return nil
	}
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// MetricsAddr is the address the open metrics listener is bound to
// (--metrics-addr, resolved when its port was 0); empty when it is off.
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// Credentials are the credentials this server accepts.
func (s *Server) Credentials() auth.Credentials { return s.creds }

// Worker exposes the node's worker (tests and benchmarks inspect it).
func (s *Server) Worker() *worker.Worker { return s.worker }

// EventStats counts the asynchronous invocations accepted, delivered,
// retried, throttled and dropped since the start.
func (s *Server) EventStats() events.Stats {
	if s.deliver == nil {
		return events.Stats{Accepted: s.events.Accepted()}
	}
	return s.deliver.Stats()
}

// SourceStats counts what the event source mappings did since the start.
func (s *Server) SourceStats() sources.Stats { return s.sources.Stats() }

// TriggerStats counts the schedules' firings since the start.
func (s *Server) TriggerStats() triggers.Stats { return s.sched.Stats() }

// StoreStats is what the store's last collection found: its size on disk,
// what of it is live and reclaimable, the free space and the reserve.
func (s *Server) StoreStats() storegc.Stats { return s.gc.Stats() }

// CollectStore runs a store collection now (tests, and an operator's
// trigger later) and returns what it found.
func (s *Server) CollectStore(ctx context.Context) (storegc.Stats, error) { return s.gc.Collect(ctx) }

// Shutdown stops accepting requests, lets in-flight invocations finish until
// ctx ends, then tears down every sandbox and the NATS server. It works in
// any state (started or not, serving or with a dead listener); later calls
// return the first one's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.startOnce.Do(func() {}) // no Start after this
		var errs []error
		if s.started {
			if s.members != nil {
				// The others stop placing here first; what they sent
				// already is answered before the worker closes.
				s.members.StopPlacements(ctx)
			}
			if s.metricsSrv != nil {
				_ = s.metricsSrv.Close()
			}
			if api, ok := s.httpSrv.Handler.(*lambdaapi.API); ok {
				api.Close() // log follows end: Shutdown need not wait for their clients
			}
			if err := s.httpSrv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("draining API: %w", err))
				_ = s.httpSrv.Close()
			}
			<-s.done
			if s.serveErr != nil {
				errs = append(errs, fmt.Errorf("serving: %w", s.serveErr))
			}
		} else {
			close(s.done)
		}
		s.teardown()
		s.shutdownErr = errors.Join(errs...)
	})
	return s.shutdownErr
}

// teardown releases components in reverse order of construction.
func (s *Server) teardown() {
	if s.ln != nil {
		_ = s.ln.Close()
	}
	if s.metricsLn != nil {
		_ = s.metricsLn.Close()
	}
	if s.sched != nil {
		s.sched.Close() // before the queue it stores firings in
	}
	if s.routes != nil {
		s.routes.Close()
	}
	if s.sources != nil {
		s.sources.Close() // before the worker: pollers invoke on it
	}
	if s.deliver != nil {
		s.deliver.Close() // before the worker: deliveries run on it
	}
	if s.gc != nil {
		s.gc.Close() // before the worker: a collection notifies it
	}
	if s.placer != nil {
		s.placer.Close() // before the worker: forwarded invocations run on it
	}
	if s.members != nil {
		s.members.Leave()
	}
	if s.pulls != nil {
		s.pulls.close() // before the registry they write outcomes to
	}
	if s.worker != nil {
		s.worker.Close()
	}
	if s.leases != nil { // after the worker: its invocations hold slots
		lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.leases.Close(lctx)
		cancel()
	}
	if s.usage != nil {
		s.usage.Close() // after the worker: it flushes the last invocations' sums
	}
	if s.history != nil {
		s.history.Close() // after the worker: it writes the last interval's samples
	}
	if s.tracer != nil { // after the worker: the last invocations' spans
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.tracer.Shutdown(fctx); err != nil {
			s.logger.Warn("exporting the last spans", "err", err)
		}
		cancel()
	}
	if s.logs != nil {
		fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.logs.Flush(fctx)
		cancel()
		s.logs.Close()
	}
	if s.reg != nil {
		s.reg.Close()
	}
	if s.bus != nil {
		s.bus.Close()
	}
	if s.sbm != nil {
		if err := s.sbm.Close(); err != nil {
			s.logger.Warn("closing sandbox manager", "err", err)
		}
	}
	if s.lock != nil {
		_ = s.lock.Close() // releases the flock
	}
}
