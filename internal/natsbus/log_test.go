package natsbus

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/testkit"
)

// The embedded server's lines reach the node's logger as component=nats:
// its start-up notices at Debug (none at Info, where a start stays quiet),
// its warnings and errors at their levels.
func TestNATSLogs(t *testing.T) {
	start := func(level slog.Level) string {
		var buf testkit.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := StartEmbedded(ctx, t.TempDir(), slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level})))
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		return buf.String()
	}
	if out := start(slog.LevelDebug); !strings.Contains(out, "component=nats") || !strings.Contains(out, "JetStream") {
		t.Errorf("at Debug, no NATS start-up lines in the node's log:\n%s", out)
	}
	if out := start(slog.LevelInfo); strings.Contains(out, "component=nats") {
		t.Errorf("at Info, a plain start logs NATS lines:\n%s", out)
	}

	var buf testkit.Buffer
	nl := natsLogger{slog.New(slog.NewTextHandler(&buf, nil)).With("component", "nats")}
	nl.Warnf("%s: %d", "store slow", 3)
	nl.Errorf("write failed: %v", "no space")
	nl.Noticef("a notice")
	out := buf.String()
	for _, want := range []string{`level=WARN msg="store slow: 3" component=nats`, `level=ERROR msg="write failed: no space" component=nats`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "a notice") {
		t.Errorf("a notice logged at Info:\n%s", out)
	}
}
