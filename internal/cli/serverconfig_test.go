package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/config"
)

// The server flags resolve the same way for every command that binds them:
// defaults, then OWL_* variables, then the flags the user set.
func TestServerConfigPrecedence(t *testing.T) {
	env := map[string]string{"OWL_ADDR": "127.0.0.1:9000", "OWL_DATA": "/env/data", "OWL_IDLE_TIMEOUT": "5m"}
	cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	sc := bindServerConfig(cmd)
	sc.getenv = func(k string) string { return env[k] }
	cmd.SetArgs([]string{"--data", "/flag/data", "--network-egress=false"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	cfg, err := sc.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9000" || cfg.DataDir != "/flag/data" || cfg.IdleTimeout != 5*time.Minute || cfg.NetworkEgress {
		t.Errorf("resolved %+v", cfg)
	}

	env["OWL_PREWARM"] = "many"
	if _, err := sc.resolve(); err == nil || err.Error() != `OWL_PREWARM="many": not an integer` {
		t.Errorf("bad env value: %v", err)
	}
}

// A command binding a subset gets only those flags; the rest come from the
// environment.
func TestServerConfigSubset(t *testing.T) {
	cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	sc := bindServerConfig(cmd, "addr", "data")
	sc.getenv = func(k string) string { return map[string]string{"OWL_NETWORK_EGRESS": "false"}[k] }
	if cmd.Flags().Lookup("memory-budget") != nil || cmd.Flags().Lookup("data") == nil {
		t.Fatal("subset binding bound the wrong flags")
	}
	cmd.SetArgs([]string{"--addr", "[::1]:1234"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	cfg, err := sc.resolve()
	if err != nil || cfg.Addr != "[::1]:1234" || cfg.NetworkEgress {
		t.Errorf("resolved %+v, %v", cfg, err)
	}
}

// TestLoggerFormat: --log-format json makes Owl's own lines JSON objects
// (level and message included), text makes key=value lines, and the level
// holds either way.
func TestLoggerFormat(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		cfg := config.Default()
		cfg.LogFormat, cfg.LogLevel = format, "warn"
		var b bytes.Buffer
		logger, err := newLogger(cfg, &b)
		if err != nil {
			t.Fatal(err)
		}
		logger.Info("dropped below the level")
		logger.Warn("kept", "function", "f")
		out := strings.TrimSpace(b.String())
		if strings.Contains(out, "dropped") || strings.Count(out, "\n") != 0 {
			t.Errorf("%s: %q", format, out)
		}
		var rec map[string]any
		isJSON := json.Unmarshal([]byte(out), &rec) == nil
		if (format == "json") != isJSON || (isJSON && (rec["level"] != "WARN" || rec["msg"] != "kept" || rec["function"] != "f")) {
			t.Errorf("%s: %q", format, out)
		}
		if format == "text" && !strings.Contains(out, `level=WARN msg=kept function=f`) {
			t.Errorf("text: %q", out)
		}
	}
}
