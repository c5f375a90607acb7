package cli

import (
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/config"
)

// serverFlag is one flag of the server's configuration: its name, how it is
// bound to a Config, and how its value is copied from the flags' Config to
// the resolved one when the user set it.
type serverFlag struct {
	name  string
	bind  func(cmd *cobra.Command, c *config.Config)
	apply func(dst, src *config.Config)
}

// serverFlags is the one table of `owl serve`'s flags. serve binds them all;
// doctor binds them all too (so that it checks exactly what serve would
// use), credentials only --addr and --data.
var serverFlags = []serverFlag{
	{"addr", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().StringVar(&c.Addr, "addr", c.Addr, "API listen address HOST:PORT (env OWL_ADDR)")
	}, func(d, s *config.Config) { d.Addr = s.Addr }},
	{"data", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().StringVar(&c.DataDir, "data", c.DataDir, "data directory (env OWL_DATA)")
	}, func(d, s *config.Config) { d.DataDir = s.DataDir }},
	{"shutdown-timeout", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long in-flight invocations may finish on SIGTERM (env OWL_SHUTDOWN_TIMEOUT)")
	}, func(d, s *config.Config) { d.ShutdownTimeout = s.ShutdownTimeout }},
	{"log-level", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (env OWL_LOG_LEVEL)")
	}, func(d, s *config.Config) { d.LogLevel = s.LogLevel }},
	{"concurrency-limit", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().IntVar(&c.ConcurrencyLimit, "concurrency-limit", c.ConcurrencyLimit, "invocations running at once on this node (env OWL_CONCURRENCY_LIMIT)")
	}, func(d, s *config.Config) { d.ConcurrencyLimit = s.ConcurrencyLimit }},
	{"memory-budget", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().IntVar(&c.MemoryBudgetMB, "memory-budget", c.MemoryBudgetMB, "MB of memory for execution environments, all capped together by one cgroup (env OWL_MEMORY_BUDGET; default: RAM less a reserve)")
	}, func(d, s *config.Config) { d.MemoryBudgetMB = s.MemoryBudgetMB }},
	{"memory-overcommit", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().Float64Var(&c.MemoryOvercommit, "memory-overcommit", c.MemoryOvercommit, "admit environments whose memory adds up to budget × this factor (env OWL_MEMORY_OVERCOMMIT)")
	}, func(d, s *config.Config) { d.MemoryOvercommit = s.MemoryOvercommit }},
	{"capacity-wait", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().DurationVar(&c.CapacityWait, "capacity-wait", c.CapacityWait, "how long an invocation waits for memory before 429 (env OWL_CAPACITY_WAIT)")
	}, func(d, s *config.Config) { d.CapacityWait = s.CapacityWait }},
	{"idle-timeout", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "keep-alive of an idle environment (env OWL_IDLE_TIMEOUT)")
	}, func(d, s *config.Config) { d.IdleTimeout = s.IdleTimeout }},
	{"max-lifetime", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().DurationVar(&c.MaxLifetime, "max-lifetime", c.MaxLifetime, "retire environments older than this once idle (env OWL_MAX_LIFETIME)")
	}, func(d, s *config.Config) { d.MaxLifetime = s.MaxLifetime }},
	{"freeze-after", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().DurationVar(&c.FreezeAfter, "freeze-after", c.FreezeAfter, "freeze idle environments after this; 0 never (env OWL_FREEZE_AFTER)")
	}, func(d, s *config.Config) { d.FreezeAfter = s.FreezeAfter }},
	{"prewarm", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().IntVar(&c.Prewarm, "prewarm", c.Prewarm, "pre-warmed environments kept per Python/Node.js runtime; 0 disables (env OWL_PREWARM)")
	}, func(d, s *config.Config) { d.Prewarm = s.Prewarm }},
	{"network-egress", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().BoolVar(&c.NetworkEgress, "network-egress", c.NetworkEgress,
			"let functions reach the host's networks (Network egress, the default); false: loopback only (env OWL_NETWORK_EGRESS)")
	}, func(d, s *config.Config) { d.NetworkEgress = s.NetworkEgress }},
	{"network-cidr", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().StringVar(&c.NetworkCIDR, "network-cidr", c.NetworkCIDR,
			"IPv4 range of the sandboxes' addresses, shared by the instances of the host (env OWL_NETWORK_CIDR)")
	}, func(d, s *config.Config) { d.NetworkCIDR = s.NetworkCIDR }},
	{"disk-reserve", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().IntVar(&c.DiskReserveMB, "disk-reserve", c.DiskReserveMB,
			"MB kept free on the data dir's disk for deletions; writes needing space are refused below it (env OWL_DISK_RESERVE)")
	}, func(d, s *config.Config) { d.DiskReserveMB = s.DiskReserveMB }},
	{"store-collect-interval", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().DurationVar(&c.StoreCollectInterval, "store-collect-interval", c.StoreCollectInterval,
			"how often unreferenced code, logs of deleted functions and orphaned uploads are collected (env OWL_STORE_COLLECT_INTERVAL)")
	}, func(d, s *config.Config) { d.StoreCollectInterval = s.StoreCollectInterval }},
	{"max-connections", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().IntVar(&c.MaxConnections, "max-connections", c.MaxConnections,
			"API connections open at once; one more is answered 503 (env OWL_MAX_CONNECTIONS)")
	}, func(d, s *config.Config) { d.MaxConnections = s.MaxConnections }},
	{"max-body-memory", func(cmd *cobra.Command, c *config.Config) {
		cmd.Flags().IntVar(&c.MaxBodyMemoryMB, "max-body-memory", c.MaxBodyMemoryMB,
			"MB of request bodies held at once; past it requests get 429 (env OWL_MAX_BODY_MEMORY)")
	}, func(d, s *config.Config) { d.MaxBodyMemoryMB = s.MaxBodyMemoryMB }},
}

// serverConfig is the server configuration of one command: defaults, then
// the OWL_* environment, then the flags the user set (flags win).
type serverConfig struct {
	flags     config.Config // what the bound flags write into
	names     []string      // the flags bound to this command
	getenv    func(string) string
	fromFlags func(name string) bool // whether the user set the flag; the command's by default
}

// bindServerConfig binds the named server flags (all of them when none is
// named) to cmd. Resolve gives the configuration they describe.
func bindServerConfig(cmd *cobra.Command, names ...string) *serverConfig {
	sc := &serverConfig{flags: config.Default(), getenv: os.Getenv}
	for _, f := range serverFlags {
		if len(names) > 0 && !slices.Contains(names, f.name) {
			continue
		}
		f.bind(cmd, &sc.flags)
		sc.names = append(sc.names, f.name)
	}
	sc.fromFlags = func(name string) bool { return cmd.Flags().Changed(name) }
	return sc
}

// resolve returns the configuration: defaults, the environment on top, and
// the flags the user set on top of that. Bad environment values are errors
// naming the variable. It does not Validate.
func (sc *serverConfig) resolve() (config.Config, error) {
	cfg := config.Default()
	if err := cfg.FromEnv(sc.getenv); err != nil {
		return cfg, err
	}
	for _, f := range serverFlags {
		if slices.Contains(sc.names, f.name) && sc.fromFlags(f.name) {
			f.apply(&cfg, &sc.flags)
		}
	}
	return cfg, nil
}
