// Package storegc keeps Owl's store the size of what is live. A Collector
// runs at start and then periodically (and soon after a failed run): it
// has the registry delete code objects nothing references, the chunks of
// uploads that never completed and old KV delete markers, has the log
// store delete the logs of functions that no longer exist, and measures
// the store. JetStream compacts the block files those deletions leave
// half-empty in the background (natsbus.CompactInterval). Each run logs
// one line with the store's size and what is reclaimable; Stats returns
// the same numbers for metrics.
package storegc

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/owl-project/owl/internal/diskspace"
	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/telemetry"
)

// retryAfter is how soon a failed collection is retried (it doubles up to
// the interval).
const retryAfter = 5 * time.Second

// Stats is the store as the last collection found it.
type Stats struct {
	// At is when the collection ended; zero before the first.
	At time.Time
	// StoreBytes is the disk space of the JetStream store's files.
	StoreBytes int64
	// LiveBytes is the bytes of the messages its streams hold.
	LiveBytes int64
	// ReclaimableBytes is StoreBytes less LiveBytes: deleted messages
	// that compaction has not given back yet, and file overhead.
	ReclaimableBytes int64
	// CodeObjects and CodeBytes are the live code zips.
	CodeObjects int
	CodeBytes   int64
	// FreeBytes is the data dir's free space; ReserveBytes the part of it
	// kept for deletions (writes are refused below it).
	FreeBytes, ReserveBytes int64
	// Collected is what this run removed from the code store.
	Collected registry.CollectReport
	// LogsDeleted counts deleted functions whose logs this run removed.
	LogsDeleted int
	// DroppedLogBytes counts log bytes not stored for lack of disk space
	// since start.
	DroppedLogBytes int64
	// StreamWriteErrors lists streams JetStream stopped writing to after a
	// failed write (natsbus.Bus.WriteErrors); they need a restart.
	StreamWriteErrors []string
	// Runs counts collections since start; Err is the last one's error.
	Runs int
	Err  error
}

// Collector runs collections; see the package comment.
type Collector struct {
	reg      *registry.Registry
	logs     *telemetry.LogStore
	bus      *natsbus.Bus
	space    *diskspace.Guard
	interval time.Duration
	logger   *slog.Logger

	runMu sync.Mutex // one collection at a time
	mu    sync.Mutex // guards last
	last  Stats

	started atomic.Bool
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

// New returns a collector that runs every interval once started.
func New(reg *registry.Registry, logs *telemetry.LogStore, bus *natsbus.Bus, space *diskspace.Guard, interval time.Duration, logger *slog.Logger) *Collector {
	return &Collector{
		reg: reg, logs: logs, bus: bus, space: space, interval: interval, logger: logger,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Start runs a collection now and then every interval, until Close.
func (c *Collector) Start() {
	if c.started.CompareAndSwap(false, true) {
		go c.loop()
	}
}

// Kick asks for a collection soon (after a deletion, say).
func (c *Collector) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Close stops the collector, waiting for a run in progress.
func (c *Collector) Close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	if c.started.Load() {
		<-c.done
	}
}

func (c *Collector) loop() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.stop
		cancel()
	}()
	wait := time.Duration(0)
	backoff := retryAfter
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		case <-time.After(wait):
		}
		if _, err := c.Collect(ctx); err != nil && ctx.Err() == nil {
			wait = min(backoff, c.interval)
			backoff *= 2
			continue
		}
		wait, backoff = c.interval, retryAfter
	}
}

// Collect runs one collection now and logs what it found.
func (c *Collector) Collect(ctx context.Context) (Stats, error) {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	var st Stats
	var errs []error
	rep, err := c.reg.Collect(ctx)
	st.Collected = rep
	st.CodeObjects, st.CodeBytes = rep.Objects, rep.ObjectBytes
	if err != nil {
		errs = append(errs, err)
	}
	n, err := c.logs.PurgeExcept(ctx, c.reg.FunctionNames)
	st.LogsDeleted = n
	if err != nil {
		errs = append(errs, err)
	}
	u, err := c.bus.Usage(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	st.StoreBytes, st.LiveBytes, st.ReclaimableBytes = u.StoreBytes, u.LiveBytes, u.ReclaimableBytes
	st.ReserveBytes = c.space.Reserve()
	if free, err := c.space.Free(); err == nil {
		st.FreeBytes = free
	} else {
		errs = append(errs, err)
	}
	st.DroppedLogBytes = c.logs.DroppedBytes()
	if st.StreamWriteErrors = c.bus.WriteErrors(); len(st.StreamWriteErrors) > 0 {
		c.logger.Error("the store stopped writing to a stream after a failed write (the disk filled from under the reserve); free disk space, then restart owl serve",
			"streams", strings.Join(st.StreamWriteErrors, "; "))
	}
	st.Err = errors.Join(errs...)
	st.At = time.Now()

	c.mu.Lock()
	st.Runs = c.last.Runs + 1
	c.last = st
	c.mu.Unlock()

	attrs := []any{
		"store_bytes", st.StoreBytes, "live_bytes", st.LiveBytes, "reclaimable_bytes", st.ReclaimableBytes,
		"code_objects", st.CodeObjects, "code_bytes", st.CodeBytes,
		"deleted_objects", rep.DeletedObjects, "deleted_bytes", rep.DeletedBytes,
		"orphan_chunks", rep.OrphanChunks, "deleted_metas", rep.DeletedMetas, "logs_deleted", st.LogsDeleted,
		"free_bytes", st.FreeBytes, "reserve_bytes", st.ReserveBytes, "took", time.Since(start).Round(time.Millisecond),
	}
	if st.Err != nil {
		if ctx.Err() == nil {
			c.logger.Warn("store collection incomplete; retrying soon", append(attrs, "err", st.Err)...)
		}
		return st, st.Err
	}
	c.logger.Info("store collected", attrs...)
	return st, nil
}

// Stats returns what the last collection found (the zero Stats before the
// first): the store's size, what of it is live and what is reclaimable.
func (c *Collector) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
