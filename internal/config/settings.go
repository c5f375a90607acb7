package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Setting is one of `owl serve`'s settings: the one place that names it. The
// flag (--Name), the environment variable (Env), the --help text and the
// settings list in docs/settings.md all come from this table, so a new
// setting is one row here, its Config field and its check in Validate.
type Setting struct {
	// Name is the flag's name, e.g. "memory-budget".
	Name string
	// Help is the one-line description for --help and the docs.
	Help string
	// Field points at the Config field the setting sets: a *string, *int,
	// *int64, *float64, *bool, *time.Duration or *[]string (a repeatable flag;
	// each value appends, comma-separated ones too).
	Field func(c *Config) any
	// EnvOnly settings have no flag: secrets, which a command line would
	// show to every user of the host (ps, /proc/PID/cmdline).
	EnvOnly bool
}

// Env is the setting's environment variable: OWL_ and the name in upper
// snake case (memory-budget: OWL_MEMORY_BUDGET).
func (s Setting) Env() string {
	return "OWL_" + strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
}

// Settings is every setting of `owl serve`, in the order --help and the
// docs list them.
var Settings = []Setting{
	{Name: "addr", Help: "API listen address HOST:PORT", Field: func(c *Config) any { return &c.Addr }},
	{Name: "data", Help: "data directory: the store, the code cache, the credentials", Field: func(c *Config) any { return &c.DataDir }},
	{Name: "region", Help: "the region in ARNs", Field: func(c *Config) any { return &c.Region }},
	{Name: "account-id", Help: "the 12-digit account ID in ARNs", Field: func(c *Config) any { return &c.AccountID }},
	{Name: "shutdown-timeout", Help: "how long in-flight invocations may finish on SIGTERM", Field: func(c *Config) any { return &c.ShutdownTimeout }},
	{Name: "log-level", Help: "debug, info, warn or error", Field: func(c *Config) any { return &c.LogLevel }},
	{Name: "log-format", Help: "Owl's own log lines: text (key=value) or json (one object a line)", Field: func(c *Config) any { return &c.LogFormat }},
	{Name: "code-storage-limit", Help: "bytes of code (functions, versions, layers) the installation may store", Field: func(c *Config) any { return &c.CodeStorageLimit }},
	{Name: "concurrency-limit", Help: "invocations running at once on this node", Field: func(c *Config) any { return &c.ConcurrencyLimit }},
	{Name: "memory-budget", Help: "MB of memory for execution environments, all capped together by one cgroup (default: RAM less a reserve)", Field: func(c *Config) any { return &c.MemoryBudgetMB }},
	{Name: "tmp-overcommit", Help: "count 1/this of what the environments' /tmp disks may still write against the data dir's disk (1: each /tmp's whole size, so it never meets a full disk)", Field: func(c *Config) any { return &c.TmpOvercommit }},
	{Name: "memory-overcommit", Help: "admit environments whose memory adds up to budget × this factor", Field: func(c *Config) any { return &c.MemoryOvercommit }},
	{Name: "capacity-wait", Help: "how long an invocation waits for memory before 429", Field: func(c *Config) any { return &c.CapacityWait }},
	{Name: "starts-in-parallel", Help: "environments that start at once; more wait their turn in order, up to their function's timeout, then 429 (0: four per CPU)", Field: func(c *Config) any { return &c.StartsInParallel }},
	{Name: "console-session-ttl", Help: "how long a web console sign-in lasts", Field: func(c *Config) any { return &c.ConsoleSessionTTL }},
	{Name: "console-signin-failures", Help: "wrong tokens one client address may send the console's sign-in within --console-signin-window; then it is refused (429), the right token too, until the window has passed", Field: func(c *Config) any { return &c.ConsoleSignInFailures }},
	{Name: "console-signin-window", Help: "the window --console-signin-failures counts in", Field: func(c *Config) any { return &c.ConsoleSignInWindow }},
	{Name: "metric-history-interval", Help: "how often each active function's metric sample (invocations, errors, throttles, cold starts, durations) is written to the history the console charts; the finest step it answers", Field: func(c *Config) any { return &c.MetricHistoryInterval }},
	{Name: "metric-history-age", Help: "how long metric history samples are kept", Field: func(c *Config) any { return &c.MetricHistoryAge }},
	{Name: "metric-history-bytes", Help: "bytes the metric history may hold before its oldest samples go (0: a sixteenth of the disk's space for the store, 4 MiB to 256 MiB)", Field: func(c *Config) any { return &c.MetricHistoryBytes }},
	{Name: "idle-timeout", Help: "keep-alive of an idle environment", Field: func(c *Config) any { return &c.IdleTimeout }},
	{Name: "max-lifetime", Help: "retire environments older than this once idle", Field: func(c *Config) any { return &c.MaxLifetime }},
	{Name: "freeze-after", Help: "freeze idle environments after this; 0 never", Field: func(c *Config) any { return &c.FreezeAfter }},
	{Name: "prewarm", Help: "pre-warmed environments kept per Python/Node.js runtime, and for the custom (provided.*) runtimes together; 0 disables", Field: func(c *Config) any { return &c.Prewarm }},
	{Name: "spare-inits", Help: "sandbox inits kept started ahead of time, so a cold start skips the init's own start-up; 0 disables (512 MB /tmp disks are kept made too: this many + 2)", Field: func(c *Config) any { return &c.SpareInits }},
	{Name: "network-egress", Help: "let functions reach the host's networks (Network egress, the default); false: loopback only", Field: func(c *Config) any { return &c.NetworkEgress }},
	{Name: "network-cidr", Help: "IPv4 range of the sandboxes' addresses, shared by the instances of the host", Field: func(c *Config) any { return &c.NetworkCIDR }},
	{Name: "disk-reserve", Help: "MB kept free on the data dir's disk for deletions; writes needing space are refused below it", Field: func(c *Config) any { return &c.DiskReserveMB }},
	{Name: "sync-always", Help: "fsync the store on every write before acknowledging it (an accepted event survives a power loss; costs accept rate, docs/events.md); false: every 10s", Field: func(c *Config) any { return &c.SyncAlways }},
	{Name: "store-collect-interval", Help: "how often unreferenced code, logs of deleted functions and orphaned uploads are collected", Field: func(c *Config) any { return &c.StoreCollectInterval }},
	{Name: "async-deliveries", Help: "asynchronous invocations delivered at once on this node", Field: func(c *Config) any { return &c.AsyncDeliveries }},
	{Name: "async-retry-delay", Help: "wait before retrying an asynchronous invocation's function error; the second retry waits twice as long", Field: func(c *Config) any { return &c.AsyncRetryDelay }},
	{Name: "async-throttle-backoff", Help: "longest wait between tries of a throttled asynchronous invocation (they start 1s apart and double)", Field: func(c *Config) any { return &c.AsyncThrottleBackoff }},
	{Name: "function-log-age", Help: "how long functions' log lines are kept", Field: func(c *Config) any { return &c.LogRetention }},
	{Name: "function-log-bytes", Help: "bytes functions' logs may hold together before their oldest lines go (0: an eighth of the disk's free space, 16 MiB to 1 GiB)", Field: func(c *Config) any { return &c.FunctionLogBytes }},
	{Name: "function-log-bytes-each", Help: "bytes one function's log may hold before its oldest lines go, so a chatty function pushes out its own lines, not others' (0: a quarter of --function-log-bytes)", Field: func(c *Config) any { return &c.FunctionLogBytesEach }},
	{Name: "event-log-age", Help: "how long the event log keeps a finished event for listing and replay (an unfinished one stays)", Field: func(c *Config) any { return &c.EventLogAge }},
	{Name: "event-log-bytes", Help: "bytes the event log holds: past 3/4 its oldest finished records go, full of unfinished events it refuses new ones (0: an eighth of the disk's free space, 16 MiB to 1 GiB, like the function log)", Field: func(c *Config) any { return &c.EventLogBytes }},
	{Name: "metrics-addr", Help: "HOST:PORT to serve /metrics on without credentials, for a Prometheus that cannot send the token; off when empty (the API's /metrics needs them)", Field: func(c *Config) any { return &c.MetricsAddr }},
	{Name: "otlp-endpoint", Help: "OTLP/HTTP endpoint (URL) to export invocation spans to, e.g. http://localhost:4318; empty: the OTEL_EXPORTER_OTLP_* variables decide, none set: no spans", Field: func(c *Config) any { return &c.OTLPEndpoint }},
	{Name: "nats-listen", Help: "HOST:PORT to serve NATS clients outside Owl on (user owl, password nats_password in the credentials file); off when empty", Field: func(c *Config) any { return &c.NATSListen }},
	{Name: "nats", Help: "URL of an existing NATS server or cluster with JetStream (nats:// or tls://, comma-separated) to use instead of the embedded one (docs/cluster.md)", Field: func(c *Config) any { return &c.NATS }},
	{Name: "nats-creds", Help: "with --nats: a .creds file (user JWT and NKey seed) to authenticate with", Field: func(c *Config) any { return &c.NATSCreds }},
	{Name: "nats-nkey", Help: "with --nats: a file holding an NKey user's seed to authenticate with", Field: func(c *Config) any { return &c.NATSNKey }},
	{Name: "nats-user", Help: "with --nats: the user to authenticate as (its password: OWL_NATS_USER_PASSWORD)", Field: func(c *Config) any { return &c.NATSUser }},
	{Name: "nats-ca", Help: "with --nats: PEM file of the CAs the NATS servers' certificates chain to", Field: func(c *Config) any { return &c.NATSCA }},
	{Name: "nats-cert", Help: "with --nats: PEM client certificate for NATS servers that verify clients (with --nats-key)", Field: func(c *Config) any { return &c.NATSCert }},
	{Name: "nats-key", Help: "with --nats: the client certificate's PEM key", Field: func(c *Config) any { return &c.NATSKey }},
	{Name: "role", Help: "this node's part in a cluster: all (API and environments), api (the API; places invocations on workers) or worker (environments; serves only /healthz, /metrics and /owl/v1/nodes)", Field: func(c *Config) any { return &c.Role }},
	{Name: "node-name", Help: "this node's name in owl nodes and its NATS server's in an embedded cluster, unique among the nodes: letters, digits, - and _ (empty: the host's name)", Field: func(c *Config) any { return &c.NodeName }},
	{Name: "runtimes", Help: "runtimes this node runs, repeatable or comma-separated (empty: all the machine can run); placement sends a function only to nodes with its runtime", Field: func(c *Config) any { return &c.Runtimes }},
	{Name: "cluster-name", Help: "the name of the cluster of Owl nodes to join (with --cluster-addr and --routes; docs/cluster.md); off when empty: a single node", Field: func(c *Config) any { return &c.ClusterName }},
	{Name: "cluster-addr", Help: "HOST:PORT this node's embedded NATS server takes routes from its peers on", Field: func(c *Config) any { return &c.ClusterAddr }},
	{Name: "routes", Help: "the peers' route URLs, nats-route://HOST:PORT, comma-separated or repeated (this node's own may be listed too)", Field: func(c *Config) any { return &c.Routes }},
	{Name: "cluster-user", Help: "the user every route between nodes authenticates as (with OWL_CLUSTER_PASSWORD); off when empty", Field: func(c *Config) any { return &c.ClusterUser }},
	{Name: "cluster-tls-cert", Help: "PEM certificate this node's routes present (with --cluster-tls-key and --cluster-tls-ca)", Field: func(c *Config) any { return &c.ClusterTLSCert }},
	{Name: "cluster-tls-key", Help: "PEM key of --cluster-tls-cert", Field: func(c *Config) any { return &c.ClusterTLSKey }},
	{Name: "cluster-tls-ca", Help: "PEM authority a peer's route certificate must be signed by (both sides verify)", Field: func(c *Config) any { return &c.ClusterTLSCA }},
	{Name: "insecure-registry", Help: "container registry HOST:PORT whose images are pulled over plain HTTP, as Docker's flag; repeatable (environment: comma-separated)", Field: func(c *Config) any { return &c.InsecureRegistries }},
	{Name: "registry-auth-file", Help: "docker-style config.json whose \"auths\" give the container registries' credentials; empty: anonymous pulls", Field: func(c *Config) any { return &c.RegistryAuthFile }},
	{Name: "image-size-limit", Help: "bytes a container image may take unpacked (Lambda: 10 GB)", Field: func(c *Config) any { return &c.ImageSizeLimit }},
	{Name: "max-connections", Help: "API connections open at once; one more is answered 503", Field: func(c *Config) any { return &c.MaxConnections }},
	{Name: "max-body-memory", Help: "MB of request bodies held at once; past it requests get 429", Field: func(c *Config) any { return &c.MaxBodyMemoryMB }},
	{Name: "access-key-id", Help: "the access key ID SigV4 clients sign with (generated and stored in the data dir when unset)", Field: func(c *Config) any { return &c.AccessKeyID }, EnvOnly: true},
	{Name: "secret-access-key", Help: "its secret key (generated with it when unset)", Field: func(c *Config) any { return &c.SecretAccessKey }, EnvOnly: true},
	{Name: "token", Help: "the bearer token Owl's own client sends (generated when unset)", Field: func(c *Config) any { return &c.Token }, EnvOnly: true},
	{Name: "cluster-password", Help: "the password of --cluster-user on routes between nodes", Field: func(c *Config) any { return &c.ClusterPassword }, EnvOnly: true},
	{Name: "nats-password", Help: "the password of NATS user owl on --nats-listen (generated when unset)", Field: func(c *Config) any { return &c.NATSPassword }, EnvOnly: true},
	{Name: "nats-user-password", Help: "with --nats and --nats-user: that user's password", Field: func(c *Config) any { return &c.NATSUserPassword }, EnvOnly: true},
	{Name: "nats-token", Help: "with --nats: a token to authenticate with", Field: func(c *Config) any { return &c.NATSToken }, EnvOnly: true},
}

