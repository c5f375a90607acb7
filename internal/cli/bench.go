package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/bench"
	"github.com/owl-project/owl/internal/client"
)

// Default counts of measured invocations, by mode.
const (
	benchWarmN = 10000
	benchColdN = 50
	benchExecN = 200
)

// benchOptions are the flags of `owl bench` and its modes.
type benchOptions struct {
	cfg      bench.Config
	endpoint string
	data     string
	deploy   string
	jsonOut  string
	// baseline only
	mode  string
	exec  string
	serve string
}

// newBenchCmd is `owl bench`: Owl's own load generator (package bench).
func newBenchCmd() *cobra.Command {
	o := &benchOptions{cfg: bench.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "bench warm|throughput|cold|baseline|report",
		Short: "Measure warm latency, throughput and cold starts, next to a bare baseline",
		Long: `Bench is Owl's own load generator. It invokes a function over HTTP keep-alive, the way any
client does, and prints p50/p90/p99/max/mean latency, throughput and errors; --json FILE writes the
result for scripts (- for stdout). Any response that is not 200, or carries X-Amz-Function-Error,
is an error: errors are listed by kind and make the command exit 1.

  warm        -n invocations of a warm function over -c connections, after a warm-up
  throughput  -c connections invoking back to back for -d
  cold        -n times: change the function's configuration (env BENCH_ITER), wait --settle,
              time its first invocation (must report an Init Duration)
  baseline    the same load (--mode warm or throughput) against a bare Go net/http hello server
              in a child process, or (--mode exec) fork+exec+wait of --exec, the cold-start floor
  report      compare result files: Owl's figures next to the baselines, with PERF.md's targets

--deploy DIR|ZIP creates or updates the function (runtime ` + bench.DeployRuntime + `) first: a zip, or a
directory holding an executable bootstrap; nothing is built. The endpoint is --endpoint (env
OWL_ENDPOINT), the token OWL_TOKEN or the credentials file of "owl serve" (OWL_DATA).`,
		Example: `  owl bench warm --deploy ./hello -n 20000 -c 1 --json warm.json
  owl bench throughput -c 32 -d 10s
  owl bench cold -n 50
  owl bench baseline --mode warm -c 1 --json bare.json
  owl bench baseline --mode exec --exec "unshare -mpiun --fork /bin/true"
  owl bench report warm.json bare.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("bench: unknown mode %q (want warm, throughput, cold, baseline or report)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.endpoint, "endpoint", "", "Owl API endpoint (env OWL_ENDPOINT, default "+client.DefaultEndpoint+")")
	pf.StringVarP(&o.cfg.Function, "function", "f", o.cfg.Function, "function to invoke")
	pf.IntVarP(&o.cfg.Requests, "requests", "n", 0, fmt.Sprintf("measured invocations (default: warm %d, cold %d, exec %d)", benchWarmN, benchColdN, benchExecN))
	pf.IntVarP(&o.cfg.Connections, "connections", "c", o.cfg.Connections, "concurrent keep-alive connections")
	pf.DurationVarP(&o.cfg.Duration, "duration", "d", o.cfg.Duration, "how long throughput runs")
	pf.IntVar(&o.cfg.Warmup, "warmup", o.cfg.Warmup, "invocations before measuring (-1: max(200, 20×connections))")
	pf.DurationVar(&o.cfg.Timeout, "timeout", o.cfg.Timeout, "how long to wait for each response")
	pf.StringVar(&o.data, "data", string(o.cfg.Payload), "event of every invocation (JSON)")
	pf.StringVar(&o.jsonOut, "json", "", "write the result as JSON to FILE (- for stdout)")

	for _, mode := range []struct{ name, short, long string }{
		{bench.ModeWarm, "Latency of a warm function over -c connections",
			"Warm sends one invocation (it must succeed), --warmup more over -c connections, then -n\ninvocations spread over the -c connections, each timed from request to the end of the response."},
		{bench.ModeThroughput, "Invocations per second at -c connections for -d",
			"Throughput warms up like warm, then -c connections invoke back to back for -d and the\ncompleted invocations are counted."},
		{bench.ModeCold, "First invocation of -n new versions of a function",
			"Cold invokes the function once, then -n times sets BENCH_ITER in its environment (a new\nversion: the previous one's environments are retired), waits for the update and --settle, and\ntimes one invocation, whose log tail must report an Init Duration. The environment is\nrestored at the end."},
	} {
		sub := &cobra.Command{
			Use:   mode.name,
			Short: mode.short,
			Long:  mode.long,
			Args:  cobra.NoArgs,
			RunE:  func(cmd *cobra.Command, _ []string) error { return o.runOwl(cmd, mode.name) },
		}
		sub.Flags().StringVar(&o.deploy, "deploy", "", "deploy this zip, or directory with a bootstrap, as the function first")
		if mode.name == bench.ModeCold {
			sub.Flags().DurationVar(&o.cfg.Settle, "settle", o.cfg.Settle, "pause after each configuration update, before the timed invocation")
		}
		cmd.AddCommand(sub)
	}

	baseline := &cobra.Command{
		Use:   "baseline",
		Short: "The same load against a bare Go net/http server, or the fork+exec floor",
		Long: `Baseline measures what Owl is compared with, with the same load generator and flags.

--mode warm and --mode throughput start a bare Go net/http hello server in a child process (this
program again, so it shares no Go runtime with the load generator, like Owl) and run warm or
throughput against it. --mode exec times -n runs (fork, exec, wait) of --exec: the floor under a
cold start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.runBaseline(cmd) },
	}
	bf := baseline.Flags()
	bf.StringVar(&o.mode, "mode", bench.ModeWarm, "warm, throughput or exec")
	bf.StringVar(&o.exec, "exec", "unshare --mount --pid --ipc --uts --net --fork /bin/true", "command timed by --mode exec")
	bf.StringVar(&o.serve, "serve", "", "only serve the bare server on ADDR (how baseline runs its child)")
	_ = bf.MarkHidden("serve")
	cmd.AddCommand(baseline)

	report := &cobra.Command{
		Use:   "report FILE...",
		Short: "Compare result files: Owl's figures next to the baselines, with PERF.md's targets",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			results, err := bench.ReadResults(args...)
			if err != nil {
				return fmt.Errorf("bench report: %w", err)
			}
			rep := bench.Compare(results)
			if err := rep.WriteTable(cmd.OutOrStdout()); err != nil {
				return err
			}
			if o.jsonOut != "" {
				return bench.WriteJSON(o.jsonOut, rep, cmd.OutOrStdout())
			}
			return nil
		},
	}
	cmd.AddCommand(report)
	return cmd
}

