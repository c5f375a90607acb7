package natsbus

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// Options.SyncAlways reaches JetStream: an fsync per write when set, the
// periodic sync (CompactInterval) either way.
func TestSyncAlwaysOption(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, want := range []bool{false, true} {
		b, err := StartEmbeddedWith(ctx, t.TempDir(), slog.New(slog.DiscardHandler), Options{SyncAlways: want})
		if err != nil {
			t.Fatal(err)
		}
		cfg := b.srv.JetStreamConfig()
		b.Close()
		if cfg == nil || cfg.SyncAlways != want || cfg.SyncInterval != CompactInterval {
			t.Errorf("SyncAlways %v: JetStream runs with %+v", want, cfg)
		}
	}
}
