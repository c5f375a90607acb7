package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/owl-project/owl/internal/client"
	"github.com/spf13/cobra"
)

func newInvokeCmd(g *globals) *cobra.Command {
	var (
		data  string
		logs  bool
		async bool
	)
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Invoke a function and print its response",
		Long: `Invoke runs the function NAME synchronously and prints its response on stdout.

The event is --data: inline JSON, @FILE for a file's contents, or - to read stdin ({} when not
given). With --logs the tail of the invocation's log goes to stderr. When the function fails,
its error object is printed on stderr and owl exits with status 1.

With --async the event is stored and delivered later (Lambda's Event invocation type): owl
prints the invocation's request id once Owl has stored it; the function's log ("owl logs")
shows the run under that id, retried up to twice if the function fails.`,
		Example: `  owl invoke hello --data '{"name":"owl"}'
  owl invoke hello --data @event.json --logs
  owl invoke hello --async --data '{"name":"later"}'
  echo '{}' | owl invoke hello --data -`,
		Args:              nameArg,
		ValidArgsFunction: completeFunctionNames(g, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			payload, err := readPayload(cmd.InOrStdin(), data)
			if err != nil {
				return fmt.Errorf("invoke: %w", err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if async {
				if logs {
					return fmt.Errorf("invoke: --logs needs a synchronous invocation; an --async one runs later (see owl logs %s)", name)
				}
				res, err := c.Invoke(cmd.Context(), name, payload, client.InvokeOptions{InvocationType: "Event"})
				if err != nil {
					return functionErr(name, err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), res.RequestID)
				return nil
			}
			res, err := c.Invoke(cmd.Context(), name, payload, client.InvokeOptions{LogTail: logs})
			if err != nil {
				return functionErr(name, err)
			}
			stderr := cmd.ErrOrStderr()
			if logs {
				fmt.Fprint(stderr, ensureNewline(res.LogResult))
			}
			if res.FunctionError != "" {
				fmt.Fprint(stderr, ensureNewline(string(res.Payload)))
				return errReported
			}
			fmt.Fprint(cmd.OutOrStdout(), ensureNewline(string(res.Payload)))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&data, "data", "d", "{}", "event: JSON, @FILE, or - for stdin")
	f.BoolVarP(&logs, "logs", "l", false, "print the tail of the invocation's log on stderr")
	f.BoolVar(&logs, "tail", false, "same as --logs")
	f.BoolVar(&async, "async", false, "store the event and return its request id; the function runs later (Lambda's Event invocation type)")
	return cmd
}

// readPayload returns the event given by --data: inline, @file or - for stdin.
func readPayload(stdin io.Reader, data string) ([]byte, error) {
	switch {
	case data == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading the event from stdin: %w", err)
		}
		return b, nil
	case strings.HasPrefix(data, "@"):
		file := data[1:]
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, pathErr(file, err)
		}
		return b, nil
	}
	return []byte(data), nil
}
