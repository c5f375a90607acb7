// Package natsbus owns Owl's connection to NATS: by default an embedded
// nats-server with JetStream on, storing under the data directory and
// listening on no network port; the client reaches it in process.
package natsbus

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bus is a running embedded NATS server and a connection to it.
type Bus struct {
	srv *server.Server
	NC  *nats.Conn
	JS  jetstream.JetStream
}

// StartEmbedded starts an embedded JetStream server storing under
// dataDir/nats and connects to it in process.
func StartEmbedded(ctx context.Context, dataDir string, logger *slog.Logger) (*Bus, error) {
	opts := &server.Options{
		ServerName: "owl",
		JetStream:  true,
		StoreDir:   filepath.Join(dataDir, "nats"),
		DontListen: true,
		NoSigs:     true,
		// JetStream sync on every write would cost ~ms per request; the
		// default (periodic sync) matches NATS' own durability default.
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("creating embedded NATS server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server not ready after 10s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("owl"), nats.MaxReconnects(-1))
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("connecting to embedded NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, fmt.Errorf("JetStream context: %w", err)
	}
	logger.Debug("embedded NATS ready", "store", opts.StoreDir)
	return &Bus{srv: srv, NC: nc, JS: js}, nil
}

// Close drains the connection and shuts the server down, waiting for it.
func (b *Bus) Close() {
	if b.NC != nil {
		_ = b.NC.Drain()
		// Drain is asynchronous; Close makes sure the connection is gone.
		b.NC.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}
