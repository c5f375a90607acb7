package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/client"
)

func newURLCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "url",
		Short: "Add, list and remove function URLs (an HTTP endpoint of a function)",
		Long: `A function URL is an HTTP endpoint of a function's $LATEST or of an alias, as on Lambda:
Owl serves it at http://<api>/lambda-url/<id>/... with payload format 2.0 events and Lambda's
response rules. --auth-type NONE (public; the default here) or AWS_IAM (SigV4).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var auth string
	add := &cobra.Command{
		Use:     "add NAME[:ALIAS]",
		Short:   "Give a function (or an alias) a URL, and print it",
		Example: "  owl url add hello\n  owl url add hello:live --auth-type AWS_IAM",
		Args:    cobra.ExactArgs(1),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			name, q, _ := strings.Cut(args[0], ":")
			u, err := c.CreateURL(cmd.Context(), name, q, auth)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), u.FunctionUrl)
			return nil
		}),
	}
	add.Flags().StringVar(&auth, "auth-type", "NONE", "NONE (public) or AWS_IAM (SigV4)")
	ls := &cobra.Command{
		Use:   "ls NAME",
		Short: "List a function's URLs",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			us, err := c.URLs(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "URL\tFUNCTION\tAUTH")
			for _, u := range us {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", u.FunctionUrl, functionOfARN(u.FunctionArn), u.AuthType)
			}
			return tw.Flush()
		}),
	}
	rm := &cobra.Command{
		Use:   "rm NAME[:ALIAS]...",
		Short: "Remove function URLs",
		Args:  cobra.MinimumNArgs(1),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			for _, a := range args {
				name, q, _ := strings.Cut(a, ":")
				if err := c.DeleteURL(cmd.Context(), name, q); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	cmd.AddCommand(add, ls, rm)
	return cmd
}
