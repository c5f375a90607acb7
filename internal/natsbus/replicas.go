package natsbus

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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

// createAsset creates an asset with mk at the replicas a new one gets.
func createAsset[T any](ctx context.Context, r replicated, mk func(ctx context.Context, replicas int) (T, error)) (T, error) {
	return settle(ctx, func(ctx context.Context) (T, error) {
		return create(r.b.Replicas(), func(n int) (T, error) { return mk(ctx, n) })
	})
}

// createOrUpdateAsset runs mk on the asset whose stream is stream: at its
// replicas if it exists, else at those a new one gets.
func createOrUpdateAsset[T any](ctx context.Context, r replicated, stream string, mk func(ctx context.Context, replicas int) (T, error)) (T, error) {
	return settle(ctx, func(ctx context.Context) (T, error) {
		existing, want := r.replicas(ctx, stream)
		if existing > 0 {
			return mk(ctx, existing)
		}
		return create(want, func(n int) (T, error) { return mk(ctx, n) })
	})
}

// updateAsset runs mk on the asset whose stream is stream at its replicas.
func updateAsset[T any](ctx context.Context, r replicated, stream string, mk func(ctx context.Context, replicas int) (T, error)) (T, error) {
	return settle(ctx, func(ctx context.Context) (T, error) {
		existing, _ := r.replicas(ctx, stream)
		return mk(ctx, existing)
	})
}

func (r replicated) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return createAsset(ctx, r, func(ctx context.Context, n int) (jetstream.Stream, error) {
		cfg.Replicas = n
		return r.JetStream.CreateStream(ctx, cfg)
	})
}

func (r replicated) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return createOrUpdateAsset(ctx, r, cfg.Name, func(ctx context.Context, n int) (jetstream.Stream, error) {
		cfg.Replicas = n
		return r.JetStream.CreateOrUpdateStream(ctx, cfg)
	})
}

func (r replicated) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return updateAsset(ctx, r, cfg.Name, func(ctx context.Context, n int) (jetstream.Stream, error) {
		cfg.Replicas = n
		return r.JetStream.UpdateStream(ctx, cfg)
	})
}

func (r replicated) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return createAsset(ctx, r, func(ctx context.Context, n int) (jetstream.KeyValue, error) {
		cfg.Replicas = n
		return r.JetStream.CreateKeyValue(ctx, cfg)
	})
}

func (r replicated) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return createOrUpdateAsset(ctx, r, "KV_"+cfg.Bucket, func(ctx context.Context, n int) (jetstream.KeyValue, error) {
		cfg.Replicas = n
		return r.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	})
}

func (r replicated) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return updateAsset(ctx, r, "KV_"+cfg.Bucket, func(ctx context.Context, n int) (jetstream.KeyValue, error) {
		cfg.Replicas = n
		return r.JetStream.UpdateKeyValue(ctx, cfg)
	})
}

func (r replicated) CreateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return createAsset(ctx, r, func(ctx context.Context, n int) (jetstream.ObjectStore, error) {
		cfg.Replicas = n
		return r.JetStream.CreateObjectStore(ctx, cfg)
	})
}

func (r replicated) CreateOrUpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return createOrUpdateAsset(ctx, r, "OBJ_"+cfg.Bucket, func(ctx context.Context, n int) (jetstream.ObjectStore, error) {
		cfg.Replicas = n
		return r.JetStream.CreateOrUpdateObjectStore(ctx, cfg)
	})
}

func (r replicated) UpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return updateAsset(ctx, r, "OBJ_"+cfg.Bucket, func(ctx context.Context, n int) (jetstream.ObjectStore, error) {
		cfg.Replicas = n
		return r.JetStream.UpdateObjectStore(ctx, cfg)
	})
}

// settleTime bounds how long settle retries.
const settleTime = 2 * time.Minute

// settle runs op again while the cluster is settling (a leader being
// elected, an asset being placed, every node creating the same assets at
// start): while it times out or JetStream answers 503, for up to
// settleTime. Other errors, and ctx's end, return at once.
func settle[T any](ctx context.Context, op func(ctx context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(settleTime)
	for {
		// Each try is bounded: a request caught in an election (three
		// nodes creating the same asset at once) is asked again sooner
		// than the 30 s a request may take.
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := op(actx)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) || !transient(err) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// transient reports whether err is a JetStream request that may succeed
// when tried again: a timeout, or 503 (no leader yet).
func transient(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || (errors.As(err, &apiErr) && apiErr.Code == 503)
}

// Publish is JetStream's, asked again while JetStream answers that a
// message with the same id is being stored (in a cluster, two nodes that
// publish the same message at once: a schedule's firing, say): once the
// first is stored, the second is answered as its duplicate.
func (r replicated) Publish(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return untilStored(ctx, func() (*jetstream.PubAck, error) { return r.JetStream.Publish(ctx, subject, data, opts...) })
}

// PublishMsg is Publish's twin for a message with headers.
func (r replicated) PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return untilStored(ctx, func() (*jetstream.PubAck, error) { return r.JetStream.PublishMsg(ctx, msg, opts...) })
}

// untilStored runs publish again, 50 ms apart for up to 5 s, while its
// message id is in process elsewhere.
func untilStored(ctx context.Context, publish func() (*jetstream.PubAck, error)) (*jetstream.PubAck, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ack, err := publish()
		if !InProcess(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return ack, err
		}
		select {
		case <-ctx.Done():
			return ack, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// InProcess reports whether err is JetStream's "duplicate message id is
// in process": a message with the same id is being stored now. Publishing
// it again soon is answered as a duplicate once that one is stored.
func InProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeMsgIDInProcess
}

// jsErrCodeMsgIDInProcess is JetStream's error code for a message id in
// process (nats-server's JSStreamDuplicateMessageConflict).
const jsErrCodeMsgIDInProcess = 10158

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
		if cfg.Replicas >= want || b.srv == nil && !owlAsset(cfg.Name) {
			continue // on an existing NATS, other applications' streams are theirs
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

// owlAsset reports whether stream is one of Owl's own: its streams
// (OWL_…), key-value buckets (KV_OWL_…, KV_owl_…) and object stores
// (OBJ_owl_…).
func owlAsset(stream string) bool {
	for _, p := range []string{"OWL_", "KV_OWL_", "OBJ_OWL_"} {
		if strings.HasPrefix(strings.ToUpper(stream), p) {
			return true
		}
	}
	return false
}
