package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdawire"
)

// MaxPoints is the most points one query answers (a week by 10 minutes
// is 1008; a day by minute 1440).
const MaxPoints = 2000

// FinestStep is the finest step a query of a range from since may ask
// for: the sampling interval while since is within the samples' age,
// else RollupPeriod (the rollups are all that is kept of older times).
func (r *Recorder) FinestStep(since time.Time) time.Duration {
	if r.rollups != nil && r.clock().Sub(since) > min(r.opts.MaxAge, SampleAge) {
		return RollupPeriod
	}
	return r.interval
}

// Rollup is the period of the rollups queries of steps as long or longer
// read (0: none are kept, the interval being as long).
func (r *Recorder) Rollup() time.Duration {
	if r.rollups == nil {
		return 0
	}
	return RollupPeriod
}

// Query sums the history of function ("": every function) from since
// (rounded down to a whole step) to until into one point per step, by
// the time each sample or rollup starts: a step of RollupPeriod or more
// reads the rollups, but for the last minutes, which it reads from the
// samples. The caller checks the range: step positive, until after
// since, at most MaxPoints steps.
func (r *Recorder) Query(ctx context.Context, function string, since, until time.Time, step time.Duration) (lambdawire.HistoryReport, error) {
	if step <= 0 {
		return lambdawire.HistoryReport{}, fmt.Errorf("a query by step %v: want a positive step", step)
	}
	start := since.Truncate(step)
	n := int((until.Sub(start) + step - 1) / step)
	if n <= 0 || n > MaxPoints {
		return lambdawire.HistoryReport{}, fmt.Errorf("a query of %d points of %v: want 1 to %d", n, step, MaxPoints)
	}
	acc := make([]counts, n)
	into := func(from, to time.Time) func(sample) {
		return func(s sample) {
			if at := time.UnixMilli(s.Start); !at.Before(from) && at.Before(to) {
				s.addTo(&acc[int(at.Sub(start)/step)])
			}
		}
	}
	kind := "all.*"
	if function != "" {
		kind = "fn.*." + function
	}
	resolution, cutoff := r.interval, start // samples from cutoff on, rollups before
	if r.rollups != nil && step >= RollupPeriod {
		resolution = RollupPeriod
		// A rollup is written within an interval of its end.
		if c := r.clock().Add(-2*r.interval - 30*time.Second).Truncate(RollupPeriod); c.After(start) {
			cutoff = c
			if until.Before(c) {
				cutoff = until
			}
			if err := r.read(ctx, r.rollups, rollupPrefix+kind, start, into(start, cutoff)); err != nil {
				return lambdawire.HistoryReport{}, err
			}
		}
	}
	if cutoff.Before(until) {
		if err := r.read(ctx, r.samples, samplePrefix+kind, cutoff, into(cutoff, until)); err != nil {
			return lambdawire.HistoryReport{}, err
		}
	}
	rep := lambdawire.HistoryReport{Function: function, Start: start.UTC().Format(time.RFC3339),
		StepSeconds: int64(step / time.Second), IntervalSeconds: int64(resolution / time.Second),
		Points: make([]lambdawire.HistoryPoint, n)}
	for i := range acc {
		rep.Points[i] = acc[i].point(start.Add(time.Duration(i)*step), step)
	}
	return rep, nil
}

// addTo adds s's counts to c (bucket numbers out of range are ignored).
func (s sample) addTo(c *counts) {
	d := counts{invocations: s.Invocations, errors: s.Errors, throttles: s.Throttles, cold: s.Cold, durationMs: s.DurationMs}
	for _, b := range s.Buckets {
		if b[0] >= 0 && b[0] < Buckets {
			d.buckets[b[0]] += b[1]
		}
	}
	c.add(&d)
}

func (c *counts) point(at time.Time, step time.Duration) lambdawire.HistoryPoint {
	return lambdawire.HistoryPoint{Time: at.UTC().Format(time.RFC3339), Invocations: c.invocations, Errors: c.errors,
		Throttles: c.throttles, ColdStarts: c.cold, DurationP50Ms: c.quantile(0.5), DurationP99Ms: c.quantile(0.99),
		Concurrency: c.durationMs / float64(step/time.Millisecond)}
}

// quantile interpolates q (0..1) within the buckets, as Prometheus'
// histogram_quantile does (linearly within a bucket; the unbounded last
// one answers its lower bound); nil without a duration.
func (c *counts) quantile(q float64) *float64 {
	var total int64
	for _, n := range c.buckets {
		total += n
	}
	if total == 0 {
		return nil
	}
	want := q * float64(total)
	var seen int64
	for i, n := range c.buckets {
		if n == 0 || float64(seen+n) < want {
			seen += n
			continue
		}
		lo := 0.0
		if i > 0 {
			lo = bucketBound(i - 1)
		}
		v := lo
		if i < Buckets-1 {
			v = lo + (bucketBound(i)-lo)*(want-float64(seen))/float64(n)
		}
		v = math.Round(v*1000) / 1000
		return &v
	}
	return nil
}

// read hands fn every sample on subject of stream written from start
// on, through an ordered consumer deleted when the read ends.
func (r *Recorder) read(ctx context.Context, stream jetstream.Stream, subject string, start time.Time, fn func(sample)) error {
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading the metric history: %w", err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject},
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start})
	if err != nil {
		return fmt.Errorf("reading the metric history: %w", err)
	}
	defer r.deleteConsumer(stream, cons)
	for {
		batch, err := cons.FetchNoWait(1024)
		if err != nil {
			return fmt.Errorf("reading the metric history: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("reading the metric history: %w", err)
			}
			if meta.Sequence.Stream > last {
				return nil // written after the read began
			}
			var s sample
			if err := json.Unmarshal(m.Data(), &s); err != nil {
				r.log.Warn("skipping an unreadable metric history sample", "subject", m.Subject(), "err", err)
			} else {
				fn(s)
			}
			if meta.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("reading the metric history: %w", err)
		}
		if got == 0 {
			return nil // nothing from start on
		}
	}
}

// deleteConsumer deletes a read's consumer, so clients polling charts
// cannot pile consumers up to JetStream's limit.
func (r *Recorder) deleteConsumer(stream jetstream.Stream, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := stream.DeleteConsumer(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		r.log.Debug("deleting a metric history reader", "consumer", info.Name, "err", err)
	}
}

// clock is the recorder's time.
func (r *Recorder) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now()
}
