package cli

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/client"
	"github.com/owl-project/owl/internal/lambdawire"
)

func newEventsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List, show and replay the events Owl accepted",
		Long: `The event log keeps every event Owl accepted (asynchronous invocations, records sent to
destination functions, replays) as a CloudEvents 1.0 record, for as long as the server's
--event-log-age and --event-log-bytes allow.

Times (--since, --until) are a duration back from now (30m, 2h, 7d) or an RFC 3339 time
(2026-12-06T08:00:00Z).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newEventsLsCmd(g), newEventsShowCmd(g), newEventsReplayCmd(g), newEventsPublishCmd(g))
	return cmd
}

func newEventsLsCmd(g *globals) *cobra.Command {
	var function, since, until string
	var limit int
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the event log, oldest first",
		Example: `  owl events ls --function hello --since 1h
  owl events ls --since 2026-12-06T08:00:00Z --until 2026-12-06T09:00:00Z`,
		Args: cobra.NoArgs,
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, _ []string) error {
			if limit < 0 {
				return errors.New("events ls: --limit must not be negative")
			}
			f := client.EventFilter{Function: function}
			var err error
			if f.Since, err = parseWhen(since, time.Now()); err != nil {
				return fmt.Errorf("events ls: --since: %w", err)
			}
			if f.Until, err = parseWhen(until, time.Now()); err != nil {
				return fmt.Errorf("events ls: --until: %w", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tID\tFUNCTION\tTYPE\tREPLAY OF")
			for n := 0; ; {
				f.Limit = min(max(limit-n, 0), 1000)
				if limit == 0 {
					f.Limit = 1000
				}
				page, err := c.ListEvents(cmd.Context(), f)
				if err != nil {
					return err
				}
				for _, e := range page.Events {
					fn := e.Subject
					if e.Qualifier != "" {
						fn += ":" + e.Qualifier
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.RFC3339Nano), e.ID, fn, e.Type, cmp.Or(e.ReplayOf, "-"))
				}
				n += len(page.Events)
				if page.NextMarker == "" || limit > 0 && n >= limit {
					break
				}
				f.Marker = page.NextMarker
			}
			return tw.Flush()
		}),
	}
	fl := cmd.Flags()
	fl.StringVarP(&function, "function", "f", "", "only this function's events")
	fl.StringVar(&since, "since", "", "only events from this time on (a duration back from now, or RFC 3339)")
	fl.StringVar(&until, "until", "", "only events up to this time")
	fl.IntVarP(&limit, "limit", "n", 100, "at most this many events (0: all)")
	return cmd
}

func newEventsShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Print one event's record (CloudEvents JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			_, raw, err := c.GetEvent(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var b bytes.Buffer
			if err := json.Indent(&b, raw, "", "  "); err != nil {
				return fmt.Errorf("events show: %w", err)
			}
			b.WriteByte('\n')
			_, err = cmd.OutOrStdout().Write(b.Bytes())
			return err
		}),
	}
}

func newEventsReplayCmd(g *globals) *cobra.Command {
	var function, since, until, to string
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-deliver a function's events of a time range, to it or to another function",
		Long: `Replay re-delivers the events --function received from --since to --until (default: now) as
new asynchronous invocations, in the order they happened: each gets a new request id, and its
record in the event log names the event it replays. --to sends them to another function (or a
version or alias: NAME:QUALIFIER); without it each goes to --function with the qualifier it was
invoked with. Earlier replays in the range are not replayed again. The events are delivered
like any asynchronous invocation, within the target's concurrency.`,
		Example: `  owl events replay --function hello --since 1h
  owl events replay --function hello --since 2026-12-06T08:00:00Z --until 2026-12-06T09:00:00Z --to hello-fixed`,
		Args: cobra.NoArgs,
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, _ []string) error {
			if function == "" || since == "" {
				return errors.New("events replay: --function and --since are required")
			}
			now := time.Now()
			in := lambdawire.ReplayInput{Function: function, To: to}
			for _, t := range []struct {
				flag, value string
				out         *string
			}{{"--since", since, &in.Since}, {"--until", until, &in.Until}} {
				at, err := parseWhen(t.value, now)
				if err != nil {
					return fmt.Errorf("events replay: %s: %w", t.flag, err)
				}
				if !at.IsZero() {
					*t.out = at.UTC().Format(time.RFC3339Nano)
				}
			}
			out, err := c.ReplayEvents(cmd.Context(), in)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, r := range out.Replayed {
				fmt.Fprintf(w, "%s replays %s\n", r.ID, r.ReplayOf)
			}
			fmt.Fprintf(w, "replayed %d events of %s to %s\n", out.Count, function, cmp.Or(to, function))
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVarP(&function, "function", "f", "", "the function whose events are replayed (required)")
	fl.StringVar(&since, "since", "", "start of the range: a duration back from now, or RFC 3339 (required)")
	fl.StringVar(&until, "until", "", "end of the range (default: now)")
	fl.StringVar(&to, "to", "", "the function (NAME or NAME:QUALIFIER) to deliver them to (default: --function)")
	return cmd
}

// parseWhen reads a time flag: "" (unset), a duration back from now (with
// d for days: 7d, 1d12h) or an RFC 3339 time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	var days time.Duration
	rest := s
	if i := strings.Index(s, "d"); i > 0 {
		var n int
		if _, err := fmt.Sscanf(s[:i], "%d", &n); err != nil || fmt.Sprint(n) != s[:i] {
			return time.Time{}, fmt.Errorf("%q is neither a duration (30m, 2h, 7d) nor an RFC 3339 time", s)
		}
		days, rest = time.Duration(n)*24*time.Hour, s[i+1:]
	}
	d := time.Duration(0)
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return time.Time{}, fmt.Errorf("%q is neither a duration (30m, 2h, 7d) nor an RFC 3339 time", s)
		}
	}
	if d+days < 0 {
		return time.Time{}, fmt.Errorf("%q: a duration back from now must not be negative", s)
	}
	return now.Add(-(d + days)), nil
}

func newEventsPublishCmd(g *globals) *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:     "publish SUBJECT --data JSON",
		Short:   "Publish an event on a NATS subject (subject triggers read it)",
		Example: `  owl events publish orders.created --data '{"id": 7, "total": 120}'`,
		Args:    cobra.ExactArgs(1),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			payload, err := readPayload(cmd.InOrStdin(), data)
			if err != nil {
				return fmt.Errorf("events publish: %w", err)
			}
			out, err := c.Publish(cmd.Context(), args[0], payload)
			if err != nil {
				return err
			}
			if out.Stored {
				fmt.Fprintf(cmd.OutOrStdout(), "stored as message %d of %s\n", out.Sequence, args[0])
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "published on %s (no trigger reads it: not stored)\n", args[0])
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&data, "data", "d", "{}", "event: JSON, @FILE, or - for stdin")
	return cmd
}
