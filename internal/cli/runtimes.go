package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/client"
)

// newRuntimesCmd is `owl runtimes`: the runtimes the server can run.
func newRuntimesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "runtimes",
		Short: "List the runtimes the server can run",
		Long: `Runtimes lists the runtime identifiers the server accepts: the custom runtimes
(provided*, a bootstrap of yours) and Owl's own Python and Node.js runtimes for the
interpreters installed on the server's machine.`,
		Args: cobra.NoArgs,
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, _ []string) error {
			rts, err := c.Runtimes(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUNTIME\tKIND\tAWS_EXECUTION_ENV")
			for _, r := range rts {
				env := r.ExecutionEnv
				if env == "" {
					env = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", r.ID, r.Kind, env)
			}
			return tw.Flush()
		}),
	}
}
