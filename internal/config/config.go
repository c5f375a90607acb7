// Package config owns Owl's one configuration struct: its defaults, its
// environment variables (OWL_*), and Validate, which rejects bad values with
// a message naming the setting. Flags are bound at the edge (internal/cli).
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/owl-project/owl/internal/runtimes"
	"github.com/owl-project/owl/internal/tracing"
)

// DefaultAddr is where `owl serve` listens and where the client looks by default.
const DefaultAddr = "127.0.0.1:8790"

// Config is everything `owl serve` needs. Zero values are not meaningful:
// start from Default.
type Config struct {
	// Addr is the HTTP listen address of the API (OWL_ADDR).
	Addr string
	// DataDir holds NATS storage, the code cache and credentials (OWL_DATA).
	DataDir string
	// Region and AccountID appear in ARNs (OWL_REGION, OWL_ACCOUNT_ID).
	Region    string
	AccountID string
	// ShutdownTimeout bounds how long in-flight invocations may finish on SIGTERM.
	ShutdownTimeout time.Duration
	// CodeStorageLimit is the installation's quota of stored code bytes (OWL_CODE_STORAGE_LIMIT).
	CodeStorageLimit int64
	// ConcurrencyLimit is the account's concurrent executions limit.
	ConcurrencyLimit int
	// IdleTimeout is how long an idle execution environment is kept warm.
	IdleTimeout time.Duration
	// ConsoleSessionTTL is how long a web console sign-in lasts
	// (OWL_CONSOLE_SESSION_TTL).
	ConsoleSessionTTL time.Duration
	// ConsoleSignInFailures wrong tokens from one client address within
	// ConsoleSignInWindow close the console's sign-in to that address
	// until the window has passed (OWL_CONSOLE_SIGNIN_FAILURES,
	// OWL_CONSOLE_SIGNIN_WINDOW).
	ConsoleSignInFailures int
	ConsoleSignInWindow   time.Duration
	// MetricHistoryInterval is how often each function's metric sample
	// is written to the history; MetricHistoryAge and MetricHistoryBytes
	// bound the history (OWL_METRIC_HISTORY_*; bytes 0: sized from the
	// disk at start).
	MetricHistoryInterval time.Duration
	MetricHistoryAge      time.Duration
	MetricHistoryBytes    int64
	// FreezeAfter is how long an idle environment runs before it is frozen
	// (OWL_FREEZE_AFTER); 0 never freezes.
	FreezeAfter time.Duration
	// Prewarm is how many pre-warmed environments (interpreter started,
	// waiting for a function) the worker keeps per interpreted runtime,
	// and of sandboxes waiting to exec a custom runtime's bootstrap
	// (OWL_PREWARM); 0 disables pre-warming.
	Prewarm int
	// SpareInits is how many sandbox inits are kept started ahead of time
	// (OWL_SPARE_INITS): a cold start takes one instead of paying the owl
	// binary's own start-up as the sandbox's init (~3-5 ms). 0 disables.
	SpareInits int
	// MaxLifetime is how long an execution environment may live; once
	// older it is retired the next time it is idle (OWL_MAX_LIFETIME).
	MaxLifetime time.Duration
	// MemoryBudgetMB is the memory this node gives execution environments
	// (OWL_MEMORY_BUDGET, MB; default: the host's RAM less a reserve for Owl
	// and the system). One parent cgroup caps them all at it.
	MemoryBudgetMB int
	// MemoryOvercommit scales the budget for admission
	// (OWL_MEMORY_OVERCOMMIT): environments whose MemorySize adds up to
	// budget × overcommit may exist at once; the cgroup cap still holds,
	// so an overcommitted node kills function processes, never Owl.
	MemoryOvercommit float64
	// TmpOvercommit divides what the live environments' /tmp disks may
	// still write before the data dir's disk guard counts it
	// (OWL_TMP_OVERCOMMIT): 1 guarantees every /tmp its whole size.
	TmpOvercommit float64
	// CapacityWait is how long an invocation waits for memory to free up
	// before it is refused with TooManyRequestsException
	// (OWL_CAPACITY_WAIT).
	CapacityWait time.Duration
	// StartsInParallel bounds the environments starting at once
	// (OWL_STARTS_IN_PARALLEL); 0: four per CPU.
	StartsInParallel int
	// SandboxUID and SandboxGID are the identity function code runs as.
	SandboxUID, SandboxGID int
	// DiskReserveMB is the free space (MB) kept on the data dir's
	// filesystem for deletions and the store's housekeeping
	// (OWL_DISK_RESERVE): writes that need space are refused at once when
	// they would go below it, instead of failing inside the store.
	DiskReserveMB int
	// StoreCollectInterval is how often the store collector runs
	// (OWL_STORE_COLLECT_INTERVAL); it also runs at start and soon after a
	// failed run.
	StoreCollectInterval time.Duration
	// SyncAlways makes the store fsync every write before it is
	// acknowledged (OWL_SYNC_ALWAYS, default false: it syncs every 10 s),
	// so that an accepted event or stored function survives a power loss
	// too, at the cost docs/events.md records.
	SyncAlways bool
	// AsyncDeliveries bounds the asynchronous invocations delivered at
	// once on this node (OWL_ASYNC_DELIVERIES).
	AsyncDeliveries int
	// AsyncRetryDelay is the wait before an asynchronous invocation's
	// first retry after a function error; the second waits twice as long
	// (OWL_ASYNC_RETRY_DELAY; Lambda waits about 1 and 2 minutes).
	AsyncRetryDelay time.Duration
	// AsyncThrottleBackoff is the longest wait between the tries of a
	// throttled asynchronous invocation, which start a second apart and
	// double (OWL_ASYNC_THROTTLE_BACKOFF; Lambda: up to 5 minutes).
	AsyncThrottleBackoff time.Duration
	// EventLogAge is how long the event log keeps the record of a
	// finished event (OWL_EVENT_LOG_AGE); an unfinished one stays.
	EventLogAge time.Duration
	// EventLogBytes bounds the event log's size; past three quarters the
	// oldest finished records go, and a log full of unfinished events
	// refuses new ones (OWL_EVENT_LOG_BYTES; 0: sized from the disk like
	// the log stream).
	EventLogBytes int64
	// LogRetention bounds how long function logs are kept.
	LogRetention time.Duration
	// FunctionLogBytes bounds the function logs' size, the oldest lines
	// going first; 0 sizes it from the disk.
	FunctionLogBytes int64
	// FunctionLogBytesEach bounds one function's share of the function
	// logs, its oldest lines going first; 0 is a quarter of their size.
	FunctionLogBytesEach int64
	// LogLevel of Owl's own slog output: debug, info, warn, error.
	LogLevel string
	// LogFormat of Owl's own slog output: text or json.
	LogFormat string
	// NetworkEgress lets functions reach the host's networks (and what they
	// route to) from their sandboxes (OWL_NETWORK_EGRESS, default true). It
	// is then the default of functions that do not choose (Network
	// "egress"); false makes every function "none": loopback only.
	NetworkEgress bool
	// NetworkCIDR is the IPv4 range sandboxes with egress take their
	// addresses from (OWL_NETWORK_CIDR), shared by the Owl instances of a
	// host: each takes a free /22 of it. It must not overlap a network the
	// host reaches.
	NetworkCIDR string
	// InsecureRegistries are the container registries (HOST[:PORT]) image
	// functions are pulled from over plain HTTP (--insecure-registry,
	// repeatable, as Docker's); all others need HTTPS.
	InsecureRegistries []string
	// RegistryAuthFile is a docker-style config.json whose "auths" hold
	// the registries' credentials; "" pulls anonymously.
	RegistryAuthFile string
	// ImageSizeLimit bounds a container image's unpacked size in bytes.
	ImageSizeLimit int64
	// MaxConnections caps the API's concurrent connections
	// (OWL_MAX_CONNECTIONS); one more is answered 503 and closed.
	MaxConnections int
	// MaxBodyMemoryMB caps the memory held by request bodies being read or
	// handled at once (OWL_MAX_BODY_MEMORY, MB); a request past it gets 429.
	// A sixteenth of it (at most 64 MB) may be held by bodies whose sender
	// is not yet authenticated (SigV4 signing a body hash it did not declare).
	// Code uploads count only the JSON around their zip: the zip is
	// decoded into a file in the data dir as it arrives.
	MaxBodyMemoryMB int
	// AccessKeyID, SecretAccessKey and Token are the first credentials
	// (OWL_ACCESS_KEY_ID, OWL_SECRET_ACCESS_KEY, OWL_TOKEN); those left empty
	// are generated on first start and stored in the data directory.
	AccessKeyID, SecretAccessKey, Token string
	// NATSListen, when set (HOST:PORT), serves NATS clients outside Owl
	// (OWL_NATS_LISTEN; off by default): user "owl" with NATSPassword
	// (OWL_NATS_PASSWORD, else generated and stored with the credentials)
	// publishes and subscribes outside the system's and Owl's subjects.
	NATSListen, NATSPassword string
	// NATS, when set, is the URL (or comma-separated URLs) of an existing
	// NATS server or cluster with JetStream to use instead of the embedded
	// one (OWL_NATS; docs/cluster.md). Its identity is NATSCreds (a
	// .creds file), NATSNKey (an NKey seed file), NATSUser with
	// NATSUserPassword, or NATSToken; NATSCA, NATSCert and NATSKey are its
	// TLS files.
	NATS                                  string
	NATSCreds, NATSNKey                   string
	NATSUser, NATSUserPassword, NATSToken string
	NATSCA, NATSCert, NATSKey             string
	// Role is what this node does in a cluster (OWL_ROLE): "all" (the
	// API and environments: one machine), "api" (the API, placing
	// invocations on workers; runs no sandbox) or "worker" (environments
	// only; its listener serves /healthz, /metrics and /owl/v1/nodes).
	Role string
	// NodeName names this node in `owl nodes` (OWL_NODE_NAME; empty: the
	// host's name). Nodes on one NATS need distinct names.
	NodeName string
	// Runtimes, when set, limits the runtimes this node runs to these
	// (OWL_RUNTIMES; empty: every runtime the machine can run). Placement
	// never sends a function to a node without its runtime.
	Runtimes []string
	// MetricsAddr, when set (HOST:PORT), serves /metrics without
	// credentials on a listener of its own (OWL_METRICS_ADDR; off by
	// default: the API's /metrics is authenticated).
	MetricsAddr string
	// OTLPEndpoint, when set (an http:// or https:// URL, the base of
	// OTLP/HTTP's /v1/traces), exports the spans of invocations there
	// (OWL_OTLP_ENDPOINT). Empty: the standard OTEL_EXPORTER_OTLP_ENDPOINT
	// and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT decide; none set, no spans.
	OTLPEndpoint string
	// ClusterName, ClusterAddr and Routes join the embedded NATS server to
	// a cluster of Owl nodes (docs/cluster.md): the cluster's name, this
	// node's route listener HOST:PORT, and the peers' route URLs
	// (nats-route://HOST:PORT). All empty: a single node, no port.
	ClusterName, ClusterAddr string
	Routes                   []string
	// ClusterUser and ClusterPassword (OWL_CLUSTER_PASSWORD, a secret) are
	// the credentials every route asks of and gives its peer.
	ClusterUser, ClusterPassword string
	// ClusterTLSCert and ClusterTLSKey are this node's certificate for
	// routes, ClusterTLSCA the authority the peers' must be signed by.
	ClusterTLSCert, ClusterTLSKey, ClusterTLSCA string
}

