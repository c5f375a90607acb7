package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/client"
	"github.com/owl-project/owl/internal/lambdawire"
)

func newRouteCmd(g *globals) *cobra.Command {
	return newGroupCmd("route", "Add, list and remove the routes of Owl's HTTP API", `Routes send HTTP requests to functions: "GET /users/{id}" (path parameters in braces, a greedy
last one as {path+}, ANY for every method) or "$default" for whatever no other route matches.
Owl serves them under http://<api>/http/... with payload format 2.0 events (routeKey,
pathParameters), and Lambda's response rules. Routes that clash are refused.`,
		newRouteAddCmd(g), newRouteLsCmd(g), newRmCmd(g, "rm 'METHOD /path'|ID...", "Remove routes, by key or id", (*client.Client).DeleteRoute))
}

func newRouteAddCmd(g *globals) *cobra.Command {
	var auth string
	cmd := &cobra.Command{
		Use:   "add 'METHOD /path' FUNCTION",
		Short: "Add a route",
		Example: `  owl route add 'GET /users/{id}' users-get
  owl route add 'POST /users' users-create:live
  owl route add 'ANY /files/{path+}' files --auth-type AWS_IAM
  owl route add '$default' not-found`,
		Args: cobra.ExactArgs(2),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			rt, err := c.AddRoute(cmd.Context(), lambdawire.RouteInput{RouteKey: args[0], Function: args[1], AuthType: auth})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s → %s (%s, id %s)\n", rt.RouteKey, rt.Function, rt.AuthType, rt.ID)
			return nil
		}),
	}
	cmd.Flags().StringVar(&auth, "auth-type", "", "NONE (public; the default) or AWS_IAM (SigV4)")
	return cmd
}

func newRouteLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the routes",
		Args:  cobra.NoArgs,
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, _ []string) error {
			rs, err := c.Routes(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ROUTE\tFUNCTION\tAUTH\tID")
			for _, r := range rs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.RouteKey, r.Function, r.AuthType, r.ID)
			}
			return tw.Flush()
		}),
	}
}
