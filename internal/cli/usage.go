package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/client"
	"github.com/owl-project/owl/internal/lambdawire"
)

func newUsageCmd(g *globals) *cobra.Command {
	var function, since, until, by string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Show what invocations were billed: invocations, errors, billed ms and GB-seconds",
		Long: `Usage sums every invocation's billed duration — its REPORT line's Billed Duration: the
duration plus any init, rounded up to the millisecond — and that times the function's memory
(GB-seconds), per function. Throttled invocations never ran and are not counted; idle and
frozen environments are never billed. Usage is kept per hour for 400 days.

Times (--since, --until) are a duration back from now (30m, 2h, 7d) or an RFC 3339 time
(2026-12-06T08:00:00Z); the hours they fall in are included.`,
		Example: `  owl usage
  owl usage --since 7d --by day
  owl usage --function hello --since 2026-12-01T00:00:00Z --json`,
		Args: cobra.NoArgs,
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, _ []string) error {
			if by != "" && by != "hour" && by != "day" {
				return fmt.Errorf("usage: --by %q: give hour or day", by)
			}
			f := client.UsageFilter{Function: function, By: by}
			var err error
			if f.Since, err = parseWhen(since, time.Now()); err != nil {
				return fmt.Errorf("usage: --since: %w", err)
			}
			if f.Until, err = parseWhen(until, time.Now()); err != nil {
				return fmt.Errorf("usage: --until: %w", err)
			}
			rows, err := c.Usage(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				for _, r := range rows {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			return printUsage(cmd, rows, by != "")
		}),
	}
	fl := cmd.Flags()
	fl.StringVarP(&function, "function", "f", "", "only this function")
	fl.StringVar(&since, "since", "", "from this time on (a duration back from now, or RFC 3339; default: all kept)")
	fl.StringVar(&until, "until", "", "up to this time (default: now)")
	fl.StringVar(&by, "by", "", "one row per function and hour or day (default: one per function)")
	fl.BoolVar(&asJSON, "json", false, "print one JSON object per row")
	return cmd
}

// printUsage prints rows as a table, with their total.
func printUsage(cmd *cobra.Command, rows []lambdawire.UsageRow, periods bool) error {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', tabwriter.AlignRight)
	if periods {
		fmt.Fprint(tw, "PERIOD\t")
	}
	fmt.Fprintln(tw, "FUNCTION\tINVOCATIONS\tERRORS\tBILLED MS\tGB-SECONDS\t")
	var total lambdawire.UsageRow
	for _, r := range rows {
		if periods {
			fmt.Fprint(tw, r.Period+"\t")
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t\n", r.Function, r.Invocations, r.Errors, r.BilledMs, gbs(r.GBSeconds))
		total.Invocations += r.Invocations
		total.Errors += r.Errors
		total.BilledMs += r.BilledMs
		total.MBMs += r.MBMs
	}
	if periods {
		fmt.Fprint(tw, "\t")
	}
	fmt.Fprintf(tw, "TOTAL\t%d\t%d\t%d\t%s\t\n", total.Invocations, total.Errors, total.BilledMs, gbs(float64(total.MBMs)/1024/1000))
	return tw.Flush()
}

func gbs(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
