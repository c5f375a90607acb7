package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/owl-project/owl/internal/client"

	"github.com/owl-project/owl/internal/testkit"
)

// writeCreds writes a credentials file like the one owl serve keeps.
func writeCreds(t *testing.T, dir string, c client.Credentials) {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, client.CredentialsFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A secret with a quote, a space and a dollar must survive the shell.
var awkward = client.Credentials{AccessKeyID: "AKIAOWL1", SecretAccessKey: `s3cr'et $HOME "x"`, Token: "owl_tok\\en"}

func clearOwlEnv(t *testing.T) {
	for _, k := range []string{"OWL_DATA", "OWL_ADDR", "OWL_ENDPOINT", "OWL_REGION", "OWL_TOKEN", "OWL_ACCESS_KEY_ID", "OWL_SECRET_ACCESS_KEY"} {
		t.Setenv(k, "")
	}
}

func TestCredentials(t *testing.T) {
	clearOwlEnv(t)
	dir := t.TempDir()
	writeCreds(t, dir, awkward)
	t.Setenv("OWL_REGION", "eu-west-3")
	out, errOut, code := runOwl(t, "", "", "credentials", "--data", dir, "--addr", "0.0.0.0:9000")
	want := `export AWS_ACCESS_KEY_ID='AKIAOWL1'
export AWS_SECRET_ACCESS_KEY='s3cr'\''et $HOME "x"'
export AWS_DEFAULT_REGION='eu-west-3'
export AWS_ENDPOINT_URL='http://127.0.0.1:9000'
export OWL_ENDPOINT='http://127.0.0.1:9000'
export OWL_TOKEN='owl_tok\en'
`
	if code != 0 || out != want {
		t.Errorf("exit %d, stderr %q\n%s\nwant\n%s", code, errOut, out, want)
	}

	out, _, code = runOwl(t, "", "", "env", "--data", dir, "--shell", "fish")
	if code != 0 || !strings.Contains(out, `set -gx AWS_SECRET_ACCESS_KEY 's3cr\'et $HOME "x"'`+"\n") ||
		!strings.Contains(out, `set -gx OWL_TOKEN 'owl_tok\\en'`+"\n") ||
		!strings.Contains(out, "set -gx OWL_ENDPOINT 'http://127.0.0.1:8790'\n") {
		t.Errorf("fish (alias env): exit %d\n%s", code, out)
	}
}

// The endpoint: --endpoint, else --addr or OWL_ADDR, else OWL_ENDPOINT,
// else the default address.
func TestCredentialsEndpoint(t *testing.T) {
	clearOwlEnv(t)
	dir := t.TempDir()
	writeCreds(t, dir, awkward)
	t.Setenv("OWL_DATA", dir)
	endpoint := func(args ...string) string {
		t.Helper()
		out, errOut, code := runOwl(t, "", "", append([]string{"credentials"}, args...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for line := range strings.Lines(out) {
			if v, ok := strings.CutPrefix(line, "export OWL_ENDPOINT="); ok {
				return strings.Trim(strings.TrimSpace(v), "'")
			}
		}
		t.Fatalf("no OWL_ENDPOINT in\n%s", out)
		return ""
	}
	if got := endpoint(); got != client.DefaultEndpoint {
		t.Errorf("default: %s", got)
	}
	t.Setenv("OWL_ENDPOINT", "http://owl.example:1234/")
	if got := endpoint(); got != "http://owl.example:1234" {
		t.Errorf("OWL_ENDPOINT: %s", got)
	}
	t.Setenv("OWL_ADDR", "[::]:8800")
	if got := endpoint(); got != "http://[::1]:8800" {
		t.Errorf("OWL_ADDR over OWL_ENDPOINT: %s", got)
	}
	if got := endpoint("--addr", "127.0.0.2:7000"); got != "http://127.0.0.2:7000" {
		t.Errorf("--addr: %s", got)
	}
	if got := endpoint("--endpoint", "owl.internal:80", "--addr", "127.0.0.2:7000"); got != "http://owl.internal:80" {
		t.Errorf("--endpoint: %s", got)
	}
}

func TestCredentialsErrors(t *testing.T) {
	clearOwlEnv(t)
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", dir}, "owl: no credentials at " + filepath.Join(dir, "credentials.json") + ": start owl serve with this data dir once"},
		{[]string{"--data", dir, "--addr", "127.0.0.1:0"}, "port 0 is picked at random"},
		{[]string{"--data", dir, "--shell", "tcsh"}, `--shell "tcsh": want sh (also for bash and zsh) or fish`},
		{[]string{"--data", dir, "--addr", "nowhere"}, `invalid configuration: addr "nowhere": want HOST:PORT`},
	} {
		_, errOut, code := runOwl(t, "", "", append([]string{"credentials"}, c.args...)...)
		if code != 1 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errOut, c.want)
		}
	}
	writeCreds(t, dir, client.Credentials{AccessKeyID: "AKIA", Token: "t"})
	_, errOut, code := runOwl(t, "", "", "credentials", "--data", dir)
	if code != 1 || !strings.Contains(errOut, "lacks secret_access_key") {
		t.Errorf("incomplete file: exit %d, %q", code, errOut)
	}
}

// eval "$(owl credentials --data DIR)" in bash sets every variable to the
// exact value, awkward characters included.
func TestCredentialsEvalInBash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the owl binary")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		testkit.Skip(t, "no bash")
	}
	bin := builtOwl(t)
	dir := t.TempDir()
	writeCreds(t, dir, awkward)
	script := `eval "$("$OWL_BIN" credentials --data "$DIR" --addr 127.0.0.1:8999)" || exit 9
printf '%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_DEFAULT_REGION" "$AWS_ENDPOINT_URL" "$OWL_ENDPOINT" "$OWL_TOKEN"
env | grep -c '^AWS_\|^OWL_ENDPOINT=\|^OWL_TOKEN='`
	cmd := exec.Command(bash, "-c", script)
	cmd.Env = cleanEnv("OWL_BIN="+bin, "DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	want := strings.Join([]string{awkward.AccessKeyID, awkward.SecretAccessKey, "us-east-1",
		"http://127.0.0.1:8999", "http://127.0.0.1:8999", awkward.Token, "6"}, "\n") + "\n"
	if string(out) != want {
		t.Errorf("bash saw\n%s\nwant\n%s", out, want)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"": "''", "abc": "'abc'", "a'b": `'a'\''b'`, `$x "y"`: `'$x "y"'`} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
	if got := fishQuote(`a'b\c`); got != `'a\'b\\c'` {
		t.Errorf("fishQuote = %s", got)
	}
}
