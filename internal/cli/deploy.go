package cli

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/owl-project/owl/internal/client"
	"github.com/spf13/cobra"
)

// deployWait bounds how long deploy waits for a function to become Active and for updates to
// finish; poll intervals start at deployPollMin and double up to deployPollMax.
const (
	deployWait    = 2 * time.Minute
	deployPollMin = 100 * time.Millisecond
	deployPollMax = time.Second
)

type deployOptions struct {
	name        string
	runtime     string
	handler     string
	description string
	memory      int
	timeout     int
	env         []string
	network     string
}

func newDeployCmd(g *globals) *cobra.Command {
	var o deployOptions
	cmd := &cobra.Command{
		Use:   "deploy DIR|ZIP --name NAME",
		Short: "Create or update a function from a directory or a zip file",
		Long: `Deploy creates the function NAME, or updates its code and then its configuration if it exists.

A directory is zipped in memory: its contents (hidden files included) become the root of the
package, entries are sorted and timestamps fixed so the same files give the same CodeSha256,
execute bits are kept (bootstrap must be executable), and symlinks are stored as symlinks when
they point inside the directory (others are skipped with a warning). A .zip file is sent as is.

On create, --runtime is required and --handler defaults to "bootstrap" for provided* runtimes.
On update, only the settings given as flags change; --env replaces all variables.

--network egress lets the function reach the host's networks (like Lambda reaches the
internet; never the Owl host itself nor other functions); --network none gives it loopback
only. Without the flag a new function gets the server's default (egress unless the server
runs with OWL_NETWORK_EGRESS=false).`,
		Example: `  owl deploy ./hello --name hello --runtime provided.al2023
  owl deploy fn.zip --name api --runtime python3.12 --handler app.handler --memory 256 --env STAGE=prod
  owl deploy ./resize --name resize --runtime provided.al2023 --network none`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("deploy: expected one DIR or ZIP, got %d arguments (usage: %s)", len(args), cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDeploy(cmd, g, &o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.name, "name", "n", "", "function name (required)")
	f.StringVarP(&o.runtime, "runtime", "r", "", "runtime, e.g. provided.al2023 or python3.12 (required on create)")
	f.StringVar(&o.handler, "handler", "", `handler (default "bootstrap" for provided* runtimes)`)
	f.IntVarP(&o.memory, "memory", "m", 0, "memory in MB (server default 128)")
	f.IntVarP(&o.timeout, "timeout", "t", 0, "timeout in seconds (server default 3)")
	f.StringArrayVarP(&o.env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringVar(&o.description, "description", "", "description")
	f.StringVar(&o.network, "network", "", `network: "egress" (reach the host's networks) or "none" (loopback only); default: the server's`)
	_ = cmd.RegisterFlagCompletionFunc("network", cobra.FixedCompletions([]string{"egress", "none"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.RegisterFlagCompletionFunc("name", completeFunctionNames(g, false))
	return cmd
}

func runDeploy(cmd *cobra.Command, g *globals, o *deployOptions, path string) error {
	stderr := cmd.ErrOrStderr()
	warn := func(msg string) { fmt.Fprintf(stderr, "owl: deploy: warning: %s\n", msg) }

	// Everything local is checked before the server is contacted. Local errors say "deploy:";
	// the server's own errors (not found, unreachable) read the same in every command.
	if o.name == "" {
		return errors.New("deploy: --name must not be empty")
	}
	if o.memory < 0 || o.timeout < 0 {
		return errors.New("deploy: --memory and --timeout must not be negative")
	}
	if cmd.Flags().Changed("network") && o.network != "egress" && o.network != "none" {
		return fmt.Errorf("deploy: --network %q: want egress or none", o.network)
	}
	env, err := parseEnv(o.env)
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	pkg, err := loadPackage(path, warn)
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx := cmd.Context()

	var existing *client.FunctionConfiguration
	if out, err := c.GetFunction(ctx, o.name); err == nil {
		existing = &out.Configuration
	} else if !client.IsCode(err, client.CodeResourceNotFound) {
		return err
	}

	runtime := o.runtime
	if runtime == "" && existing != nil {
		runtime = existing.Runtime
	}
	if strings.HasPrefix(runtime, "provided") {
		switch found, exec := inspectBootstrap(pkg); {
		case !found:
			warn(`the package has no "bootstrap" at its root; provided runtimes run /var/task/bootstrap`)
		case !exec:
			warn(`"bootstrap" in the package is not executable`)
		}
	}

	verb := "updated"
	var fc *client.FunctionConfiguration
	if existing == nil {
		verb = "created"
		fc, err = createFunction(ctx, cmd, c, o, env, pkg)
		if client.IsCode(err, client.CodeResourceConflict) {
			// Created by someone else since our GetFunction: update it instead.
			verb = "updated"
			fc, err = updateFunction(ctx, cmd, c, o, env, pkg, nil)
		}
	} else {
		fc, err = updateFunction(ctx, cmd, c, o, env, pkg, existing)
	}
	if err != nil {
		return err
	}

	if sum := codeSha256(pkg); fc.CodeSha256 != "" && fc.CodeSha256 != sum {
		warn(fmt.Sprintf("the server reports CodeSha256 %s but the package sent has %s", fc.CodeSha256, sum))
	}
	state := fc.State
	if state == "" {
		state = "unknown"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s: runtime %s, code %s, sha256 %s, state %s\n",
		verb, o.name, orDash(fc.Runtime), humanSize(fc.CodeSize), orDash(fc.CodeSha256), state)
	return nil
}

// createFunction creates the function and waits until it leaves Pending.
func createFunction(ctx context.Context, cmd *cobra.Command, c *client.Client, o *deployOptions, env map[string]string, pkg []byte) (*client.FunctionConfiguration, error) {
	if o.runtime == "" {
		return nil, fmt.Errorf("deploy: --runtime is required to create function %q", o.name)
	}
	handler := o.handler
	if handler == "" {
		if !strings.HasPrefix(o.runtime, "provided") {
			return nil, fmt.Errorf("deploy: --handler is required for runtime %q", o.runtime)
		}
		handler = "bootstrap"
	}
	in := &client.CreateFunctionInput{
		FunctionName: o.name,
		Runtime:      o.runtime,
		Handler:      handler,
		Description:  o.description,
		MemorySize:   o.memory,
		Timeout:      o.timeout,
		Code:         client.FunctionCode{ZipFile: pkg},
		Network:      o.network,
	}
	if env != nil {
		in.Environment = &client.Environment{Variables: env}
	}
	bar := newProgressBar(cmd.ErrOrStderr(), len(pkg))
	in.Progress = bar.progress()
	fc, err := c.CreateFunction(ctx, in)
	bar.finish()
	if err != nil {
		return nil, err
	}
	return waitSettled(ctx, cmd.ErrOrStderr(), c, fc)
}

// updateFunction replaces the code, then applies the settings given as flags that differ from
// existing (all given settings when existing is nil), waiting for each update to finish.
func updateFunction(ctx context.Context, cmd *cobra.Command, c *client.Client, o *deployOptions, env map[string]string, pkg []byte, existing *client.FunctionConfiguration) (*client.FunctionConfiguration, error) {
	bar := newProgressBar(cmd.ErrOrStderr(), len(pkg))
	fc, err := c.UpdateFunctionCode(ctx, o.name, &client.UpdateFunctionCodeInput{ZipFile: pkg, Progress: bar.progress()})
	bar.finish()
	if err != nil {
		return nil, functionErr(o.name, err)
	}
	if fc, err = waitSettled(ctx, cmd.ErrOrStderr(), c, fc); err != nil {
		return nil, err
	}
	in, changed := configChanges(cmd, o, env, existing)
	if !changed {
		return fc, nil
	}
	if fc, err = c.UpdateFunctionConfiguration(ctx, o.name, in); err != nil {
		return nil, functionErr(o.name, err)
	}
	return waitSettled(ctx, cmd.ErrOrStderr(), c, fc)
}

// configChanges returns the configuration update for the flags the user set, leaving out
// values equal to existing ones, and whether anything is left to change.
func configChanges(cmd *cobra.Command, o *deployOptions, env map[string]string, existing *client.FunctionConfiguration) (*client.UpdateFunctionConfigurationInput, bool) {
	cur := existing
	if cur == nil {
		cur = &client.FunctionConfiguration{}
	}
	set := cmd.Flags().Changed
	in := &client.UpdateFunctionConfigurationInput{}
	changed := false
	if set("runtime") && o.runtime != cur.Runtime {
		in.Runtime, changed = o.runtime, true
	}
	if set("handler") && o.handler != cur.Handler {
		in.Handler, changed = o.handler, true
	}
	if set("memory") && o.memory > 0 && o.memory != cur.MemorySize {
		in.MemorySize, changed = o.memory, true
	}
	if set("timeout") && o.timeout > 0 && o.timeout != cur.Timeout {
		in.Timeout, changed = o.timeout, true
	}
	if set("description") && (existing == nil || o.description != cur.Description) {
		in.Description, changed = &o.description, true
	}
	if set("network") && o.network != cur.Network {
		in.Network, changed = o.network, true
	}
	if set("env") {
		var curVars map[string]string
		if cur.Environment != nil {
			curVars = cur.Environment.Variables
		}
		if existing == nil || !maps.Equal(env, curVars) {
			if env == nil {
				env = map[string]string{}
			}
			in.Environment, changed = &client.Environment{Variables: env}, true
		}
	}
	return in, changed
}

// waitSettled polls until the function is no longer Pending and no update is InProgress, and
// fails if it ended Failed. After deployWait it gives up quietly with a note: the deploy itself
// succeeded, only the platform is slow to report.
func waitSettled(ctx context.Context, stderr io.Writer, c *client.Client, fc *client.FunctionConfiguration) (*client.FunctionConfiguration, error) {
	deadline := time.Now().Add(deployWait)
	interval := deployPollMin
	for {
		switch {
		case fc.State == client.StateFailed:
			return nil, fmt.Errorf("function %q failed to become active: %s", fc.FunctionName, reason(fc.StateReason, fc.StateReasonCode))
		case fc.LastUpdateStatus == client.UpdateFailed:
			return nil, fmt.Errorf("update of function %q failed: %s", fc.FunctionName, reason(fc.LastUpdateStatusReason, fc.LastUpdateStatusReasonCode))
		case fc.State != client.StatePending && fc.LastUpdateStatus != client.UpdateInProgress:
			return fc, nil
		case time.Now().After(deadline):
			fmt.Fprintf(stderr, "owl: deploy: function %q is still %s after %v; see `owl get %s`\n",
				fc.FunctionName, pendingWhat(fc), deployWait, fc.FunctionName)
			return fc, nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		interval = min(2*interval, deployPollMax)
		out, err := c.GetFunction(ctx, fc.FunctionName)
		if err != nil {
			return nil, functionErr(fc.FunctionName, err)
		}
		fc = &out.Configuration
	}
}

func pendingWhat(fc *client.FunctionConfiguration) string {
	if fc.State == client.StatePending {
		return "Pending"
	}
	return "updating"
}

func reason(msg, code string) string {
	switch {
	case msg == "" && code == "":
		return "no reason given"
	case code == "":
		return msg
	case msg == "":
		return code
	}
	return msg + " (" + code + ")"
}

// parseEnv parses KEY=VALUE pairs; nil when there are none. The server validates the keys.
func parseEnv(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	env := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--env %q: want KEY=VALUE", p)
		}
		env[k] = v
	}
	return env, nil
}

// codeSha256 is Lambda's CodeSha256 of a package: the base64 of its sha256.
func codeSha256(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}
