// Package history owns Owl's metric history: what each function's
// invocations did (invocations, errors, throttles, cold starts, a
// duration histogram and the summed durations), gathered in memory and
// written every interval (10 s) as one sample per active function, and
// one of all of them together, into the JetStream stream OWL_HISTORY
// (kept a day); each 5 minutes' samples are also summed into rollups in
// OWL_HISTORY_ROLLUP (kept 7 days), which charts of long ranges read: a
// week of a busy function is 2016 rollups instead of 60480 samples.
// Both streams are bounded by age and bytes. Queries sum samples or
// rollups into series over a range, for GET /owl/v1/metrics/history and
// the console's charts.
//
// Each node writes under its own subjects, owl.history.fn.<node>.<function>
// and owl.history.all.<node> (owl.rollup.… for rollups), and a reader
// sums every node's (owl.history.fn.*.<function>), so nodes sharing the
// streams add up without coordinating. A quiet function writes nothing.
// A crash loses the interval not yet written, and from the rollups the
// open 5 minutes; a shutdown writes both.
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
	// Stream keeps the samples of every interval; RollupStream their sums
	// over each RollupPeriod of the clock.
	Stream       = "OWL_HISTORY"
	RollupStream = "OWL_HISTORY_ROLLUP"
	// RollupPeriod is what a rollup sums: the samples that started in
	// one 5 minutes of the clock.
	RollupPeriod = 5 * time.Minute
	// SampleAge is how long samples are kept (less when Options.MaxAge
	// is shorter); older ranges are charted from rollups.
	SampleAge = 25 * time.Hour
	// Buckets is the number of duration buckets: bucket i counts the
	// durations up to 2^i ms (1 ms to about 17 min), the last one the
	// longer ones.
	Buckets = 21

	samplePrefix = "owl.history."
	rollupPrefix = "owl.rollup."
	// total is the key of the sum of every function in the rollup being
	// gathered (function names are never empty).
	total = ""
)

// Options configure a Recorder.
type Options struct {
	// Node names this node's subjects (letters, digits, '-' and '_';
	// other characters become '_'; empty: "local").
	Node string
	// Interval is how often samples are written (default 10 s).
	Interval time.Duration
	// MaxAge and MaxBytes bound the history: rollups are kept MaxAge,
	// samples at most SampleAge; the samples may take three quarters of
	// MaxBytes, the rollups a quarter, past which the oldest go first.
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
	// timeout or an init failure; InitFailed: the init failed, so the
	// handler never ran (an error with no duration).
	Throttled, Failed, InitFailed bool
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

// Recorder gathers observations and writes them as samples and
// rollups.
type Recorder struct {
	js       jetstream.JetStream
	samples  jetstream.Stream
	rollups  jetstream.Stream // nil when the interval is no shorter than RollupPeriod
	node     string
	interval time.Duration
	opts     Options
	log      *slog.Logger
	dropped  atomic.Int64
	now      func() time.Time // time.Now; a test's clock

	mu      sync.Mutex
	pending map[string]*counts
	since   time.Time // the start of the interval being gathered

	// The rollup being gathered, by Sample only (one at a time).
	sampleMu sync.Mutex
	bucket   time.Time
	rolled   map[string]*counts // by function, and total

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

var notToken = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// Open creates or updates the streams and starts writing samples every
// interval; Close writes the last ones and stops.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Recorder, error) {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 7 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	node := notToken.ReplaceAllString(opts.Node, "_")
	if node == "" {
		node = "local"
	}
	r := &Recorder{js: js, node: node, interval: opts.Interval, opts: opts, log: opts.Logger, now: time.Now,
		pending: map[string]*counts{}, since: time.Now(), rolled: map[string]*counts{},
		stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	if r.samples, err = openStream(ctx, js, Stream, samplePrefix, "samples, one per node, function and interval",
		min(opts.MaxAge, SampleAge), opts.MaxBytes/4*3); err != nil {
		return nil, err
	}
	if opts.Interval < RollupPeriod {
		if r.rollups, err = openStream(ctx, js, RollupStream, rollupPrefix, "the samples summed per 5 minutes",
			opts.MaxAge, opts.MaxBytes/4); err != nil {
			return nil, err
		}
	}
	go r.loop()
	return r, nil
}

func openStream(ctx context.Context, js jetstream.JetStream, name, prefix, what string, age time.Duration, bytes int64) (jetstream.Stream, error) {
	if bytes <= 0 {
		bytes = -1 // unbounded
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: name, Description: "Owl's metric history: " + what, Subjects: []string{prefix + ">"},
		MaxAge: age, MaxBytes: bytes, Discard: jetstream.DiscardOld, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", name, err)
	}
	return s, nil
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
	if o.Failed || o.InitFailed {
		c.errors++
	}
	if o.InitFailed {
		return // no handler ran: no duration, no cold start that served
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
			return // Close writes the last samples
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), r.interval)
			r.Sample(ctx)
			cancel()
		}
	}
}

