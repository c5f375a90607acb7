package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/hostcheck"
	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/server"
)

// runHostChecks runs the host checks for a server configured as o (the
// real host; tests replace it).
var runHostChecks = func(ctx context.Context, o hostcheck.Options) hostcheck.Report {
	return hostcheck.Run(ctx, hostcheck.RealHost(), o)
}

// hostOptions is what the host checks need of a server configuration.
func hostOptions(cfg config.Config) hostcheck.Options {
	return hostcheck.Options{
		DataDir: cfg.DataDir, Addr: cfg.Addr, NetworkEgress: cfg.NetworkEgress, Prewarm: cfg.Prewarm,
		DiskReserveBytes: int64(cfg.DiskReserveMB) << 20,
		NoSandboxes:      cfg.Role == config.RoleAPI,
	}
}

// diagnose is the doctor's report for cfg: the configuration's validity
// first, then every host check.
func diagnose(ctx context.Context, cfg config.Config) hostcheck.Report {
	conf := hostcheck.Result{Name: "config", Status: hostcheck.OK, Message: "valid"}
	if err := cfg.Validate(); err != nil {
		conf.Status = hostcheck.Fail
		conf.Message = strings.ReplaceAll(err.Error(), "\n", "; ")
		conf.Fix = "correct the settings named (flags or their OWL_* variables; owl serve --help lists them)"
	}
	rep := append(hostcheck.Report{conf}, runHostChecks(ctx, hostOptions(cfg))...)
	if cfg.NATS != "" && conf.Status == hostcheck.OK {
		rep = append(rep, checkNATS(ctx, cfg))
	}
	return rep
}

// checkNATS connects to the NATS --nats names as owl serve would (its
// credentials, TLS, JetStream, max_payload) and says what failed.
func checkNATS(ctx context.Context, cfg config.Config) hostcheck.Result {
	bus, err := natsbus.Connect(ctx, server.NATSRemote(cfg), slog.New(slog.DiscardHandler))
	if err != nil {
		return hostcheck.Result{Name: "nats", Status: hostcheck.Fail, Message: err.Error(),
			Fix: "check --nats, its credentials and TLS files, and that the servers run JetStream with max_payload of at least 8 MB (docs/cluster.md)"}
	}
	defer bus.Close()
	return hostcheck.Result{Name: "nats", Status: hostcheck.OK,
		Message: fmt.Sprintf("JetStream answers at %s (max_payload %d)", bus.NC.ConnectedUrlRedacted(), bus.NC.MaxPayload())}
}

// newDoctorCmd is `owl doctor`: whether this host can run `owl serve` as
// configured, one line per check.
func newDoctorCmd() *cobra.Command {
	var sc *serverConfig
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check whether this host can run owl serve (run it first)",
		Long: `Doctor checks whether this host can run "owl serve" with the given settings: root, the
kernel's version, cgroups and the controllers Owl needs, namespaces, seccomp, nft (when
network egress is on), the Python and Node.js interpreters, the data dir and its free
space, swap, and the API port. Each line says ok, warn or fail, what was found, and for
warn and fail the fix.

It takes the same flags and OWL_* variables as "owl serve", so it checks exactly what
serve would use; serve runs the same checks when it starts and refuses to start on a
fail. The exit status is 1 when a check fails, else 0.`,
		Example: `  owl doctor
  owl doctor --data /srv/owl --addr 0.0.0.0:8790 --network-egress=false
  owl doctor --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := sc.resolve()
			if err != nil {
				return err
			}
			rep := diagnose(cmd.Context(), cfg)
			out := cmd.OutOrStdout()
			if asJSON {
				b, err := rep.JSON()
				if err != nil {
					return fmt.Errorf("encoding the report: %w", err)
				}
				fmt.Fprintf(out, "%s\n", b)
			} else {
				fmt.Fprint(out, rep.Text())
			}
			if len(rep.Failed()) > 0 {
				return errReported
			}
			return nil
		},
	}
	sc = bindServerConfig(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, `print the report as JSON: {"ok": bool, "checks": [{"name", "status", "message", "fix"}]}`)
	return cmd
}

// checkHost runs the host checks before `owl serve` sets anything up:
// warnings go to the log, failures are printed one line each (the words
// doctor prints) and stop the start.
func checkHost(ctx context.Context, cfg config.Config, logger *slog.Logger, stderr io.Writer) error {
	rep := runHostChecks(ctx, hostOptions(cfg))
	for _, w := range rep.Warnings() {
		logger.Warn("host check: "+w.Name, "found", w.Message, "fix", w.Fix)
	}
	failed := rep.Failed()
	if len(failed) == 0 {
		return nil
	}
	for _, f := range failed {
		fmt.Fprintf(stderr, "owl: cannot start: %s\n", f.Line())
	}
	fmt.Fprintf(stderr, "owl: refusing to start: %d host check(s) failed (owl doctor shows every check)\n", len(failed))
	return errReported
}
