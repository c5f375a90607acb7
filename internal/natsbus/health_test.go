package natsbus

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

// Check answers nil while the bus runs and names the connection once it is
// closed.
func TestCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := StartEmbedded(ctx, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Check(ctx); err != nil {
		t.Fatalf("Check of a running bus: %v", err)
	}
	b.Close()
	if err := b.Check(ctx); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Check after Close: %v, want ErrNotConnected", err)
	}
}