// EmbeddedCluster reports whether c clusters its embedded NATS server
// with other nodes' (--cluster-name, --cluster-addr, --routes).
func (c Config) EmbeddedCluster() bool {
	return c.ClusterName != "" || c.ClusterAddr != "" || len(c.Routes) > 0
}

// Clustered reports whether this node shares its NATS with other nodes:
// an existing NATS (--nats) or an embedded server clustered with others'.
// It then joins the node registry and places invocations.
func (c Config) Clustered() bool { return c.NATS != "" || c.EmbeddedCluster() }

// Default returns the configuration for a single machine.
func Default() Config {
	return Config{
		Addr:                  DefaultAddr,
		DataDir:               DefaultDataDir(),
		Region:                "us-east-1",
		AccountID:             "000000000000",
		ShutdownTimeout:       30 * time.Second,
		CodeStorageLimit:      75 << 30,
		ConcurrencyLimit:      1000,
		IdleTimeout:           10 * time.Minute,
		ConsoleSessionTTL:     12 * time.Hour,
		ConsoleSignInFailures: 5,
		ConsoleSignInWindow:   time.Minute,
		MetricHistoryInterval: 10 * time.Second,
		MetricHistoryAge:      7 * 24 * time.Hour,
		FreezeAfter:           50 * time.Millisecond,
		Prewarm:               1,
		SpareInits:            2,
		MaxLifetime:           2 * time.Hour,
		MemoryBudgetMB:        DefaultMemoryBudgetMB(),
		MemoryOvercommit:      1,
		TmpOvercommit:         16,
		CapacityWait:          time.Second,
		SandboxUID:            993,
		SandboxGID:            990,
		DiskReserveMB:         128,
		StoreCollectInterval:  time.Minute,
		AsyncDeliveries:       64,
		AsyncRetryDelay:       time.Minute,
		AsyncThrottleBackoff:  5 * time.Minute,
		EventLogAge:           7 * 24 * time.Hour,
		LogRetention:          7 * 24 * time.Hour,
		LogLevel:              "info",
		LogFormat:             "text",
		NetworkEgress:         true,
		NetworkCIDR:           DefaultNetworkCIDR,
		MaxConnections:        4096,
		MaxBodyMemoryMB:       1024,
		ImageSizeLimit:        10 << 30,
		Role:                  RoleAll,
	}
}

