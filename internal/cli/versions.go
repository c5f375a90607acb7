package cli

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/client"
)

func newPublishCmd(g *globals) *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "publish NAME",
		Short: "Publish the function's current code and configuration as a new immutable version",
		Long: `Publish freezes what NAME runs now ($LATEST) as version 1, 2, 3, ... Invoke it as NAME:N,
or point an alias at it ("owl alias set"). Publishing an unchanged function returns the newest
version instead of making another.`,
		Args:              nameArg,
		ValidArgsFunction: completeFunctionNames(g, false),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			v, err := c.PublishVersion(cmd.Context(), args[0], description)
			if err != nil {
				return functionErr(args[0], err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s version %s (code %s)\n", args[0], v.Version, shortSha(v.CodeSha256))
			return err
		}),
	}
	cmd.Flags().StringVar(&description, "description", "", "a description of this version")
	return cmd
}

func newVersionsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "versions NAME",
		Short:             "List a function's versions and the aliases that point at them",
		Args:              nameArg,
		ValidArgsFunction: completeFunctionNames(g, false),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			versions, err := c.ListVersions(cmd.Context(), args[0])
			if err != nil {
				return functionErr(args[0], err)
			}
			aliases, err := c.ListAliases(cmd.Context(), args[0])
			if err != nil {
				return functionErr(args[0], err)
			}
			byVersion := map[string][]string{}
			for _, a := range aliases {
				primary := 1.0
				if a.RoutingConfig != nil {
					for v, w := range a.RoutingConfig.AdditionalVersionWeights {
						byVersion[v] = append(byVersion[v], fmt.Sprintf("%s (%s)", a.Name, weightPct(w)))
						primary -= w
					}
				}
				label := a.Name
				if primary < 1 {
					label = fmt.Sprintf("%s (%s)", a.Name, weightPct(primary))
				}
				byVersion[a.FunctionVersion] = append(byVersion[a.FunctionVersion], label)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tCODE\tLAST-MODIFIED\tALIASES\tDESCRIPTION")
			for _, v := range versions {
				names := byVersion[v.Version]
				sort.Strings(names)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Version, shortSha(v.CodeSha256), orDash(v.LastModified),
					orDash(strings.Join(names, ", ")), orDash(v.Description))
			}
			return tw.Flush()
		}),
	}
}

func weightPct(w float64) string {
	return strconv.FormatFloat(math.Round(w*1e4)/1e2, 'f', -1, 64) + "%"
}

// shortSha abbreviates a base64 CodeSha256 for tables.
func shortSha(s string) string {
	if len(s) > 10 {
		return s[:10]
	}
	return orDash(s)
}

func newAliasCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alias",
		Short: "Name versions: set, list and remove aliases",
		Long: `An alias names a version of a function (invoke it as NAME:ALIAS) and can send a share of
its invocations to a second version, for canary rollouts:

  owl publish hello                          # version 2
  owl alias set hello live 1 --weight 2=0.1  # 90 % on version 1, 10 % on version 2
  owl alias set hello live 2                 # all on version 2`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newAliasSetCmd(g), newAliasListCmd(g), newAliasRemoveCmd(g))
	return cmd
}

func newAliasSetCmd(g *globals) *cobra.Command {
	var (
		weights     []string
		description string
	)
	cmd := &cobra.Command{
		Use:   "set NAME ALIAS VERSION",
		Short: "Create an alias or point it at another version",
		Long: `Set points ALIAS of function NAME at VERSION (a number or $LATEST), creating the alias when
it does not exist. --weight V=W sends the share W (0 to 1) of the alias's invocations to version V
instead; without --weight, any such routing is removed.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 3 {
				return fmt.Errorf("alias set: want NAME ALIAS VERSION, got %d arguments (usage: %s)", len(args), cmd.UseLine())
			}
			return nil
		},
		ValidArgsFunction: completeFunctionNames(g, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			routing := &client.RoutingConfig{AdditionalVersionWeights: map[string]float64{}}
			for _, wv := range weights {
				v, ws, ok := strings.Cut(wv, "=")
				w, err := strconv.ParseFloat(ws, 64)
				if !ok || v == "" || err != nil {
					return fmt.Errorf("alias set: --weight %q: want VERSION=WEIGHT, e.g. 2=0.1", wv)
				}
				routing.AdditionalVersionWeights[v] = w
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			name, alias, version := args[0], args[1], args[2]
			in := &client.AliasInput{Name: alias, FunctionVersion: version, RoutingConfig: routing}
			if cmd.Flags().Changed("description") {
				in.Description = &description
			}
			out, err := c.UpdateAlias(cmd.Context(), name, alias, in)
			if client.IsCode(err, client.CodeResourceNotFound) {
				if _, gerr := c.GetFunction(cmd.Context(), name); gerr != nil {
					return functionErr(name, gerr)
				}
				out, err = c.CreateAlias(cmd.Context(), name, in)
			}
			if err != nil {
				return err
			}
			msg := fmt.Sprintf("%s:%s -> version %s", name, out.Name, out.FunctionVersion)
			if out.RoutingConfig != nil {
				for v, w := range out.RoutingConfig.AdditionalVersionWeights {
					msg = fmt.Sprintf("%s:%s -> version %s (%s), version %s (%s)", name, out.Name,
						out.FunctionVersion, weightPct(1-w), v, weightPct(w))
				}
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), msg)
			return err
		},
	}
	cmd.Flags().StringArrayVar(&weights, "weight", nil, "VERSION=WEIGHT: send this share (0 to 1) of the invocations to VERSION")
	cmd.Flags().StringVar(&description, "description", "", "a description of the alias")
	return cmd
}

func newAliasListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "ls NAME",
		Short:             "List a function's aliases",
		Args:              nameArg,
		ValidArgsFunction: completeFunctionNames(g, false),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			aliases, err := c.ListAliases(cmd.Context(), args[0])
			if err != nil {
				return functionErr(args[0], err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ALIAS\tVERSION\tROUTING\tDESCRIPTION")
			for _, a := range aliases {
				routing := ""
				if a.RoutingConfig != nil {
					for v, w := range a.RoutingConfig.AdditionalVersionWeights {
						routing = fmt.Sprintf("%s to version %s", weightPct(w), v)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, a.FunctionVersion, orDash(routing), orDash(a.Description))
			}
			return tw.Flush()
		}),
	}
}

func newAliasRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME ALIAS",
		Short: "Delete an alias",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("alias rm: want NAME ALIAS (usage: %s)", cmd.UseLine())
			}
			return nil
		},
		ValidArgsFunction: completeFunctionNames(g, false),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DeleteAlias(cmd.Context(), args[0], args[1]); err != nil {
				return functionErr(args[0], err)
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "deleted %s:%s\n", args[0], args[1])
			return err
		}),
	}
}
