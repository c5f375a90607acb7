// Package cli implements the owl command line. The client commands (deploy, invoke, ls, get, rm,
// logs) talk to an Owl API over HTTP through package client, exactly like any other client;
// serve runs the platform itself, after the host checks of doctor (package hostcheck) pass;
// credentials prints the shell exports that point clients at the local server. cmd/owl calls
// Execute and exits with its result.
//
// Errors are returned by the commands and printed in one place, Execute, as a single line
// "owl: <error>". A command that has already told the user what went wrong (a function that
// failed) returns errReported, which exits 1 without printing anything more.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/owl-project/owl/internal/client"
	"github.com/spf13/cobra"
)

// errReported means the command already printed what went wrong: exit 1, print nothing.
var errReported = errors.New("error already reported")

// Execute runs the owl command line with os.Args and returns the process exit code. The
// commands' context is cancelled on SIGINT or SIGTERM; a second signal kills the process.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // restore the default handlers, so a second Ctrl-C ends the process at once
	}()
	return execute(ctx, NewRootCmd(), os.Stderr)
}

// execute runs root and renders its error on stderr; it is Execute without the process globals.
func execute(ctx context.Context, root *cobra.Command, stderr io.Writer) int {
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errReported):
		return 1
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		fmt.Fprintln(stderr, "owl: interrupted")
		return 130
	}
	fmt.Fprintf(stderr, "owl: %s\n", strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " "))
	return 1
}

// NewRootCmd returns the owl command with all its subcommands.
func NewRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "owl",
		Short: "Owl: a self-hosted serverless platform",
		Long: `Owl runs functions (code, a handler and limits) in Lambda-like sandboxes.

Run "owl doctor" on a machine to check that it can run the platform, "owl serve" to start it;
the other commands talk to it over HTTP (eval "$(owl credentials)" points them and the AWS CLI
at the local server).
They find it at --endpoint (env OWL_ENDPOINT, default ` + client.DefaultEndpoint + `) and
authenticate with OWL_TOKEN, or else with the credentials that "owl serve" wrote into its
data dir (OWL_DATA, default $HOME/.owl).`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          rootArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SuggestionsMinimumDistance = 2
	root.SetVersionTemplate("owl {{.Version}}\n")
	root.PersistentFlags().StringVar(&g.endpoint, "endpoint", "",
		"Owl API endpoint (env OWL_ENDPOINT, default "+client.DefaultEndpoint+")")
	root.AddCommand(
		newServeCmd(),
		newDoctorCmd(),
		newCredentialsCmd(g),
		newDeployCmd(g),
		newInvokeCmd(g),
		newListCmd(g),
		newGetCmd(g),
		newRemoveCmd(g),
		newLogsCmd(g),
		newVersionCmd(),
		newBenchCmd(),
		newRuntimesCmd(g),
		newPublishCmd(g),
		newVersionsCmd(g),
		newAliasCmd(g),
		newEventsCmd(g),
		newTriggerCmd(g),
		newStreamCmd(g),
		newRouteCmd(g),
		newURLCmd(g),
		newUsageCmd(g),
		newTopCmd(g),
		newNodesCmd(g),
	)
	return root
}

// rootArgs rejects unknown commands in one line, with cobra's suggestions folded in.
func rootArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return errors.New(msg + `; run "owl --help" for the list`)
}

// globals holds the flags shared by all client commands.
type globals struct {
	endpoint string // --endpoint; empty means OWL_ENDPOINT or the default
}

// client returns an API client for the configured endpoint and token.
// withClient is a command's RunE that makes the API client first.
func withClient(g *globals, run func(cmd *cobra.Command, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		return run(cmd, c, args)
	}
}

func (g *globals) client() (*client.Client, error) {
	token, err := client.TokenFromEnv()
	if err != nil {
		return nil, err
	}
	endpoint := g.endpoint
	if endpoint == "" {
		endpoint = client.EndpointFromEnv()
	}
	return client.New(endpoint, token, client.WithUserAgent("owl/"+version())), nil
}

// notFoundError is a ResourceNotFoundException about a function the user named.
type notFoundError struct {
	name string
	err  error
}

func (e *notFoundError) Error() string { return fmt.Sprintf("function %q not found", e.name) }
func (e *notFoundError) Unwrap() error { return e.err }

// functionErr turns the error of an API call about function name into what the user should read.
func functionErr(name string, err error) error {
	if client.IsCode(err, client.CodeResourceNotFound) {
		return &notFoundError{name: name, err: err}
	}
	return err
}

// nameArg accepts exactly one positional argument, the function name.
func nameArg(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return fmt.Errorf("%s: missing function name (usage: %s)", cmd.Name(), cmd.UseLine())
	case len(args) > 1:
		return fmt.Errorf("%s: too many arguments %q (usage: %s)", cmd.Name(), args[1:], cmd.UseLine())
	}
	return nil
}

// ensureNewline returns s with a trailing newline, unless it is empty.
func ensureNewline(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// newGroupCmd is a command that only holds subcommands (owl trigger,
// owl stream, …): run alone, it prints its help.
func newGroupCmd(use, short, long string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(subs...)
	return cmd
}

// newRmCmd is an rm command that removes each of its arguments with del,
// stopping at the first failure.
func newRmCmd(g *globals, use, short string, del func(c *client.Client, ctx context.Context, name string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			for _, name := range args {
				if err := del(c, cmd.Context(), name); err != nil {
					return err
				}
			}
			return nil
		}),
	}
}