// The roles of a node (Config.Role).
const (
	RoleAll    = "all"
	RoleAPI    = "api"
	RoleWorker = "worker"
)

var clusterNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// validateEmbeddedCluster checks the embedded cluster's settings: all of
// name, address and routes or none, routes as URLs, credentials and TLS
// files in pairs, and not with --nats (which uses another NATS).
func (c Config) validateEmbeddedCluster() []error {
	var errs []error
	if !c.EmbeddedCluster() {
		if c.ClusterUser != "" || c.ClusterPassword != "" || c.ClusterTLSCert != "" || c.ClusterTLSKey != "" || c.ClusterTLSCA != "" {
			errs = append(errs, errors.New("cluster credentials or TLS given without --cluster-name, --cluster-addr and --routes"))
		}
		return errs
	}
	if c.NATS != "" {
		errs = append(errs, errors.New("--nats uses an existing NATS: --cluster-name, --cluster-addr and --routes cluster the embedded one; give one or the other"))
	}
	if c.ClusterName == "" || c.ClusterAddr == "" || len(c.Routes) == 0 {
		errs = append(errs, errors.New("cluster: --cluster-name, --cluster-addr and --routes go together (docs/cluster.md)"))
	}
	if !clusterNameRe.MatchString(c.ClusterName) && c.ClusterName != "" {
		errs = append(errs, fmt.Errorf("cluster name %q: want letters, digits, '.', '_' or '-' (at most 63)", c.ClusterName))
	}
	if c.ClusterAddr != "" {
		if _, _, err := net.SplitHostPort(c.ClusterAddr); err != nil {
			errs = append(errs, fmt.Errorf("cluster addr %q: want HOST:PORT: %w", c.ClusterAddr, err))
		}
	}
	for _, r := range c.Routes {
		if u, err := url.Parse(r); err != nil || (u.Scheme != "nats-route" && u.Scheme != "nats") || u.Host == "" || u.Port() == "" {
			errs = append(errs, fmt.Errorf("route %q: want nats-route://HOST:PORT", r))
		}
	}
	if (c.ClusterUser == "") != (c.ClusterPassword == "") {
		errs = append(errs, errors.New("cluster credentials: set both --cluster-user and OWL_CLUSTER_PASSWORD, or neither"))
	}
	if c.ClusterTLSCert != "" || c.ClusterTLSKey != "" || c.ClusterTLSCA != "" {
		if c.ClusterTLSCert == "" || c.ClusterTLSKey == "" || c.ClusterTLSCA == "" {
			errs = append(errs, errors.New("cluster TLS: set --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca together (peers are verified)"))
		}
	}
	return errs
}