// Lookup returns the setting named name.
func Lookup(name string) (Setting, bool) {
	for _, s := range Settings {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}

// Set parses v into c's field for s, the one parser of flags and
// environment alike. The error says what was wanted, not where v came
// from: the caller names the flag or variable.
func (s Setting) Set(c *Config, v string) error {
	switch p := s.Field(c).(type) {
	case *string:
		*p = v
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q: not an integer", v)
		}
		*p = n
	case *int64:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q: not an integer", v)
		}
		*p = n
	case *float64:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%q: not a number", v)
		}
		*p = f
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q: not a boolean (true or false)", v)
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q: not a duration (like 30s)", v)
		}
		*p = d
	case *[]string:
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				*p = append(*p, e)
			}
		}
	default:
		panic(fmt.Sprintf("config: setting %s has a field of type %T", s.Name, p))
	}
	return nil
}

// Get is c's value of s, as Set would parse it (and --help shows it).
func (s Setting) Get(c *Config) string {
	switch p := s.Field(c).(type) {
	case *string:
		return *p
	case *int:
		return strconv.Itoa(*p)
	case *int64:
		return strconv.FormatInt(*p, 10)
	case *float64:
		return strconv.FormatFloat(*p, 'g', -1, 64)
	case *bool:
		return strconv.FormatBool(*p)
	case *time.Duration:
		return p.String()
	case *[]string:
		return strings.Join(*p, ",")
	default:
		panic(fmt.Sprintf("config: setting %s has a field of type %T", s.Name, p))
	}
}