// resolve fills the endpoint, token and payload of o.cfg from the flags and
// the environment; mode picks the default -n.
func (o *benchOptions) resolve(cmd *cobra.Command, mode string, needToken bool) error {
	if !cmd.Flags().Changed("requests") {
		switch mode {
		case bench.ModeWarm:
			o.cfg.Requests = benchWarmN
		case bench.ModeCold:
			o.cfg.Requests = benchColdN
		case bench.ModeExec:
			o.cfg.Requests = benchExecN
		}
	}
	if !json.Valid([]byte(o.data)) {
		return fmt.Errorf("--data %q: not JSON", o.data)
	}
	o.cfg.Payload = []byte(o.data)
	o.cfg.Endpoint = o.endpoint
	if o.cfg.Endpoint == "" {
		o.cfg.Endpoint = client.EndpointFromEnv()
	}
	token, err := client.TokenFromEnv()
	if err != nil && needToken {
		return err
	}
	o.cfg.Token = token
	return o.cfg.Validate(mode)
}

func (o *benchOptions) runOwl(cmd *cobra.Command, mode string) error {
	if err := o.resolve(cmd, mode, true); err != nil {
		return fmt.Errorf("bench %s: %w", mode, err)
	}
	ctx := cmd.Context()
	if o.deploy != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "deploying %s as %s\n", o.deploy, o.cfg.Function)
		if err := bench.Deploy(ctx, o.cfg, o.deploy); err != nil {
			return fmt.Errorf("bench %s: --deploy: %w", mode, err)
		}
	}
	var run func(context.Context, bench.Config) (*bench.Result, error)
	switch mode {
	case bench.ModeWarm:
		run = bench.Warm
	case bench.ModeThroughput:
		run = bench.Throughput
	default:
		run = bench.Cold
	}
	res, err := run(ctx, o.cfg)
	if err != nil {
		return fmt.Errorf("bench %s: %w", mode, err)
	}
	return o.finish(cmd, res)
}

func (o *benchOptions) runBaseline(cmd *cobra.Command) error {
	ctx := cmd.Context()
	if o.serve != "" {
		return bench.RunBaselineServer(ctx, o.serve, cmd.InOrStdin(), cmd.OutOrStdout())
	}
	switch o.mode {
	case bench.ModeWarm, bench.ModeThroughput, bench.ModeExec:
	default:
		return fmt.Errorf("bench baseline: --mode %q: want warm, throughput or exec", o.mode)
	}
	if err := o.resolve(cmd, o.mode, false); err != nil {
		return fmt.Errorf("bench baseline: %w", err)
	}
	if o.mode == bench.ModeExec {
		res, err := bench.Exec(ctx, strings.Fields(o.exec), o.cfg.Requests)
		if err != nil {
			return fmt.Errorf("bench baseline: %w", err)
		}
		return o.finish(cmd, res)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench baseline: finding this program to start the server: %w", err)
	}
	// The child is this command again, serving only: same binary, own process.
	argv := append([]string{exe}, strings.Fields(cmd.CommandPath())[1:]...)
	res, err := bench.Baseline(ctx, o.cfg, o.mode, append(argv, "--serve", "127.0.0.1:0"))
	if err != nil {
		return fmt.Errorf("bench baseline: %w", err)
	}
	return o.finish(cmd, res)
}

// finish prints res, writes it with --json, and fails when any invocation
// failed.
func (o *benchOptions) finish(cmd *cobra.Command, res *bench.Result) error {
	text := cmd.OutOrStdout()
	if o.jsonOut == "-" {
		text = cmd.ErrOrStderr() // stdout carries the JSON
	}
	if err := res.WriteText(text); err != nil {
		return err
	}
	if o.jsonOut != "" {
		if err := bench.WriteJSON(o.jsonOut, res, cmd.OutOrStdout()); err != nil {
			return err
		}
	}
	if res.Failed() {
		return fmt.Errorf("bench %s: %d of %d measured invocations failed, %d of %d warm-up (listed above)",
			res.Mode, res.Errors, res.Requests, res.WarmupErrors, res.Warmup)
	}
	return nil
}