// MaxPrewarm bounds Config.Prewarm (per runtime).
const MaxPrewarm = 16

// MaxAsyncDeliveries bounds Config.AsyncDeliveries: each is a goroutine
// and an environment at most.
const MaxAsyncDeliveries = 4096

// MaxSpareInits bounds Config.SpareInits: each spare is a process and a
// few MB held while idle.
const MaxSpareInits = 64

// DefaultMemoryBudgetMB is the host's RAM less a reserve for Owl and the
// system: a tenth of it, at least 512 MB. 1024 MB when RAM is unknown.
func DefaultMemoryBudgetMB() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 1024
	}
	var kb int64
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	total := int(kb >> 10)
	if total <= 0 {
		return 1024
	}
	return max(128, total-max(512, total/10))
}

// DefaultNetworkCIDR is the default NetworkCIDR: private (RFC 1918), and a
// /16 that home, office and cloud networks rarely use (they favour
// 10.0.0.0/16, 10.0.x.0/24, 172.16-31.x and 192.168.x).
const DefaultNetworkCIDR = "10.213.0.0/16"

// DefaultDataDir is OWL_DATA when set, else $HOME/.owl. Client commands use
// it to find the credentials a local server wrote.
func DefaultDataDir() string {
	if d := os.Getenv("OWL_DATA"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".owl"
	}
	return filepath.Join(home, ".owl")
}

