package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/owl-project/owl/internal/client"
	"github.com/spf13/cobra"
)

func newInvokeCmd(g *globals) *cobra.Command {
	var (
		data   string
		logs   bool
		async  bool
		stream bool
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
shows the run under that id, retried up to twice if the function fails.

With --stream the function is invoked with response streaming (InvokeWithResponseStream): its
response is printed as it is written, chunk by chunk, rather than once it has ended; an error
after the first byte is printed on stderr (exit status 1).`,
		Example: `  owl invoke hello --data '{"name":"owl"}'
  owl invoke hello --data @event.json --logs
  owl invoke hello --async --data '{"name":"later"}'
  owl invoke streamer --stream
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
			if stream {
				return invokeStream(cmd, c, name, payload, logs, async)
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
	f.BoolVar(&stream, "stream", false, "print the response as the function writes it (InvokeWithResponseStream)")
	f.BoolVar(&async, "async", false, "store the event and return its request id; the function runs later (Lambda's Event invocation type)")
	return cmd
}

// invokeStream is owl invoke --stream: the chunks go to stdout as they
// arrive.
func invokeStream(cmd *cobra.Command, c *client.Client, name string, payload []byte, logs, async bool) error {
	if async {
		return errors.New("invoke: --stream and --async exclude each other: an --async invocation answers before it runs")
	}
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	res, err := c.InvokeStream(cmd.Context(), name, payload, client.InvokeOptions{LogTail: logs}, func(p []byte) error {
		_, err := stdout.Write(p)
		return err
	})
	if err != nil {
		return functionErr(name, err)
	}
	if logs {
		fmt.Fprint(stderr, ensureNewline(res.LogResult))
	}
	if res.ErrorCode != "" {
		fmt.Fprintln(stderr, res.ErrorCode+": "+res.ErrorDetails)
		return errReported
	}
	return nil
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
