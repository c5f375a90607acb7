package natsbus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// replicated is the JetStream every Owl package gets from a clustered Bus
// (Bus.JS): the one place that decides how many replicas an asset has.
// A stream, bucket or object store it creates gets Bus.Replicas() (1 if
// the servers to place more on are not running now); updating one keeps
// its replicas as they are, so that a node starting while a peer is down
// never fails on, nor shrinks, an asset. Raising existing assets is
// keepReplicas' job.
type replicated struct {
	jetstream.JetStream
	b *Bus
}

// replicas is what a new asset gets, or an existing one keeps (0 when
// stream does not exist).
func (r replicated) replicas(ctx context.Context, stream string) (existing, want int) {
	if s, err := r.JetStream.Stream(ctx, stream); err == nil {
		return s.CachedInfo().Config.Replicas, 0
	}
	return 0, r.b.Replicas()
}

// create runs mk with the replicas a new asset gets, once more with one
// replica when the servers for more are not all running.
func create[T any](want int, mk func(replicas int) (T, error)) (T, error) {
	v, err := mk(want)
	if want > 1 && errIsPlacement(err) {
		return mk(1) // keepReplicas raises it once the servers are back
	}
	return v, err
}

func (r replicated) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return create(r.b.Replicas(), func(n int) (jetstream.Stream, error) {
		cfg.Replicas = n
		return r.JetStream.CreateStream(ctx, cfg)
	})
}

func (r replicated) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	existing, want := r.replicas(ctx, cfg.Name)
	if existing > 0 {
		cfg.Replicas = existing
		return r.JetStream.CreateOrUpdateStream(ctx, cfg)
	}
	return create(want, func(n int) (jetstream.Stream, error) {
		cfg.Replicas = n
		return r.JetStream.CreateOrUpdateStream(ctx, cfg)
	})
}

func (r replicated) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if existing, _ := r.replicas(ctx, cfg.Name); existing > 0 {
		cfg.Replicas = existing
	}
	return r.JetStream.UpdateStream(ctx, cfg)
}

func (r replicated) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return create(r.b.Replicas(), func(n int) (jetstream.KeyValue, error) {
		cfg.Replicas = n
		return r.JetStream.CreateKeyValue(ctx, cfg)
	})
}

func (r replicated) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	existing, want := r.replicas(ctx, "KV_"+cfg.Bucket)
	if existing > 0 {
		cfg.Replicas = existing
		return r.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	}
	return create(want, func(n int) (jetstream.KeyValue, error) {
		cfg.Replicas = n
		return r.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	})
}

func (r replicated) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if existing, _ := r.replicas(ctx, "KV_"+cfg.Bucket); existing > 0 {
		cfg.Replicas = existing
	}
	return r.JetStream.UpdateKeyValue(ctx, cfg)
}

func (r replicated) CreateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return create(r.b.Replicas(), func(n int) (jetstream.ObjectStore, error) {
		cfg.Replicas = n
		return r.JetStream.CreateObjectStore(ctx, cfg)
	})
}

func (r replicated) CreateOrUpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	existing, want := r.replicas(ctx, "OBJ_"+cfg.Bucket)
	if existing > 0 {
		cfg.Replicas = existing
		return r.JetStream.CreateOrUpdateObjectStore(ctx, cfg)
	}
	return create(want, func(n int) (jetstream.ObjectStore, error) {
		cfg.Replicas = n
		return r.JetStream.CreateOrUpdateObjectStore(ctx, cfg)
	})
}

func (r replicated) UpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	if existing, _ := r.replicas(ctx, "OBJ_"+cfg.Bucket); existing > 0 {
		cfg.Replicas = existing
	}
	return r.JetStream.UpdateObjectStore(ctx, cfg)
}

// ReplicaCheckInterval is how often a clustered node looks for assets
// with fewer replicas than Replicas() and raises them: a cluster that
// grows to three servers has every asset at R3 within this long of the
// third joining (and at once when a node starts).
const ReplicaCheckInterval = 10 * time.Second

// keepReplicas raises every stream (Owl's assets and users' streams
// alike) below Replicas() to it, now and every ReplicaCheckInterval
// until ctx ends. A raise that fails (a server down) is tried again.
func (b *Bus) keepReplicas(ctx context.Context, logger *slog.Logger) {
	t := time.NewTicker(ReplicaCheckInterval)
	defer t.Stop()
	for {
		b.RaiseReplicas(ctx, logger)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RaiseReplicas raises every stream below Replicas() to it, once, and
// returns the first error (the others are tried regardless).
func (b *Bus) RaiseReplicas(ctx context.Context, logger *slog.Logger) error {
	want := b.Replicas()
	if want <= 1 {
		return nil
	}
	js := b.raw
	var first error
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		cfg := info.Config
		if cfg.Replicas >= want {
			continue
		}
		from := cfg.Replicas
		cfg.Replicas = want
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			logger.Debug("raising a stream's replicas (tried again later)", "stream", cfg.Name, "from", from, "to", want, "err", err)
			first = errors.Join(first, err)
			continue
		}
		logger.Info("raised a stream's replicas: the cluster has enough servers now", "stream", cfg.Name, "from", from, "to", want)
	}
	if err := lister.Err(); err != nil && ctx.Err() == nil {
		first = errors.Join(first, err)
	}
	return first
}