var (
	accountRe = regexp.MustCompile(`^[0-9]{12}$`)
	regionRe  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)

// NetworkPool parses NetworkCIDR: an IPv4 network of at most /30 (a
// gateway and one sandbox), given by its first address.
func (c Config) NetworkPool() (netip.Prefix, error) {
	p, err := netip.ParsePrefix(c.NetworkCIDR)
	switch {
	case err != nil:
		return p, fmt.Errorf("network cidr %q: want an IPv4 network like %s: %w", c.NetworkCIDR, DefaultNetworkCIDR, err)
	case !p.Addr().Is4() || p.Bits() > 30:
		return p, fmt.Errorf("network cidr %q: want an IPv4 network of /30 or larger, like %s", c.NetworkCIDR, DefaultNetworkCIDR)
	case p.Masked() != p:
		return p, fmt.Errorf("network cidr %q: host bits set; did you mean %s?", c.NetworkCIDR, p.Masked())
	}
	return p, nil
}

// Validate fails loudly on any value Owl cannot run with, naming every
// bad setting at once.
//
// It is long because it is the list of the settings' rules, one check
// after the other, each independent of the rest.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: want HOST:PORT: %w", c.Addr, err))
	}
	if err := tracing.CheckEndpoint(c.OTLPEndpoint); err != nil {
		errs = append(errs, err)
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data: a data directory is required"))
	}
	if !regionRe.MatchString(c.Region) {
		errs = append(errs, fmt.Errorf("region %q: want a region name like us-east-1", c.Region))
	}
	if !accountRe.MatchString(c.AccountID) {
		errs = append(errs, fmt.Errorf("account id %q: want 12 digits", c.AccountID))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %v: must be positive", c.ShutdownTimeout))
	}
	errs = append(errs, c.validateImages()...)
	errs = append(errs, c.validateCluster()...)
	errs = append(errs, c.validateEmbeddedCluster()...)
	if c.CodeStorageLimit <= 0 {
		errs = append(errs, fmt.Errorf("code storage limit %d: must be positive", c.CodeStorageLimit))
	}
	if c.ConcurrencyLimit <= 0 {
		errs = append(errs, fmt.Errorf("concurrency limit %d: must be positive", c.ConcurrencyLimit))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("idle timeout %v: must be positive", c.IdleTimeout))
	}
	if c.ConsoleSessionTTL < time.Minute {
		errs = append(errs, fmt.Errorf("console session TTL %v: must be at least a minute", c.ConsoleSessionTTL))
	}
	errs = append(errs, c.validateConsoleAndHistory()...)
	if c.AsyncDeliveries < 1 || c.AsyncDeliveries > MaxAsyncDeliveries {
		errs = append(errs, fmt.Errorf("async deliveries %d: must be between 1 and %d", c.AsyncDeliveries, MaxAsyncDeliveries))
	}
	if c.AsyncRetryDelay <= 0 || c.AsyncRetryDelay > time.Hour {
		errs = append(errs, fmt.Errorf("async retry delay %v: must be positive and at most 1h", c.AsyncRetryDelay))
	}
	if c.AsyncThrottleBackoff < time.Second || c.AsyncThrottleBackoff > time.Hour {
		errs = append(errs, fmt.Errorf("async throttle backoff %v: must be between 1s and 1h", c.AsyncThrottleBackoff))
	}
	if c.EventLogAge < time.Minute {
		errs = append(errs, fmt.Errorf("event log age %v: must be at least 1m", c.EventLogAge))
	}
	if c.LogRetention < time.Minute {
		errs = append(errs, fmt.Errorf("function log age %v: must be at least 1m", c.LogRetention))
	}
	if c.FunctionLogBytesEach != 0 && c.FunctionLogBytesEach < 1<<20 {
		errs = append(errs, fmt.Errorf("function log bytes each %d: must be 0 (a quarter of the function logs' size) or at least 1 MiB", c.FunctionLogBytesEach))
	}
	if c.FunctionLogBytes != 0 && c.FunctionLogBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("function log bytes %d: must be 0 (sized from the disk) or at least 1 MiB", c.FunctionLogBytes))
	}
	if c.EventLogBytes != 0 && c.EventLogBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("event log bytes %d: must be 0 (sized from the disk) or at least 1 MiB", c.EventLogBytes))
	}
	if c.SpareInits < 0 || c.SpareInits > MaxSpareInits {
		errs = append(errs, fmt.Errorf("spare inits %d: must be between 0 (off) and %d", c.SpareInits, MaxSpareInits))
	}
	if c.Prewarm < 0 || c.Prewarm > MaxPrewarm {
		errs = append(errs, fmt.Errorf("prewarm %d: must be between 0 (off) and %d", c.Prewarm, MaxPrewarm))
	}
	if c.FreezeAfter < 0 {
		errs = append(errs, fmt.Errorf("freeze after %v: must not be negative (0 never freezes)", c.FreezeAfter))
	}
	if c.MaxLifetime <= 0 {
		errs = append(errs, fmt.Errorf("max lifetime %v: must be positive", c.MaxLifetime))
	}
	if c.MemoryBudgetMB < 128 {
		errs = append(errs, fmt.Errorf("memory budget %d MB: must be at least 128 MB (one function)", c.MemoryBudgetMB))
	}
	if !(c.TmpOvercommit >= 1 && c.TmpOvercommit <= 1000) {
		errs = append(errs, fmt.Errorf("tmp overcommit %v: must be between 1 and 1000", c.TmpOvercommit))
	}
	if !(c.MemoryOvercommit >= 1 && c.MemoryOvercommit <= 100) {
		errs = append(errs, fmt.Errorf("memory overcommit %v: must be between 1 and 100", c.MemoryOvercommit))
	}
	if c.DiskReserveMB < 16 {
		errs = append(errs, fmt.Errorf("disk reserve %d MB: must be at least 16 MB (deletions and compaction need room)", c.DiskReserveMB))
	}
	if c.StoreCollectInterval < time.Second {
		errs = append(errs, fmt.Errorf("store collect interval %v: must be at least 1s", c.StoreCollectInterval))
	}
	if c.StartsInParallel < 0 || c.StartsInParallel > 1024 {
		errs = append(errs, fmt.Errorf("starts in parallel %d: must be 0 (four per CPU) to 1024", c.StartsInParallel))
	}
	if c.CapacityWait < 0 {
		errs = append(errs, fmt.Errorf("capacity wait %v: must not be negative", c.CapacityWait))
	}
	if c.MaxConnections < 16 {
		errs = append(errs, fmt.Errorf("max connections %d: must be at least 16", c.MaxConnections))
	}
	if c.MaxBodyMemoryMB < 32 {
		errs = append(errs, fmt.Errorf("max body memory %d MB: must be at least 32 MB (invoke bodies are up to 6 MB; code uploads hold only the JSON around their zip, which goes to disk)", c.MaxBodyMemoryMB))
	}
	if c.SandboxUID <= 0 || c.SandboxGID <= 0 {
		errs = append(errs, fmt.Errorf("sandbox uid/gid %d/%d: function code must not run as root", c.SandboxUID, c.SandboxGID))
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		errs = append(errs, errors.New("credentials: set both OWL_ACCESS_KEY_ID and OWL_SECRET_ACCESS_KEY, or neither"))
	}
	if _, err := c.NetworkPool(); err != nil {
		errs = append(errs, err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log format %q: want text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

// validateImages checks the container image settings.
func (c Config) validateImages() []error {
	var errs []error
	if c.ImageSizeLimit <= 0 {
		errs = append(errs, fmt.Errorf("image size limit %d: must be positive", c.ImageSizeLimit))
	}
	for _, r := range c.InsecureRegistries {
		if r == "" || strings.ContainsAny(r, "/ \t") {
			errs = append(errs, fmt.Errorf("insecure registry %q: want HOST or HOST:PORT", r))
		}
	}
	if c.RegistryAuthFile != "" && !filepath.IsAbs(c.RegistryAuthFile) {
		errs = append(errs, fmt.Errorf("registry auth file %q: want an absolute path", c.RegistryAuthFile))
	}
	return errs
}

var nodeNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validateCluster checks the settings of joining NATS and of the node's
// role.
func (c Config) validateCluster() []error {
	var errs []error
	switch c.Role {
	case RoleAll, RoleAPI, RoleWorker:
	default:
		errs = append(errs, fmt.Errorf("role %q: want all, api or worker", c.Role))
	}
	if c.NodeName != "" && !nodeNameRe.MatchString(c.NodeName) {
		errs = append(errs, fmt.Errorf("node name %q: want 1 to 64 letters, digits, - or _", c.NodeName))
	}
	for _, id := range c.Runtimes {
		if !runtimes.Known(id) {
			errs = append(errs, fmt.Errorf("runtimes: %q is not a runtime Owl knows (owl runtimes lists them)", id))
		}
	}
	if c.NATS == "" {
		for name, v := range map[string]string{"nats-creds": c.NATSCreds, "nats-nkey": c.NATSNKey, "nats-user": c.NATSUser,
			"nats-ca": c.NATSCA, "nats-cert": c.NATSCert, "nats-key": c.NATSKey, "OWL_NATS_TOKEN": c.NATSToken} {
			if v != "" {
				errs = append(errs, fmt.Errorf("%s is for an existing NATS: set --nats too", name))
			}
		}
		if c.Role != RoleAll && c.Role != "" {
			errs = append(errs, fmt.Errorf("role %s: the nodes of a cluster share a NATS; set --nats (or cluster the embedded one)", c.Role))
		}
		return errs
	}
	if c.NATSListen != "" {
		errs = append(errs, errors.New("nats-listen serves the embedded NATS; with --nats, clients connect to that NATS instead"))
	}
	for _, u := range strings.Split(c.NATS, ",") {
		scheme, _, ok := strings.Cut(strings.TrimSpace(u), "://")
		if !ok || (scheme != "nats" && scheme != "tls") {
			errs = append(errs, fmt.Errorf("nats %q: want nats://HOST:PORT or tls://HOST:PORT, comma-separated", u))
		}
	}
	for name, path := range map[string]string{"nats-creds": c.NATSCreds, "nats-nkey": c.NATSNKey,
		"nats-ca": c.NATSCA, "nats-cert": c.NATSCert, "nats-key": c.NATSKey} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errs
}

// validateConsoleAndHistory checks the console's sign-in limit and the
// metric history's bounds.
func (c *Config) validateConsoleAndHistory() []error {
	var errs []error
	if c.ConsoleSignInFailures < 1 {
		errs = append(errs, fmt.Errorf("console sign-in failures %d: must be at least 1", c.ConsoleSignInFailures))
	}
	if c.ConsoleSignInWindow < time.Second || c.ConsoleSignInWindow > 24*time.Hour {
		errs = append(errs, fmt.Errorf("console sign-in window %v: must be between 1s and 24h", c.ConsoleSignInWindow))
	}
	if c.MetricHistoryInterval < time.Second || c.MetricHistoryInterval > time.Hour {
		errs = append(errs, fmt.Errorf("metric history interval %v: must be between 1s and 1h", c.MetricHistoryInterval))
	}
	if c.MetricHistoryAge < time.Hour {
		errs = append(errs, fmt.Errorf("metric history age %v: must be at least 1h", c.MetricHistoryAge))
	}
	if c.MetricHistoryBytes != 0 && c.MetricHistoryBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("metric history bytes %d: must be 0 (sized from the disk) or at least 1 MiB", c.MetricHistoryBytes))
	}
	return errs
}
