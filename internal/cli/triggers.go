package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/client"
	"github.com/owl-project/owl/internal/lambdawire"
)

func newTriggerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trigger",
		Short: "Add, list and remove schedules that invoke functions",
		Long: `A schedule invokes a function asynchronously on an EventBridge Scheduler expression:
rate(5 minutes), cron(0 12 * * ? *) (minutes hours day-of-month month day-of-week year, with
?, L, W and # as on AWS) or at(2026-12-24T18:00:00), in --timezone (UTC by default). Owl also
takes rate(N seconds). Each firing is one event, in the event log (owl events ls) as type
owl.schedule.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTriggerAddCmd(g), newTriggerLsCmd(g), newTriggerRmCmd(g))
	return cmd
}

func newTriggerAddCmd(g *globals) *cobra.Command {
	var in lambdawire.TriggerInput
	var input string
	cmd := &cobra.Command{
		Use:   "add NAME --schedule EXPR --function F[:QUALIFIER]",
		Short: "Add a schedule",
		Example: `  owl trigger add nightly --schedule 'cron(0 2 * * ? *)' --timezone Europe/Paris --function report
  owl trigger add tick --schedule 'rate(1 minute)' --function hello --input '{"name":"tick"}'`,
		Args: cobra.ExactArgs(1),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			in.Name = args[0]
			if in.Schedule == "" || in.Function == "" {
				return fmt.Errorf("trigger add: --schedule and --function are required")
			}
			if input != "" {
				if !json.Valid([]byte(input)) {
					return fmt.Errorf("trigger add: --input is not JSON")
				}
				in.Input = json.RawMessage(input)
			}
			t, err := c.CreateTrigger(cmd.Context(), in)
			if err != nil {
				return err
			}
			next := "never"
			if t.NextFiring != nil {
				next = t.NextFiring.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s → %s, next firing %s\n", t.Name, t.Schedule, t.Function, next)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.Schedule, "schedule", "", "rate(…), cron(…) or at(…) (required)")
	f.StringVar(&in.Function, "function", "", "the function to invoke: NAME, NAME:QUALIFIER or an ARN (required)")
	f.StringVar(&in.Timezone, "timezone", "", "IANA time zone of cron and at (default UTC)")
	f.StringVar(&input, "input", "", "JSON event for every firing (default: EventBridge's Scheduled Event)")
	f.StringVar(&in.CatchUp, "catch-up", "", "firings missed while Owl was down: last (fire the latest once; default) or none")
	return cmd
}

func newTriggerLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the schedules",
		Args:  cobra.NoArgs,
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, _ []string) error {
			ts, err := c.Triggers(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCHEDULE\tFUNCTION\tSTATE\tLAST\tNEXT")
			at := func(t *time.Time) string {
				if t == nil {
					return "-"
				}
				return t.Local().Format(time.RFC3339)
			}
			for _, t := range ts {
				sched := t.Schedule
				if t.Timezone != "" {
					sched += " " + t.Timezone
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, sched, t.Function, t.State, at(t.LastFiring), at(t.NextFiring))
			}
			return tw.Flush()
		}),
	}
}

func newTriggerRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME...",
		Short: "Remove schedules",
		Args:  cobra.MinimumNArgs(1),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			for _, name := range args {
				if err := c.DeleteTrigger(cmd.Context(), name); err != nil {
					return err
				}
			}
			return nil
		}),
	}
}
