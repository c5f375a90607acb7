package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/owl-project/owl/internal/client"
	"github.com/owl-project/owl/internal/lambdawire"
)

func newTriggerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trigger",
		Short: "Add, list and remove schedules and subjects that invoke functions",
		Long: `A schedule invokes a function asynchronously on an EventBridge Scheduler expression:
rate(5 minutes), cron(0 12 * * ? *) (minutes hours day-of-month month day-of-week year, with
?, L, W and # as on AWS) or at(2026-12-24T18:00:00), in --timezone (UTC by default). Owl also
takes rate(N seconds). Each firing is one event, in the event log (owl events ls) as type
owl.schedule.

A subject trigger (an event source mapping, as aws lambda create-event-source-mapping makes)
invokes a function with batches of the messages published on a NATS subject (wildcards * and
> allowed): owl events publish, or a function. A stream trigger does the same with the
messages of a JetStream stream of your own (--stream STREAM or STREAM/SUBJECT-FILTER). Neither
has a name: its id is its UUID.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTriggerAddCmd(g), newTriggerLsCmd(g), newTriggerRmCmd(g))
	return cmd
}

func newTriggerAddCmd(g *globals) *cobra.Command {
	var in lambdawire.TriggerInput
	var input string
	var sub subjectFlags
	cmd := &cobra.Command{
		Use:   "add NAME --schedule EXPR --function F[:QUALIFIER] | add --subject SUBJECT|--stream STREAM[/FILTER] --function F",
		Short: "Add a schedule, or a subject trigger",
		Example: `  owl trigger add nightly --schedule 'cron(0 2 * * ? *)' --timezone Europe/Paris --function report
  owl trigger add tick --schedule 'rate(1 minute)' --function hello --input '{"name":"tick"}'
  owl trigger add --subject 'orders.>' --function ship --batch-size 10 --filter '{"body":{"total":[{"numeric":[">",100]}]}}'
  owl trigger add --stream 'SHOP/shop.orders.>' --function ship --starting-position TRIM_HORIZON`,
		Args: cobra.RangeArgs(0, 1),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			if sub.subject != "" || sub.stream != "" {
				if len(args) > 0 || in.Schedule != "" || (sub.subject != "" && sub.stream != "") {
					return fmt.Errorf("trigger add: a --subject or --stream trigger takes no NAME, no --schedule and not both")
				}
				return sub.add(cmd, c, in.Function)
			}
			if len(args) != 1 || in.Schedule == "" || in.Function == "" {
				return fmt.Errorf("trigger add: NAME, --schedule and --function are required (or --subject or --stream, and --function)")
			}
			in.Name = args[0]
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
	sub.register(f)
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
			ms, err := c.Mappings(cmd.Context())
			if err != nil {
				return err
			}
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\n", m.UUID, m.EventSourceArn, functionOfARN(m.FunctionArn), strings.ToUpper(m.State))
			}
			return tw.Flush()
		}),
	}
}

func newTriggerRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME|UUID...",
		Short: "Remove schedules (by name) and subject triggers (by UUID)",
		Args:  cobra.MinimumNArgs(1),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			for _, name := range args {
				err := c.DeleteTrigger(cmd.Context(), name)
				if apiErr, ok := errors.AsType[*client.APIError](err); ok && apiErr.Status != 0 && isUUID(name) {
					err = c.DeleteMapping(cmd.Context(), name)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}),
	}
}

// subjectFlags are owl trigger add's flags for a subject trigger.
type subjectFlags struct {
	subject, onFailure string
	stream, position   string
	batchSize, window  int
	filters            []string
	reportFailures     bool
}

func (s *subjectFlags) register(f *pflag.FlagSet) {
	f.StringVar(&s.subject, "subject", "", "a NATS subject to read (wildcards * and > allowed): a subject trigger")
	f.StringVar(&s.stream, "stream", "", "a JetStream stream of your own to read, STREAM or STREAM/SUBJECT-FILTER: a stream trigger")
	f.StringVar(&s.position, "starting-position", "", "subject or stream: LATEST (default) or TRIM_HORIZON")
	f.IntVar(&s.batchSize, "batch-size", 0, "subject: messages per invocation (1-10000; default 10)")
	f.IntVar(&s.window, "batch-window", 0, "subject: seconds a batch may wait to fill (0-300)")
	f.StringArrayVar(&s.filters, "filter", nil, "subject: a filter pattern (Lambda's syntax; repeatable: any may match)")
	f.StringVar(&s.onFailure, "on-failure", "", "subject: where messages given up go (a function ARN or arn:owl:nats:::subject)")
	f.BoolVar(&s.reportFailures, "report-item-failures", false, "subject: the function reports failed items (ReportBatchItemFailures)")
}

func (s *subjectFlags) add(cmd *cobra.Command, c *client.Client, function string) error {
	if function == "" {
		return fmt.Errorf("trigger add: --function is required")
	}
	arn := "arn:owl:nats:::" + s.subject
	if s.stream != "" {
		arn = "arn:owl:jetstream:::" + s.stream
	}
	in := lambdawire.EventSourceMappingInput{EventSourceArn: &arn, FunctionName: &function}
	if s.position != "" {
		in.StartingPosition = &s.position
	}
	if s.batchSize != 0 {
		in.BatchSize = &s.batchSize
	}
	if s.window != 0 {
		in.MaximumBatchingWindowInSeconds = &s.window
	}
	if len(s.filters) > 0 {
		in.FilterCriteria = &lambdawire.FilterCriteria{}
		for _, p := range s.filters {
			in.FilterCriteria.Filters = append(in.FilterCriteria.Filters, lambdawire.Filter{Pattern: &p})
		}
	}
	if s.onFailure != "" {
		in.DestinationConfig = &lambdawire.MappingDestinationConfig{OnFailure: &lambdawire.OnDestination{Destination: &s.onFailure}}
	}
	if s.reportFailures {
		in.FunctionResponseTypes = &[]string{"ReportBatchItemFailures"}
	}
	m, err := c.CreateMapping(cmd.Context(), in)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %s → %s\n", m.UUID, m.EventSourceArn, functionOfARN(m.FunctionArn))
	return nil
}

// functionOfARN is the name[:qualifier] of a function ARN.
func functionOfARN(arn string) string {
	if i := strings.Index(arn, ":function:"); i >= 0 {
		return arn[i+len(":function:"):]
	}
	return arn
}

func isUUID(s string) bool { return len(s) == 36 && strings.Count(s, "-") == 4 }
