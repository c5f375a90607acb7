// Package usage keeps what every invocation is billed — its duration and
// its init, rounded up to the millisecond as Lambda bills since
// 2025-08-01, times its memory — summed per function and hour in the
// JetStream KV bucket OWL_USAGE, and answers usage queries over a time
// range. Idle and frozen time is never counted: only invocations are.
package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdawire"
)

const (
	bucket = "OWL_USAGE"
	// flushEvery is how often the sums reach the store: a crash loses at
	// most this much of usage.
	flushEvery = 10 * time.Second
	// Retention is how long hourly sums are kept.
	Retention = 400 * 24 * time.Hour
)

// Totals are sums of invocations.
type Totals struct {
	Invocations int64 `json:"invocations"`
	Errors      int64 `json:"errors"`
	// BilledMs is the billed milliseconds; MBMs the billed milliseconds
	// times the memory in MB (GB-seconds: MBMs / 1024 / 1000).
	BilledMs int64 `json:"billed_ms"`
	MBMs     int64 `json:"mb_ms"`
}

// GBSeconds is t's compute in GB-seconds.
func (t Totals) GBSeconds() float64 { return float64(t.MBMs) / 1024 / 1000 }

func (t *Totals) add(o Totals) {
	t.Invocations += o.Invocations
	t.Errors += o.Errors
	t.BilledMs += o.BilledMs
	t.MBMs += o.MBMs
}

// Recorder sums usage in memory and flushes it to the store.
type Recorder struct {
	kv  jetstream.KeyValue
	log *slog.Logger

	mu      sync.Mutex
	pending map[string]Totals // key: function and hour

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Open opens the usage bucket and starts flushing; Close flushes the rest.
func Open(ctx context.Context, js jetstream.JetStream, logger *slog.Logger) (*Recorder, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "Owl's billed usage: sums per function and hour", History: 1, TTL: Retention,
	})
	if err != nil {
		return nil, fmt.Errorf("opening KV bucket %s: %w", bucket, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{kv: kv, log: logger, pending: map[string]Totals{}, stop: make(chan struct{}), done: make(chan struct{})}
	go r.flusher()
	return r, nil
}

// Record adds one invocation of function with memoryMB that ran (billed
// ms) at time at; failed says it ended in an error.
func (r *Recorder) Record(function string, memoryMB int, billedMs int64, failed bool, at time.Time) {
	k := key(function, at)
	t := Totals{Invocations: 1, BilledMs: billedMs, MBMs: billedMs * int64(memoryMB)}
	if failed {
		t.Errors = 1
	}
	r.mu.Lock()
	cur := r.pending[k]
	cur.add(t)
	r.pending[k] = cur
	r.mu.Unlock()
}

// key is function's hour of at: u.<function>.<unix hour>.
func key(function string, at time.Time) string {
	return "u." + function + "." + strconv.FormatInt(at.Unix()/3600, 10)
}

func (r *Recorder) flusher() {
	defer close(r.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			r.Flush(context.Background())
			return
		case <-t.C:
			r.Flush(context.Background())
		}
	}
}

// Flush adds the sums gathered so far to the store.
func (r *Recorder) Flush(ctx context.Context) {
	r.mu.Lock()
	batch := r.pending
	r.pending = map[string]Totals{}
	r.mu.Unlock()
	for k, t := range batch {
		if err := r.addStored(ctx, k, t); err != nil {
			r.log.Warn("storing usage", "key", k, "err", err)
			r.mu.Lock() // try again at the next flush
			cur := r.pending[k]
			cur.add(t)
			r.pending[k] = cur
			r.mu.Unlock()
		}
	}
}

// addStored adds t to the sums at k with a compare-and-set (another node
// may add to the same hour).
func (r *Recorder) addStored(ctx context.Context, k string, t Totals) error {
	for try := 0; try < 10; try++ {
		var cur Totals
		var rev uint64
		e, err := r.kv.Get(ctx, k)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &cur); err != nil {
				return fmt.Errorf("decoding %s: %w", k, err)
			}
		}
		cur.add(t)
		data, _ := json.Marshal(cur)
		if rev == 0 {
			_, err = r.kv.Create(ctx, k, data)
		} else {
			_, err = r.kv.Update(ctx, k, data, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !strings.Contains(err.Error(), "wrong last sequence") {
			return err
		}
	}
	return fmt.Errorf("%s changed under every try", k)
}

// Close flushes what is left and stops.
func (r *Recorder) Close() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
}

// Query sums usage from since to until (hours that start in the range),
// of function ("": every function), by "hour", "day" or "" (the range).
func (r *Recorder) Query(ctx context.Context, since, until time.Time, function, by string) ([]lambdawire.UsageRow, error) {
	r.Flush(ctx)
	filter := "u.>"
	if function != "" {
		filter = "u." + function + ".*"
	}
	keys, err := r.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("listing usage: %w", err)
	}
	sums := map[[2]string]Totals{}
	for k := range keys.Keys() {
		fn, hour, ok := parseKey(k)
		if !ok || (!since.IsZero() && hour.Before(since.Truncate(time.Hour))) || (!until.IsZero() && hour.After(until)) {
			continue
		}
		e, err := r.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading usage %s: %w", k, err)
		}
		var t Totals
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			return nil, fmt.Errorf("decoding usage %s: %w", k, err)
		}
		period := ""
		switch by {
		case "hour":
			period = hour.UTC().Format(time.RFC3339)
		case "day":
			period = hour.UTC().Truncate(24 * time.Hour).Format(time.RFC3339)
		}
		s := sums[[2]string{fn, period}]
		s.add(t)
		sums[[2]string{fn, period}] = s
	}
	rows := make([]lambdawire.UsageRow, 0, len(sums))
	for k, t := range sums {
		rows = append(rows, lambdawire.UsageRow{Function: k[0], Period: k[1], Invocations: t.Invocations, Errors: t.Errors,
			BilledMs: t.BilledMs, MBMs: t.MBMs, GBSeconds: t.GBSeconds()})
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Period != rows[j].Period {
			return rows[i].Period < rows[j].Period
		}
		return rows[i].Function < rows[j].Function
	})
	return rows, nil
}

func parseKey(k string) (function string, hour time.Time, ok bool) {
	parts := strings.Split(k, ".")
	if len(parts) != 3 || parts[0] != "u" {
		return "", time.Time{}, false
	}
	h, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return parts[1], time.Unix(h*3600, 0).UTC(), true
}
