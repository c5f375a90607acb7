package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/client"
	"github.com/owl-project/owl/internal/config"
)

// newCredentialsCmd is `owl credentials` (alias `owl env`): the export
// lines that point the AWS CLI, boto3 and the owl client at the local
// server, from the credentials file in its data dir.
func newCredentialsCmd(g *globals) *cobra.Command {
	var sc *serverConfig
	var shell string
	cmd := &cobra.Command{
		Use:     "credentials",
		Aliases: []string{"env"},
		Short:   "Print the export lines that point the AWS CLI, boto3 and owl at the local server",
		Long: `Credentials prints shell lines exporting AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, OWL_ENDPOINT and OWL_TOKEN for the server whose
data dir is --data (OWL_DATA, default $HOME/.owl): the credentials come from the file
"owl serve" keeps there (credentials.json), the region from OWL_REGION as the server
reads it. The endpoint is --endpoint when given, else the server's --addr (OWL_ADDR),
else OWL_ENDPOINT, else the default address. Values are shell-quoted.

AWS_ENDPOINT_URL is read by AWS CLI v1.29+/v2.13+ and boto3 1.28+; older ones (Debian
12's awscli 2.9 and python3-boto3 1.26) need --endpoint-url "$AWS_ENDPOINT_URL".`,
		Example: `  eval "$(owl credentials)"
  eval "$(owl credentials --data /srv/owl --addr 127.0.0.1:9000)"
  owl credentials --shell fish | source`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var quote func(string) string
			var line string
			switch shell {
			case "sh", "bash", "zsh":
				quote, line = shellQuote, "export %s=%s\n"
			case "fish":
				quote, line = fishQuote, "set -gx %s %s\n"
			default:
				return fmt.Errorf("--shell %q: want sh (also for bash and zsh) or fish", shell)
			}
			cfg, err := sc.resolve()
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration: %w", err)
			}
			endpoint, err := credentialsEndpoint(g.endpoint, cmd.Flags().Changed("addr"), cfg)
			if err != nil {
				return err
			}
			creds, err := readServerCredentials(cfg.DataDir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, kv := range [][2]string{
				{"AWS_ACCESS_KEY_ID", creds.AccessKeyID},
				{"AWS_SECRET_ACCESS_KEY", creds.SecretAccessKey},
				{"AWS_DEFAULT_REGION", cfg.Region},
				{"AWS_ENDPOINT_URL", endpoint},
				{client.EnvEndpoint, endpoint},
				{client.EnvToken, creds.Token},
			} {
				fmt.Fprintf(out, line, kv[0], quote(kv[1]))
			}
			return nil
		},
	}
	sc = bindServerConfig(cmd, "addr", "data")
	cmd.Flags().StringVar(&shell, "shell", "sh", "syntax of the lines: sh (for bash, zsh, dash...) or fish")
	return cmd
}

// readServerCredentials reads the credentials file `owl serve` keeps in
// dataDir, the one the client falls back to.
func readServerCredentials(dataDir string) (*client.Credentials, error) {
	path := filepath.Join(dataDir, client.CredentialsFile)
	creds, err := client.ReadCredentials(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no credentials at %s: start owl serve with this data dir once (it creates them), or point --data (OWL_DATA) at the server's", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("reading %s: permission denied: run this as the user who runs owl serve (root)", path)
	case err != nil:
		return nil, err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"access_key_id", creds.AccessKeyID}, {"secret_access_key", creds.SecretAccessKey}, {"token", creds.Token},
	} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s lacks %s: restart owl serve with this data dir to complete it", path, strings.Join(missing, ", "))
	}
	return creds, nil
}

// credentialsEndpoint is the URL of the server: --endpoint when given,
// else --addr or OWL_ADDR, else OWL_ENDPOINT, else the configured
// (default) address.
func credentialsEndpoint(endpointFlag string, addrFlag bool, cfg config.Config) (string, error) {
	var e string
	switch {
	case endpointFlag != "":
		e = endpointFlag
	case addrFlag || os.Getenv("OWL_ADDR") != "" || os.Getenv(client.EnvEndpoint) == "":
		u, err := endpointOf(cfg.Addr)
		if err != nil {
			return "", err
		}
		e = u
	default:
		e = os.Getenv(client.EnvEndpoint)
	}
	return client.New(e, "").Endpoint(), nil
}

// endpointOf is the URL a client on this machine reaches a server
// listening on addr at: a wildcard host becomes loopback.
func endpointOf(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("server address %q: want HOST:PORT: %w", addr, err)
	}
	if port == "0" {
		return "", fmt.Errorf("server address %q: port 0 is picked at random when the server starts; give the real one with --addr or --endpoint", addr)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// shellQuote quotes s for POSIX shells: in single quotes, each ' as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fishQuote quotes s for fish: in single quotes, \ and ' escaped.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
