package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/bench"
	"github.com/owl-project/owl/internal/client"
)

// Default counts of measured invocations, by mode.
const (
	benchWarmN = 10000
	benchColdN = 50
	benchExecN = 200
	benchRuncN = 100
	// benchBurstN is the burst: 1000 concurrent invocations.
	benchBurstN = 1000
	// benchBurstSettle is how long a fresh burst waits after changing the
	// configuration: the previous revision's environments (as many as the
	// last burst made) are torn down meanwhile, not during the burst.
	benchBurstSettle = 2 * time.Second
)

// benchOptions are the flags of `owl bench` and its modes.
type benchOptions struct {
	cfg      bench.Config
	endpoint string
	data     string
	deploy   string
	jsonOut  string
	// burst only
	burstSettle time.Duration
	// baseline only
	mode    string
	exec    string
	serve   string
	runcBin string
}

// newBenchCmd is `owl bench`: Owl's own load generator (package bench).
// It is long because it is the command's flag table: one line a flag, read
// as a list.
func newBenchCmd() *cobra.Command {
	o := &benchOptions{cfg: bench.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "bench warm|throughput|cold|burst|baseline|report",
		Short: "Measure warm latency, throughput, cold starts and bursts, next to a bare baseline",
		Long: `Bench is Owl's own load generator. It invokes a function over HTTP keep-alive, the way any
client does, and prints p50/p90/p99/max/mean latency, throughput and errors; --json FILE writes the
result for scripts (- for stdout). Any response that is not 200, or carries X-Amz-Function-Error,
is an error: errors are listed by kind and make the command exit 1.

  warm        -n invocations of a warm function over -c connections, after a warm-up
  throughput  -c connections invoking back to back for -d
  cold        -n times: change the function's configuration (env BENCH_ITER), wait --settle,
              time its first invocation (must report an Init Duration)
  burst       -n invocations (default 1000) started at once, each on its own connection (or over
              -c), of a function that sleeps (event {"sleep_ms":1000}): wall time, latency, how
              many were cold; by default on a fresh revision, with no environment yet
  baseline    the same load (--mode warm, throughput or burst) against a bare Go net/http hello
              server in a child process, (--mode exec) fork+exec+wait of --exec, the cold-start
              floor, or (--mode runc) runc run of a one-program OCI bundle
  report      compare result files (and go test -bench output): Owl's figures next to the
              baselines, with Owl's targets (docs/benchmarks.md)

--deploy DIR|ZIP creates or updates the function (runtime ` + bench.DeployRuntime + `) first: a zip, or a
directory holding an executable bootstrap; nothing is built. The endpoint is --endpoint (env
OWL_ENDPOINT), the token OWL_TOKEN or the credentials file of "owl serve" (OWL_DATA).`,
		Example: `  owl bench warm --deploy ./hello -n 20000 -c 1 --json warm.json
  owl bench throughput -c 32 -d 10s
  owl bench cold -n 50
  owl bench burst --deploy ./hello -f owl-bench-sleep --json burst.json
  owl bench baseline --mode warm -c 1 --json bare.json
  owl bench baseline --mode exec --exec "unshare -mpiun --fork /bin/true"
  owl bench baseline --mode runc -n 100 --json runc.json
  owl bench baseline --mode burst --json bare-burst.json
  owl bench report warm.json bare.json burst.json bare-burst.json runc.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("bench: unknown mode %q (want warm, throughput, cold, burst, baseline or report)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.endpoint, "endpoint", "", "Owl API endpoint (env OWL_ENDPOINT, default "+client.DefaultEndpoint+")")
	pf.StringVarP(&o.cfg.Function, "function", "f", o.cfg.Function, "function to invoke")
	pf.IntVarP(&o.cfg.Requests, "requests", "n", 0, fmt.Sprintf("measured invocations (default: warm %d, cold %d, burst %d, exec %d, runc %d)",
		benchWarmN, benchColdN, benchBurstN, benchExecN, benchRuncN))
	pf.IntVarP(&o.cfg.Connections, "connections", "c", o.cfg.Connections, "concurrent keep-alive connections (burst: default -n, one each)")
	pf.DurationVarP(&o.cfg.Duration, "duration", "d", o.cfg.Duration, "how long throughput runs")
	pf.IntVar(&o.cfg.Warmup, "warmup", o.cfg.Warmup, "invocations before measuring (-1: max(200, 20×connections))")
	pf.DurationVar(&o.cfg.Timeout, "timeout", o.cfg.Timeout, "how long to wait for each response")
	pf.StringVar(&o.data, "data", string(o.cfg.Payload), "event of every invocation (JSON; burst: default "+bench.BurstPayload+")")
	pf.StringVar(&o.jsonOut, "json", "", "write the result as JSON to FILE (- for stdout)")
	pf.IntVar(&o.cfg.ServerPID, "server-pid", 0, "the server process whose CPU per invocation is reported (0: the one listening on a loopback --endpoint's port; -1: none)")

	for _, mode := range []struct{ name, short, long string }{
		{bench.ModeWarm, "Latency of a warm function over -c connections",
			"Warm sends one invocation (it must succeed), --warmup more over -c connections, then -n\ninvocations spread over the -c connections, each timed from request to the end of the response."},
		{bench.ModeThroughput, "Invocations per second at -c connections for -d",
			"Throughput warms up like warm, then -c connections invoke back to back for -d and the\ncompleted invocations are counted."},
		{bench.ModeCold, "First invocation of -n new versions of a function",
			"Cold invokes the function once, then -n times sets BENCH_ITER in its environment (a new\nversion: the previous one's environments are retired), waits for the update and --settle, and\ntimes one invocation, whose log tail must report an Init Duration. The environment is\nrestored at the end."},
		{bench.ModeBurst, "-n invocations of a sleeping function started at once",
			`Burst invokes the function once (it must succeed), then, with --fresh (the default), sets
BENCH_ITER in its environment so that no environment of the new revision exists, waits for the
update and --settle, and starts -n invocations at once (one goroutine each) over -c connections
(default: one connection per invocation), asking for the log tail. It prints the wall time from
the first send to the last response, the latency percentiles, the concurrency reached, how many
invocations were cold (an Init Duration in their log tail) and the errors by kind (429s,
function errors such as timeouts, transport errors). The default event {"sleep_ms":1000} makes
examples/hello-go sleep one second: the issue's target is 1000 of them in ≤ 3 s, none failed.
The environment is restored at the end. The server must allow -n concurrent invocations
(owl serve's concurrency limit) and have the memory for -n environments.`},
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
		if mode.name == bench.ModeBurst {
			sub.Flags().BoolVar(&o.cfg.Fresh, "fresh", true, "burst on a new revision (no environment yet); false: on whatever is warm")
			sub.Flags().DurationVar(&o.burstSettle, "settle", benchBurstSettle, "with --fresh, pause after the configuration update, before the burst")
		}
		cmd.AddCommand(sub)
	}

	baseline := &cobra.Command{
		Use:   "baseline",
		Short: "The same load against a bare Go net/http server, the fork+exec floor, or runc run",
		Long: `Baseline measures what Owl is compared with, with the same load generator and flags.

--mode warm, --mode throughput and --mode burst start a bare Go net/http hello server in a child
process (this program again, so it shares no Go runtime with the load generator, like Owl) and
run warm, throughput or burst against it; like hello-go, it sleeps the event's sleep_ms. --mode
exec times -n runs (fork, exec, wait) of --exec: the floor under a cold start. --mode runc times
-n runs of "runc run" (create, start, wait, delete) of an OCI bundle prepared in a temp dir
(config.json from "runc spec", read-only rootfs holding one static program: a built-in
exit(0) program, or --runc-bin): the cold start of a container. It needs runc (Debian: apt-get
install runc) and root.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.runBaseline(cmd) },
	}
	bf := baseline.Flags()
	bf.StringVar(&o.mode, "mode", bench.ModeWarm, "warm, throughput, burst, exec or runc")
	bf.StringVar(&o.runcBin, "runc-bin", "", "static executable run by --mode runc (default: a built-in exit(0) program)")
	bf.StringVar(&o.exec, "exec", "unshare --mount --pid --ipc --uts --net --fork /bin/true", "command timed by --mode exec")
	bf.StringVar(&o.serve, "serve", "", "only serve the bare server on ADDR (how baseline runs its child)")
	_ = bf.MarkHidden("serve")
	cmd.AddCommand(baseline)

	report := &cobra.Command{
		Use:   "report FILE...",
		Short: "Compare result files: Owl's figures next to the baselines, with Owl's targets",
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
		case bench.ModeRunc:
			o.cfg.Requests = benchRuncN
		case bench.ModeBurst:
			o.cfg.Requests = benchBurstN
		}
	}
	if mode == bench.ModeBurst {
		if !cmd.Flags().Changed("connections") {
			o.cfg.Connections = o.cfg.Requests
		}
		if !cmd.Flags().Changed("data") {
			o.data = bench.BurstPayload
		}
		o.cfg.Settle = o.burstSettle
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
	case bench.ModeBurst:
		run = bench.Burst
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
	case bench.ModeWarm, bench.ModeThroughput, bench.ModeBurst, bench.ModeExec, bench.ModeRunc:
	default:
		return fmt.Errorf("bench baseline: --mode %q: want warm, throughput, burst, exec or runc", o.mode)
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
	if o.mode == bench.ModeRunc {
		res, err := bench.Runc(ctx, bench.RuncOptions{Binary: o.runcBin}, o.cfg.Requests)
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
