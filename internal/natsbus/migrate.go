package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// standaloneSuffix names where a single node's store is moved while its
// streams are copied into the cluster (StoreDir + this).
const standaloneSuffix = ".standalone"

// migrate moves the streams of the single-node store at old into the
// cluster b has joined, with JetStream's own snapshot and restore, so
// that every message keeps its sequence and time, consumers their
// positions. A stream the cluster holds already with the same last
// sequence was moved by an earlier, interrupted run; with another, it is
// someone else's and the migration stops with an error (two nodes that
// both brought a store). old is removed once every stream is in.
func (b *Bus) migrate(ctx context.Context, old string, logger *slog.Logger) error {
	src, err := server.NewServer(&server.Options{ServerName: "owl-migration", JetStream: true, StoreDir: old,
		DontListen: true, NoSigs: true, MaxPayload: 8 << 20, JetStreamMaxStore: b.maxStore})
	if err != nil {
		return fmt.Errorf("opening the single-node store %s: %w", old, err)
	}
	src.SetLoggerV2(natsLogger{logger.With("component", "nats-migration")}, false, false, false)
	go src.Start()
	defer func() { src.Shutdown(); src.WaitForShutdown() }()
	if !src.ReadyForConnections(30 * time.Second) {
		return errors.New("the single-node store did not open within 30s")
	}
	from, err := nats.Connect("", nats.InProcessServer(src))
	if err != nil {
		return fmt.Errorf("connecting to the single-node store: %w", err)
	}
	defer from.Close()
	names, err := streamNames(from)
	if err != nil {
		return err
	}
	start := time.Now()
	for _, name := range names {
		if err := b.migrateStream(ctx, from, name, logger); err != nil {
			return fmt.Errorf("moving stream %s into the cluster: %w", name, err)
		}
	}
	from.Close()
	src.Shutdown()
	src.WaitForShutdown()
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("removing the moved single-node store: %w", err)
	}
	logger.Info("moved the single-node store into the cluster", "streams", len(names), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// streamNames lists the streams of the store nc is connected to.
func streamNames(nc *nats.Conn) ([]string, error) {
	var names []string
	for offset := 0; ; {
		var resp server.JSApiStreamNamesResponse
		if err := request(nc, server.JSApiStreams, server.JSApiStreamNamesRequest{ApiPagedRequest: server.ApiPagedRequest{Offset: offset}}, &resp, &resp.ApiResponse); err != nil {
			return nil, fmt.Errorf("listing the single-node store's streams: %w", err)
		}
		names = append(names, resp.Streams...)
		offset += len(resp.Streams)
		if len(resp.Streams) == 0 || offset >= resp.Total {
			return names, nil
		}
	}
}

// request sends a JetStream API request and decodes its answer into out,
// whose ApiResponse is api; an error answer is an error.
func request(nc *nats.Conn, subject string, in, out any, api *server.ApiResponse) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	msg, err := nc.Request(subject, data, time.Minute)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(msg.Data, out); err != nil {
		return fmt.Errorf("decoding %s's answer: %w", subject, err)
	}
	if api.Error != nil {
		return api.Error
	}
	return nil
}

// migrateStream copies one stream: a snapshot from the single-node store,
// chunk by chunk, into a restore on the cluster.
func (b *Bus) migrateStream(ctx context.Context, from *nats.Conn, name string, logger *slog.Logger) error {
	inbox := nats.NewInbox()
	sub, err := from.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	var snap server.JSApiStreamSnapshotResponse
	if err := request(from, fmt.Sprintf(server.JSApiStreamSnapshotT, name),
		server.JSApiStreamSnapshotRequest{DeliverSubject: inbox, ChunkSize: 512 << 10}, &snap, &snap.ApiResponse); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if s, err := b.raw.Stream(ctx, name); err == nil {
		if s.CachedInfo().State.LastSeq == snap.State.LastSeq {
			logger.Info("a stream was moved into the cluster already", "stream", name)
			return nil
		}
		return fmt.Errorf("the cluster has a stream %s of its own (did another node bring a store too? only one may)", name)
	}
	cfg := *snap.Config
	cfg.Replicas = 1 // keepReplicas raises it
	var restore server.JSApiStreamRestoreResponse
	if err := request(b.NC, fmt.Sprintf(server.JSApiStreamRestoreT, name),
		server.JSApiStreamRestoreRequest{Config: cfg, State: *snap.State}, &restore, &restore.ApiResponse); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for {
		chunk, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return fmt.Errorf("reading the snapshot: %w", err)
		}
		if len(chunk.Data) == 0 {
			if st := chunk.Header.Get("Status"); st != "" && st != "204" {
				return fmt.Errorf("the snapshot failed: %s %s", st, chunk.Header.Get("Description"))
			}
			break
		}
		ack, err := requestAnswered(b.NC, restore.DeliverSubject, chunk.Data, time.Minute)
		if err != nil {
			return fmt.Errorf("restoring a chunk: %w", err)
		}
		if len(ack.Data) > 0 {
			var resp server.JSApiStreamCreateResponse
			if json.Unmarshal(ack.Data, &resp) == nil && resp.Error != nil {
				return fmt.Errorf("restoring a chunk: %w", resp.Error)
			}
		}
		if chunk.Reply != "" {
			_ = chunk.Respond(nil)
		}
	}
	var done server.JSApiStreamCreateResponse
	msg, err := requestAnswered(b.NC, restore.DeliverSubject, nil, 5*time.Minute)
	if err != nil {
		return fmt.Errorf("finishing the restore: %w", err)
	}
	if err := json.Unmarshal(msg.Data, &done); err != nil {
		return fmt.Errorf("finishing the restore: %w", err)
	}
	if done.Error != nil {
		return fmt.Errorf("finishing the restore: %w", done.Error)
	}
	logger.Info("moved a stream into the cluster", "stream", name, "messages", done.State.Msgs, "bytes", done.State.Bytes)
	return nil
}

// requestAnswered is nc.Request, asked again for up to 10 s while nobody
// answers: the server a restore runs on subscribes to its chunks' subject,
// and this server learns of that a moment later. A request nobody
// received is safe to send again.
func requestAnswered(nc *nats.Conn, subject string, data []byte, timeout time.Duration) (*nats.Msg, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg, err := nc.Request(subject, data, timeout)
		if !errors.Is(err, nats.ErrNoResponders) || time.Now().After(deadline) {
			return msg, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
