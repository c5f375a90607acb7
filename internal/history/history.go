// Package history owns Owl's metric history: what each function's
// invocations did (invocations, errors, throttles, cold starts, a
// duration histogram and the summed durations), gathered in memory and
// written every interval (10 s) as one sample per active function into
// the JetStream stream OWL_HISTORY, bounded by age (7 days) and bytes;
// and the queries that sum those samples into series over a range, for
// GET /owl/v1/metrics/history and the console's charts.
//
// Each node writes under its own subjects, owl.history.<node>.<function>,
// and a reader sums every node's samples (owl.history.*.<function>), so
// nodes sharing the stream add up without coordinating. A quiet function
// writes nothing; a crash loses at most the interval not yet written.
package history

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	// Stream is the JetStream stream the samples are kept in.
	Stream        = "OWL_HISTORY"
	subjectPrefix = "owl.history."
	// Buckets is the number of duration buckets: bucket i counts the
	// durations up to 2^i ms (1 ms to about 17 min), the last one the
	// longer ones.
	Buckets = 21
)

// Options configure a Recorder.
type Options struct {
	// Node names this node's subjects (letters, digits, '-' and '_';
	// other characters become '_'; empty: "local").
	Node string
	// Interval is how often samples are written (default 10 s).
	Interval time.Duration
	// MaxAge and MaxBytes bound the stream: older samples go, and past
	// the bytes the oldest go first.
	MaxAge   time.Duration
	MaxBytes int64
	// SpaceCheck, when set, is asked before each write (the disk guard's
	// Check): while it fails, samples are dropped and counted instead.
	SpaceCheck func(need int64) error
	Logger     *slog.Logger
}

// Observation is one invocation, as the worker saw it end.
type Observation struct {
	Function string
	// Throttled: refused without running. Failed: a function error, a
	// timeout or an init failure.
	Throttled, Failed bool
	// Duration is how long the handler ran; Cold says it started an
	// environment.
	Duration time.Duration
	Cold     bool
}

// sample is one function's interval as stored: short names, since a
// busy function writes one every interval for days.
type sample struct {
	Start       int64      `json:"t"` // the interval's start, Unix ms
	Length      int64      `json:"d"` // its length, ms
	Invocations int64      `json:"n,omitempty"`
	Errors      int64      `json:"e,omitempty"`
	Throttles   int64      `json:"th,omitempty"`
	Cold        int64      `json:"c,omitempty"`
	DurationMs  float64    `json:"s,omitempty"` // the summed durations
	Buckets     [][2]int64 `json:"b,omitempty"` // [bucket, count], the non-empty ones
}

// counts is a function's interval being gathered.
type counts struct {
	invocations, errors, throttles, cold int64
	durationMs                           float64
	buckets                              [Buckets]int64
}

// Recorder gathers observations and writes them as samples.
type Recorder struct {
	js       jetstream.JetStream
	stream   jetstream.Stream
	node     string
	interval time.Duration
	opts     Options
	log      *slog.Logger
	dropped  atomic.Int64

	mu      sync.Mutex
	pending map[string]*counts
	since   time.Time // the start of the interval being gathered

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

var notToken = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// Open creates or updates the stream and starts writing a sample every
// interval; Close writes the last one and stops.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Recorder, error) {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	node := notToken.ReplaceAllString(opts.Node, "_")
	if node == "" {
		node = "local"
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        Stream,
		Description: "Owl's metric history: per-function samples, one per node and interval",
		Subjects:    []string{subjectPrefix + ">"},
		MaxAge:      opts.MaxAge,
		MaxBytes:    opts.MaxBytes,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", Stream, err)
	}
	r := &Recorder{js: js, stream: stream, node: node, interval: opts.Interval, opts: opts, log: opts.Logger,
		pending: map[string]*counts{}, since: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r, nil
}

// Interval is how often samples are written: the finest step a query
// may ask for.
func (r *Recorder) Interval() time.Duration { return r.interval }

// Dropped is how many samples were not written (no disk space, or the
// store refused them).
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

// Observe adds one invocation to the interval being gathered.
func (r *Recorder) Observe(o Observation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.pending[o.Function]
	if c == nil {
		c = &counts{}
		r.pending[o.Function] = c
	}
	c.invocations++
	if o.Throttled {
		c.throttles++
		return // it never ran: no duration, no cold start
	}
	if o.Failed {
		c.errors++
	}
	if o.Cold {
		c.cold++
	}
	ms := float64(o.Duration) / float64(time.Millisecond)
	c.durationMs += ms
	c.buckets[bucketOf(ms)]++
}

// bucketOf is the bucket of a duration in ms: the first whose bound 2^i
// ms holds it.
func bucketOf(ms float64) int {
	if ms <= 1 {
		return 0
	}
	return min(int(math.Ceil(math.Log2(ms))), Buckets-1)
}

// bucketBound is bucket i's upper bound in ms (the last is unbounded).
func bucketBound(i int) float64 { return math.Ldexp(1, i) }

func (r *Recorder) loop() {
	defer close(r.done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.Sample(ctx)
			cancel()
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), r.interval)
			r.Sample(ctx)
			cancel()
		}
	}
}

// Sample ends the interval being gathered and writes a sample for each
// function that had an invocation in it. Samples that cannot be written
// are dropped and counted (Dropped): history is not worth blocking
// invocations or filling the disk for.
func (r *Recorder) Sample(ctx context.Context) {
	now := time.Now()
	r.mu.Lock()
	batch, start := r.pending, r.since
	r.pending, r.since = map[string]*counts{}, now
	r.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	for fn, c := range batch {
		data, _ := json.Marshal(c.sample(start, now))
		if r.opts.SpaceCheck != nil {
			if err := r.opts.SpaceCheck(int64(len(data))); err != nil {
				r.drop(fmt.Errorf("checking disk space: %w", err))
				continue
			}
		}
		f, err := r.js.PublishAsync(subjectPrefix+r.node+"."+fn, data)
		if err != nil {
			r.drop(err)
			continue
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			r.drop(err)
		case <-ctx.Done():
			r.drop(ctx.Err())
		}
	}
}

func (r *Recorder) drop(err error) {
	if r.dropped.Add(1) == 1 || r.dropped.Load()%1000 == 0 {
		r.log.Warn("metric history sample not written", "dropped", r.dropped.Load(), "err", err)
	}
}

func (c *counts) sample(start, end time.Time) sample {
	s := sample{Start: start.UnixMilli(), Length: end.Sub(start).Milliseconds(), Invocations: c.invocations,
		Errors: c.errors, Throttles: c.throttles, Cold: c.cold, DurationMs: math.Round(c.durationMs*1000) / 1000}
	for i, n := range c.buckets {
		if n > 0 {
			s.Buckets = append(s.Buckets, [2]int64{int64(i), n})
		}
	}
	return s
}

// Forget deletes a deleted function's samples, every node's.
func (r *Recorder) Forget(ctx context.Context, function string) error {
	err := r.stream.Purge(ctx, jetstream.WithPurgeSubject(subjectPrefix+"*."+function))
	if err != nil {
		return fmt.Errorf("purging the metric history of %s: %w", function, err)
	}
	return nil
}

// Close writes the last interval's samples and stops.
func (r *Recorder) Close() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
}
