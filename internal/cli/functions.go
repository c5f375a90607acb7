package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/owl-project/owl/internal/client"
	"github.com/spf13/cobra"
)

func newListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List functions",
		Args:    cobra.NoArgs,
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, _ []string) error {
			fns, err := c.ListFunctions(cmd.Context())
			if err != nil {
				return err
			}
			slices.SortFunc(fns, func(a, b client.FunctionConfiguration) int {
				return strings.Compare(a.FunctionName, b.FunctionName)
			})
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tRUNTIME\tMEMORY\tTIMEOUT\tCODE-SIZE\tLAST-MODIFIED")
			for _, f := range fns {
				fmt.Fprintf(tw, "%s\t%s\t%d MB\t%ds\t%s\t%s\n", f.FunctionName, orDash(f.Runtime),
					f.MemorySize, f.Timeout, humanSize(f.CodeSize), orDash(f.LastModified))
			}
			return tw.Flush()
		}),
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "get NAME",
		Short:             "Show a function's configuration as JSON",
		Args:              nameArg,
		ValidArgsFunction: completeFunctionNames(g, false),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			out, err := c.GetFunction(cmd.Context(), args[0])
			if err != nil {
				return functionErr(args[0], err)
			}
			b, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
			return err
		}),
	}
}

func newRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"delete"},
		Short:   "Delete functions",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("rm: missing function name (usage: %s)", cmd.UseLine())
			}
			return nil
		},
		ValidArgsFunction: completeFunctionNames(g, true),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			for _, name := range args {
				if err := c.DeleteFunction(cmd.Context(), name); err != nil {
					return functionErr(name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", name)
			}
			return nil
		}),
	}
}

func newLogsCmd(g *globals) *cobra.Command {
	var limit int
	var follow, asJSON bool
	var since, until string
	f := client.LogFilter{}
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a function's recent log lines, oldest first",
		Long: `Logs prints the most recent log lines of the function NAME, oldest first: the platform's
START, END and REPORT lines around each invocation and everything the function wrote.
With -f it goes on printing each line as the function writes it, until interrupted (or the
function is deleted).

--since and --until take a duration back from now (30m, 2h, 7d) or an RFC 3339 time
(2026-12-06T08:00:00Z); --request selects one invocation's lines; --qualifier a version's
($LATEST, a number, or an alias: the versions it routes to); --json prints one object per
line: time, requestId, version, stream (function or platform) and message.`,
		Example: `  owl logs hello
  owl logs hello -f
  owl logs hello --since 10m --json
  owl logs hello --request 5f0c…`,
		Args:              nameArg,
		ValidArgsFunction: completeFunctionNames(g, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return errors.New("logs: --limit must not be negative")
			}
			var err error
			if f.Since, err = parseWhen(since, time.Now()); err != nil {
				return fmt.Errorf("logs: --since: %w", err)
			}
			if f.Until, err = parseWhen(until, time.Now()); err != nil {
				return fmt.Errorf("logs: --until: %w", err)
			}
			f.Limit, f.JSON = limit, asJSON
			c, err := g.client()
			if err != nil {
				return err
			}
			if follow {
				return functionErr(args[0], c.FollowLogs(cmd.Context(), args[0], f, cmd.OutOrStdout()))
			}
			text, err := c.Logs(cmd.Context(), args[0], f)
			if err != nil {
				return functionErr(args[0], err)
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), ensureNewline(text))
			return err
		},
	}
	fl := cmd.Flags()
	fl.IntVarP(&limit, "limit", "n", 0, "number of lines (0: the server's default)")
	fl.BoolVarP(&follow, "follow", "f", false, "go on printing each line as the function writes it")
	fl.StringVar(&since, "since", "", "lines from this time on (a duration back from now, or RFC 3339)")
	fl.StringVar(&until, "until", "", "lines up to this time")
	fl.StringVar(&f.RequestID, "request", "", "only this invocation's lines (its request id)")
	fl.StringVarP(&f.Qualifier, "qualifier", "q", "", "only this version's lines (or an alias's versions)")
	fl.BoolVar(&asJSON, "json", false, "print one JSON object per line")
	return cmd
}
