// Package natstest gives a test an embedded NATS of its own, as Owl runs
// it (JetStream on, its store in the test's temporary directory), closed
// when the test ends. It is part of the test kit (internal/testkit) but a
// package of its own: natsbus's tests use testkit, and testkit must not
// import natsbus back. Only tests import it.
package natstest

import (
	"context"
	"log/slog"
	"testing"

	"github.com/owl-project/owl/internal/natsbus"
)

// Start starts an embedded NATS for t, logging nowhere, and closes it
// when t ends.
func Start(t testing.TB) *natsbus.Bus {
	t.Helper()
	bus, err := natsbus.StartEmbedded(context.Background(), t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	return bus
}
