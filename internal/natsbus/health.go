package natsbus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

var (
	// ErrNotConnected: the client connection to the embedded server is down.
	ErrNotConnected = errors.New("NATS connection down")
	// ErrNoJetStream: connected, but JetStream does not answer.
	ErrNoJetStream = errors.New("JetStream unavailable")
)

// Check reports whether the bus can serve Owl: the in-process connection is
// up (ErrNotConnected otherwise) and JetStream answers an account-info
// request (ErrNoJetStream otherwise). Meant for health probes: one
// in-process round trip, bounded by ctx.
func (b *Bus) Check(ctx context.Context) error {
	if b.NC == nil || b.NC.Status() != nats.CONNECTED {
		status := "never connected"
		if b.NC != nil {
			status = b.NC.Status().String()
		}
		return fmt.Errorf("%w: %s", ErrNotConnected, status)
	}
	if _, err := b.JS.AccountInfo(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrNoJetStream, err)
	}
	return nil
}