// FromEnv applies the OWL_* environment variables on top of c. Bad values
// are errors naming the variable, all of them at once.
func (c *Config) FromEnv(getenv func(string) string) error {
	var errs []error
	for _, s := range Settings {
		if v := getenv(s.Env()); v != "" {
			if err := s.Set(c, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%w", s.Env(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// SettingsMarkdown is the settings list of docs/settings.md: every setting
// with its flag, variable, default and description. Defaults that depend
// on the host (the data dir, the memory budget) are described, not shown.
func SettingsMarkdown() string {
	var b strings.Builder
	b.WriteString("| flag | environment | default | what it sets |\n|---|---|---|---|\n")
	def := Default()
	for _, s := range Settings {
		flag := "`--" + s.Name + "`"
		if s.EnvOnly {
			flag = "(none: a secret)"
		}
		d := "`" + s.Get(&def) + "`"
		switch s.Name {
		case "data":
			d = "`$OWL_DATA` or `~/.owl`"
		case "memory-budget":
			d = "RAM less max(512 MB, RAM/10)"
		case "node-name":
			d = "the hostname"
		}
		if s.Get(&def) == "" {
			d = "(generated)"
			if !s.EnvOnly {
				d = "(off)"
			}
		}
		switch s.Name {
		case "node-name":
			d = "the host's name"
		case "nats-user-password", "nats-token", "runtimes":
			d = "(none)"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", flag, s.Env(), d, s.Help)
	}
	return b.String()
}
