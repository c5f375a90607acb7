package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// membersBucket records each node that has joined the cluster and
// whether it is moving a single node's store in. Nodes that start while
// one is moving wait for it before creating any asset, so that the
// moved streams never meet empty ones of the same names.
const membersBucket = "OWL_MEMBERS"

// member is a node's record in membersBucket.
type member struct {
	Moving bool `json:"moving"`
}

// joinOrder records this node (moving: it brings a single node's store)
// and waits until every server of the cluster has recorded itself and
// none other is moving a store in. At a cluster's first start every
// server is up (NATS elects its first leader only then), so each records
// itself at once; at later starts the records are there.
func (b *Bus) joinOrder(ctx context.Context, moving bool, logger *slog.Logger) (jetstream.KeyValue, error) {
	kv, err := b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: membersBucket, History: 1,
		Description: "the nodes of the Owl cluster, and which is moving a single node's store in"})
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", membersBucket, err)
	}
	if err := b.setMember(ctx, kv, moving); err != nil {
		return nil, err
	}
	next := time.Now().Add(10 * time.Second)
	for {
		waitingFor, err := b.othersMoving(ctx, kv, moving)
		if err != nil {
			return nil, err
		}
		if waitingFor == "" {
			return kv, nil
		}
		if time.Now().After(next) {
			logger.Info("waiting for the cluster's other nodes before creating the store's assets", "waiting_for", waitingFor)
			next = time.Now().Add(10 * time.Second)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the cluster's nodes: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// setMember records this node.
func (b *Bus) setMember(ctx context.Context, kv jetstream.KeyValue, moving bool) error {
	data, _ := json.Marshal(member{Moving: moving})
	if _, err := settle(ctx, func(ctx context.Context) (uint64, error) { return kv.Put(ctx, b.srv.Name(), data) }); err != nil {
		return fmt.Errorf("recording this node in %s: %w", membersBucket, err)
	}
	return nil
}

// othersMoving is what this node waits for ("" for nothing): the
// cluster's servers not recorded yet, or another node moving its store
// (unless this one is moving one too: the second to restore a stream is
// refused, and says so).
func (b *Bus) othersMoving(ctx context.Context, kv jetstream.KeyValue, moving bool) (string, error) {
	keys, err := settle(ctx, func(ctx context.Context) ([]string, error) { return kv.Keys(ctx) })
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		keys, err = nil, nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", membersBucket, err)
	}
	for _, k := range keys {
		if k == b.srv.Name() {
			continue
		}
		e, err := settle(ctx, func(ctx context.Context) (jetstream.KeyValueEntry, error) { return kv.Get(ctx, k) })
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", membersBucket, err)
		}
		var m member
		if json.Unmarshal(e.Value(), &m) == nil && m.Moving && !moving {
			return "node " + k + " moving its single-node store in", nil
		}
	}
	if size := b.clusterSize(); len(keys) < size {
		return fmt.Sprintf("%d of %d nodes recorded", len(keys), size), nil
	}
	return "", nil
}
