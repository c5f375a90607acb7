package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/client"
	"github.com/owl-project/owl/internal/lambdawire"
)

// newNodesCmd is `owl nodes`: the cluster's nodes, and `owl nodes drain`.
func newNodesCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "List the cluster's nodes: roles, versions, capacity, environments, health",
		Long: `Nodes lists the nodes sharing the server's NATS (owl serve --nats): each one's role,
Owl version, free and total memory budget, invocations running, warm (idle and
frozen) environments, runtimes and health: ok, draining (no new placements),
unhealthy(CHECKS) (its /healthz checks that fail, e.g. disk: nothing is placed there),
lost (not heard from in 3 s: nothing is placed there) or incompatible (another Owl
protocol: refused). docs/cluster.md.`,
		Args: cobra.NoArgs,
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, _ []string) error {
			nodes, err := c.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(lambdawire.NodeList{Nodes: nodes})
			}
			return printNodes(cmd.OutOrStdout(), nodes)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the nodes as JSON (GET /owl/v1/nodes's answer)")
	var undo bool
	drain := &cobra.Command{
		Use:   "drain NAME",
		Short: "Stop new placements on a node; what runs there finishes",
		Long: `Drain stops placing new invocations on node NAME; invocations already running there
finish. --undo puts it back in service. A node that restarts is in service again.`,
		Args: cobra.ExactArgs(1),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			n, err := c.DrainNode(cmd.Context(), args[0], !undo)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (%d running)\n", n.Name, n.Health, n.Inflight)
			return err
		}),
	}
	drain.Flags().BoolVar(&undo, "undo", false, "put the node back in service")
	cmd.AddCommand(drain)
	return cmd
}

// printNodes writes the node table.
func printNodes(w io.Writer, nodes []lambdawire.Node) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tVERSION\tHEALTH\tMEMORY FREE/TOTAL\tRUNNING\tWARM\tRUNTIMES")
	for _, n := range nodes {
		mem, running := "-", "-"
		if n.Role != "api" {
			mem = fmt.Sprintf("%d/%d MB", n.MemoryFreeMB, n.MemoryMB)
			running = fmt.Sprintf("%d/%d", n.Inflight, n.ConcurrencyLimit)
		}
		health := n.Health
		if len(n.Problems) > 0 {
			health += "(" + strings.Join(n.Problems, ",") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Role, n.Version, health, mem, running,
			warmList(n.Environments), strings.Join(cmpOr(n.Runtimes, []string{"-"}), ","))
	}
	return tw.Flush()
}

// warmList is "fn:version=idle+frozen …" for the versions with any.
func warmList(envs map[string]map[string]int) string {
	var out []string
	for key, by := range envs {
		if n := by["idle"] + by["frozen"]; n > 0 {
			out = append(out, fmt.Sprintf("%s=%d", key, n))
		}
	}
	if len(out) == 0 {
		return "-"
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func cmpOr(a, b []string) []string {
	if len(a) == 0 {
		return b
	}
	return a
}