// message is a sample or rollup to write.
type message struct {
	subject string
	data    []byte
}

// Sample ends the interval being gathered and writes a sample for each
// function that had an invocation in it, and one of them all; once the
// clock has passed the end of the rollup being gathered, it writes that
// too. What cannot be written is dropped and counted (Dropped): history
// is not worth blocking invocations or filling the disk for.
func (r *Recorder) Sample(ctx context.Context) {
	r.sampleMu.Lock()
	defer r.sampleMu.Unlock()
	r.mu.Lock()
	now := r.now()
	batch, start := r.pending, r.since
	r.pending, r.since = map[string]*counts{}, now
	r.mu.Unlock()
	var out []message
	if len(batch) > 0 {
		sum := &counts{}
		for fn, c := range batch {
			sum.add(c)
			out = append(out, message{samplePrefix + "fn." + r.node + "." + fn, c.encode(start, now.Sub(start))})
		}
		out = append(out, message{samplePrefix + "all." + r.node, sum.encode(start, now.Sub(start))})
		if r.rollups != nil {
			// A sample belongs to the rollup of its start.
			if b := start.Truncate(RollupPeriod); !b.Equal(r.bucket) {
				out = append(out, r.rollup()...)
				r.bucket = b
			}
			batch[total] = sum
			for fn, c := range batch {
				if r.rolled[fn] == nil {
					r.rolled[fn] = &counts{}
				}
				r.rolled[fn].add(c)
			}
		}
	}
	if !now.Before(r.bucket.Add(RollupPeriod)) {
		out = append(out, r.rollup()...) // no later sample can start in it
	}
	r.publish(ctx, out)
}

// rollup is the rollup gathered so far, as messages, and starts afresh.
func (r *Recorder) rollup() []message {
	var out []message
	for fn, c := range r.rolled {
		subject := rollupPrefix + "fn." + r.node + "." + fn
		if fn == total {
			subject = rollupPrefix + "all." + r.node
		}
		out = append(out, message{subject, c.encode(r.bucket, RollupPeriod)})
	}
	r.rolled = map[string]*counts{}
	return out
}

// publish writes out, waiting for the store's acknowledgements.
func (r *Recorder) publish(ctx context.Context, out []message) {
	futures := make([]jetstream.PubAckFuture, 0, len(out))
	for _, m := range out {
		if r.opts.SpaceCheck != nil {
			if err := r.opts.SpaceCheck(int64(len(m.data))); err != nil {
				r.drop(fmt.Errorf("checking disk space: %w", err))
				continue
			}
		}
		f, err := r.js.PublishAsync(m.subject, m.data)
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

// encode is c as a stored sample of the time from start.
func (c *counts) encode(start time.Time, length time.Duration) []byte {
	s := sample{Start: start.UnixMilli(), Length: length.Milliseconds(), Invocations: c.invocations,
		Errors: c.errors, Throttles: c.throttles, Cold: c.cold, DurationMs: math.Round(c.durationMs*1000) / 1000}
	for i, n := range c.buckets {
		if n > 0 {
			s.Buckets = append(s.Buckets, [2]int64{int64(i), n})
		}
	}
	data, _ := json.Marshal(s)
	return data
}

func (c *counts) add(o *counts) {
	c.invocations += o.invocations
	c.errors += o.errors
	c.throttles += o.throttles
	c.cold += o.cold
	c.durationMs += o.durationMs
	for i, n := range o.buckets {
		c.buckets[i] += n
	}
}

// Forget deletes a deleted function's samples and rollups, every
// node's, and this node's not yet written, so a new function of the
// same name starts with none. The sums of all functions keep what it
// did.
func (r *Recorder) Forget(ctx context.Context, function string) error {
	r.mu.Lock()
	delete(r.pending, function)
	r.mu.Unlock()
	r.sampleMu.Lock()
	delete(r.rolled, function)
	r.sampleMu.Unlock()
	if err := r.samples.Purge(ctx, jetstream.WithPurgeSubject(samplePrefix+"fn.*."+function)); err != nil {
		return fmt.Errorf("purging the metric history of %s: %w", function, err)
	}
	if r.rollups == nil {
		return nil
	}
	if err := r.rollups.Purge(ctx, jetstream.WithPurgeSubject(rollupPrefix+"fn.*."+function)); err != nil {
		return fmt.Errorf("purging the metric history rollups of %s: %w", function, err)
	}
	return nil
}

// Close writes the last interval's samples and the rollup being
// gathered (a node started again within the same 5 minutes writes
// another rollup of them; readers sum both), and stops.
func (r *Recorder) Close() {
	r.once.Do(func() {
		close(r.stop)
		<-r.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Sample(ctx)
		r.sampleMu.Lock()
		defer r.sampleMu.Unlock()
		r.publish(ctx, r.rollup())
	})
}
