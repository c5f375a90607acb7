package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The log trims itself past these eighths of its MaxBytes, down to these.
const (
	trimAbove = 6
	trimTo    = 5
)

// trimInterval is how often delivery trims the log (a full log is trimmed
// at once too, before an event is refused).
const trimInterval = time.Second

// trim purges the log's oldest records that delivery is done with (up to
// its cursor's acknowledgement floor: each delivered, given up, or from
// before the log was the queue) when they are older than the log's
// MaxAge, or, while the log holds more than trimAbove eighths of its
// MaxBytes, as many more of the oldest as bring it to trimTo eighths. It
// never purges past the floor: an event not yet delivered stays, and a
// log full of them refuses new events instead.
func (q *Queue) trim(ctx context.Context) error {
	q.trimming.Lock()
	defer q.trimming.Unlock()
	return q.trimLocked(ctx)
}

// trimRefused is trim for a store the full log refused: the events
// refused at once share one trim (a trim done within refusedTrimGap is
// recent enough), so a flood of refusals is not a flood of trims.
func (q *Queue) trimRefused(ctx context.Context) error {
	q.trimming.Lock()
	defer q.trimming.Unlock()
	if time.Since(q.trimmedAt) < refusedTrimGap {
		return nil
	}
	return q.trimLocked(ctx)
}

// refusedTrimGap is how recent a trim spares the next refused store one.
const refusedTrimGap = 100 * time.Millisecond

func (q *Queue) trimLocked(ctx context.Context) error {
	defer func() { q.trimmedAt = time.Now() }()
	info, err := q.log.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading the event log: %w", err)
	}
	st := info.State
	if st.Msgs == 0 {
		return nil
	}
	ci, err := q.cursor.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading the event log's delivery cursor: %w", err)
	}
	floor := ci.AckFloor.Stream
	if floor < st.FirstSeq {
		return nil
	}
	keep := st.FirstSeq // the first record kept
	if maxAge := q.opts.Log.MaxAge; maxAge > 0 && time.Since(st.FirstTime) > maxAge {
		if keep, err = q.firstSince(ctx, time.Now().Add(-maxAge), st.LastSeq); err != nil {
			return err
		}
	}
	if limit := uint64(max(q.opts.Log.MaxBytes, 0)); limit > 0 && st.Bytes > limit*trimAbove/8 {
		over := st.Bytes - limit*trimTo/8
		keep = max(keep, st.FirstSeq+st.Msgs*over/st.Bytes) // records of the average size
	}
	keep = min(keep, floor+1)
	if keep <= st.FirstSeq {
		return nil
	}
	if err := q.log.Purge(ctx, jetstream.WithPurgeSequence(keep)); err != nil {
		return fmt.Errorf("trimming the event log below record %d: %w", keep, err)
	}
	return nil
}

// firstSince is the position of the log's first record stored at or after
// t, or last+1 when none is.
func (q *Queue) firstSince(ctx context.Context, t time.Time, last uint64) (uint64, error) {
	cons, err := q.log.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t})
	if err != nil {
		return 0, fmt.Errorf("reading the event log: %w", err)
	}
	defer q.deleteConsumer(q.log, cons)
	batch, err := cons.FetchNoWait(1)
	if err != nil {
		return 0, fmt.Errorf("reading the event log: %w", err)
	}
	if m, ok := <-batch.Messages(); ok { // at most the one asked for
		meta, err := m.Metadata()
		if err != nil {
			return 0, fmt.Errorf("reading the event log: %w", err)
		}
		return meta.Sequence.Stream, nil
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return 0, fmt.Errorf("reading the event log: %w", err)
	}
	return last + 1, nil
}

// trimLoop trims the log every trimInterval until ctx ends.
func (q *Queue) trimLoop(ctx context.Context) {
	tick := time.NewTicker(trimInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := q.trim(ctx); err != nil && ctx.Err() == nil {
				q.opts.Logger.Warn("trimming the event log", "err", err)
			}
		}
	}
}
