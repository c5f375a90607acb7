package cli

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// completionTimeout bounds the server round trip of a shell completion: a shell waiting on Tab
// is worse than no suggestions.
const completionTimeout = 3 * time.Second

// completeFunctionNames completes function names from the server, silently offering nothing when
// the server cannot be asked. With many, it completes every argument (minus names already
// given); otherwise only the first.
func completeFunctionNames(g *globals, many bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !many && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := g.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, completionTimeout)
		defer cancel()
		fns, err := c.ListFunctions(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []cobra.Completion
		for _, f := range fns {
			if strings.HasPrefix(f.FunctionName, toComplete) && !slices.Contains(args, f.FunctionName) {
				names = append(names, f.FunctionName)
			}
		}
		slices.Sort(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
