package telemetry

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Each function's share of the log is bounded too (LimitEach), so a
// function that writes a lot pushes out its own oldest lines, not other
// functions': JetStream bounds a stream's bytes and a subject's message
// count, not a subject's bytes. The publisher counts what it stored per
// function from the store's acknowledgements, in blocks of about a 32nd
// of the bound, and when a function's sum passes the bound it purges that
// function's oldest blocks (the subject's messages below a sequence) until
// the sum is under nine tenths of it. Counting starts with the process:
// the first purge of a function after a restart also takes its lines
// stored before it.

// usageBlock is a run of a function's stored messages: up to lastSeq,
// bytes long.
type usageBlock struct {
	lastSeq uint64
	bytes   int64
}

// functionUsage is what the publisher has stored of one function since
// the process started, oldest block first.
type functionUsage struct {
	blocks []usageBlock
	bytes  int64
}

// pendingAck is a published message whose acknowledgement (its sequence)
// is not yet counted.
type pendingAck struct {
	fn   string
	size int64
	fut  jetstream.PubAckFuture
}

// LimitEach bounds each function's log to max bytes (0: no bound but the
// stream's). Call it before the first Append.
func (l *LogStore) LimitEach(max int64) { l.eachMax.Store(max) }

// PurgedBytes is how many bytes of functions' oldest lines LimitEach's
// bound has purged.
func (l *LogStore) PurgedBytes() int64 { return l.purged.Load() }

// countAcks counts the acknowledged messages per function (only the
// publisher calls it); with wait it waits for every one, else it keeps
// the unanswered ones for the next call. Then it purges what passes the
// bound.
func (l *LogStore) countAcks(wait bool) {
	max := l.eachMax.Load()
	if max <= 0 {
		l.acks = l.acks[:0]
		return
	}
	kept := l.acks[:0]
	over := map[string]bool{}
	// A wait is bounded: a store that stopped answering must not hold a
	// Flush or a shutdown.
	var deadline <-chan time.Time
	if wait {
		t := time.NewTimer(5 * time.Second)
		defer t.Stop()
		deadline = t.C
	}
	for _, a := range l.acks {
		var ack *jetstream.PubAck
		if wait {
			select {
			case ack = <-a.fut.Ok():
			case <-a.fut.Err():
			case <-deadline:
				wait = false
				kept = append(kept, a)
				continue
			}
		} else {
			select {
			case ack = <-a.fut.Ok():
			case <-a.fut.Err():
			default:
				kept = append(kept, a)
				continue
			}
		}
		if ack != nil && l.record(a.fn, ack.Sequence, a.size, max) {
			over[a.fn] = true
		}
	}
	clear(l.acks[len(kept):])
	l.acks = kept
	for fn := range over {
		l.trim(fn, max)
	}
}

// record adds a stored message of fn to its usage; it reports whether fn
// is now over max.
func (l *LogStore) record(fn string, seq uint64, size, max int64) bool {
	u := l.usage[fn]
	if u == nil {
		u = &functionUsage{}
		l.usage[fn] = u
	}
	if n := len(u.blocks); n > 0 && u.blocks[n-1].bytes < max/32 {
		u.blocks[n-1].lastSeq, u.blocks[n-1].bytes = seq, u.blocks[n-1].bytes+size
	} else {
		u.blocks = append(u.blocks, usageBlock{lastSeq: seq, bytes: size})
	}
	u.bytes += size
	return u.bytes > max
}

// trim purges fn's oldest blocks until its usage is under nine tenths of
// max; the newest block always stays.
func (l *LogStore) trim(fn string, max int64) {
	u := l.usage[fn]
	var cut uint64
	var freed int64
	for len(u.blocks) > 1 && u.bytes > max/10*9 {
		b := u.blocks[0]
		u.blocks = u.blocks[1:]
		u.bytes -= b.bytes
		cut, freed = b.lastSeq, freed+b.bytes
	}
	if cut == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.stream.Purge(ctx, jetstream.WithPurgeSubject(logSubjectPfx+fn), jetstream.WithPurgeSequence(cut+1)); err != nil {
		l.logger.Warn("purging a function's oldest log lines", "function", fn, "err", err)
		return
	}
	l.purged.Add(freed)
}
