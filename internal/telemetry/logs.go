// Package telemetry owns what Owl records about invocations: the function
// log stream (START/END/REPORT plus the function's own output, kept per
// function in JetStream across restarts) and the Lambda-format report lines.
package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/natsbus"
)

const (
	logStream     = "OWL_LOGS"
	logSubjectPfx = "owl.logs."
)

// LogStore keeps function logs in a size- and age-limited JetStream stream,
// one subject per function, each message a run of lines of one invocation
// and stream (its request id, version and stream in the message's
// headers, its time the message's). Appends are batched per function and
// published by one background goroutine shortly after they arrive, so an
// invocation pays a mutex and a copy, not a publish. Tail flushes first,
// so a reader always sees every line appended before it.
type LogStore struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	logger *slog.Logger
	space  SpaceChecker // nil: never refuse

	// dropped counts log bytes not stored because the disk was below its
	// reserve; dropping is logged once per low-space period.
	dropped     atomic.Int64
	droppingNow atomic.Bool

	mu      sync.Mutex             // guards pending
	pending map[string][]*logChunk // function → log text not yet published, in order

	// The bound on each function's share (retention.go): eachMax is
	// set once; acks and usage are the publisher goroutine's own.
	eachMax atomic.Int64
	purged  atomic.Int64
	acks    []pendingAck
	usage   map[string]*functionUsage

	kick     chan struct{}      // an append into an empty batch
	flushReq chan chan struct{} // Flush/Tail asking for a publish now
	stop     chan struct{}
	done     chan struct{}
}

const (
	// logBatchDelay is how long appends gather before they are published.
	logBatchDelay = 5 * time.Millisecond
	// maxLogMessage keeps each message under NATS' default 1 MB payload.
	maxLogMessage = 900 << 10
)

// SpaceChecker is the data dir's free-space guard (internal/diskspace):
// Check fails when writing need bytes would go below the disk reserve.
type SpaceChecker interface {
	Check(need int64) error
}

// OpenLogStore creates or updates the log stream and starts the publisher;
// Close stops it. maxBytes bounds the stream (the oldest logs go first);
// when space is not nil, logs are dropped rather than stored while the
// data dir is below its disk reserve.
func OpenLogStore(ctx context.Context, js jetstream.JetStream, maxAge time.Duration, maxBytes int64, space SpaceChecker, logger *slog.Logger) (*LogStore, error) {
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        logStream,
		Description: "Owl function logs",
		Subjects:    []string{logSubjectPfx + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      maxAge,
		MaxBytes:    maxBytes,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("opening log stream: %w", err)
	}
	l := &LogStore{
		js: js, stream: s, logger: logger, space: space,
		pending: map[string][]*logChunk{}, usage: map[string]*functionUsage{},
		kick: make(chan struct{}, 1), flushReq: make(chan chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go l.publisher()
	return l, nil
}

// LogMeta says whose lines an Append stores.
type LogMeta struct {
	RequestID string
	Version   string
	// Stream is lambdawire.LogFunction or lambdawire.LogPlatform.
	Stream string
}

// logChunk is appended text of one invocation and stream.
type logChunk struct {
	meta LogMeta
	text []byte
}

// Log message headers.
const (
	hdrRequestID = "Owl-Request-Id"
	hdrVersion   = "Owl-Version"
	hdrStream    = "Owl-Stream"
)

// Append stores whole lines (each ending in a newline) of function fn.
func (l *LogStore) Append(fn string, meta LogMeta, text string) {
	l.mu.Lock()
	chunks := l.pending[fn]
	had := len(chunks) > 0
	if had && chunks[len(chunks)-1].meta == meta {
		last := chunks[len(chunks)-1]
		last.text = append(last.text, text...)
	} else {
		l.pending[fn] = append(chunks, &logChunk{meta: meta, text: []byte(text)})
	}
	l.mu.Unlock()
	if !had {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

func (l *LogStore) publisher() {
	defer close(l.done)
	for {
		select {
		case <-l.stop:
			l.publishPending()
			l.countAcks(true)
			return
		case ack := <-l.flushReq:
			l.publishPending()
			l.countAcks(true)
			close(ack)
		case <-l.kick:
			select {
			case <-time.After(logBatchDelay):
			case <-l.stop:
			case ack := <-l.flushReq:
				l.publishPending()
				l.countAcks(true)
				close(ack)
				continue
			}
			l.publishPending()
			l.countAcks(false)
		}
	}
}

// publishPending publishes every batch, cut into messages at line ends.
func (l *LogStore) publishPending() {
	l.mu.Lock()
	batches := l.pending
	l.pending = make(map[string][]*logChunk, len(batches))
	l.mu.Unlock()
	if !l.roomFor(batches) {
		return
	}
	for fn, chunks := range batches {
		for _, c := range chunks {
			l.publishChunk(fn, c)
		}
	}
}

// publishChunk publishes c, cut into messages at line ends.
func (l *LogStore) publishChunk(fn string, c *logChunk) {
	h := nats.Header{}
	if c.meta.RequestID != "" {
		h.Set(hdrRequestID, c.meta.RequestID)
	}
	if c.meta.Version != "" {
		h.Set(hdrVersion, c.meta.Version)
	}
	if c.meta.Stream != "" {
		h.Set(hdrStream, c.meta.Stream)
	}
	b := c.text
	for len(b) > 0 {
		n := len(b)
		if n > maxLogMessage {
			n = maxLogMessage
			if i := bytes.LastIndexByte(b[:n], '\n'); i > 0 {
				n = i + 1
			}
		}
		fut, err := l.js.PublishMsgAsync(&nats.Msg{Subject: logSubjectPfx + fn, Header: h, Data: b[:n]})
		if err != nil {
			l.logger.Warn("storing function log", "function", fn, "err", err)
		} else if l.eachMax.Load() > 0 {
			l.acks = append(l.acks, pendingAck{fn: fn, size: int64(n), fut: fut})
		}
		b = b[n:]
	}
}

// roomFor reports whether batches fit above the disk reserve; when they
// do not they are dropped (counted, and logged once until space returns):
// a store write that hits a full disk would break the stream until restart.
func (l *LogStore) roomFor(batches map[string][]*logChunk) bool {
	if l.space == nil || len(batches) == 0 {
		return true
	}
	var n int64
	for _, chunks := range batches {
		for _, c := range chunks {
			n += int64(len(c.text))
		}
	}
	err := l.space.Check(n)
	if err == nil {
		if l.droppingNow.Swap(false) {
			l.logger.Info("storing function logs again", "dropped_bytes", l.dropped.Load())
		}
		return true
	}
	l.dropped.Add(n)
	if !l.droppingNow.Swap(true) {
		l.logger.Warn("dropping function logs until disk space is freed", "err", err)
	}
	return false
}

// DroppedBytes is how many log bytes were dropped for lack of disk space.
func (l *LogStore) DroppedBytes() int64 { return l.dropped.Load() }

// PurgeExcept deletes the stored logs of every function that live does
// not list (a deleted function's logs go with it) and returns how many
// functions' logs it deleted. live is asked after the logs are listed, so
// a function created meanwhile keeps its first lines.
func (l *LogStore) PurgeExcept(ctx context.Context, live func(context.Context) (map[string]bool, error)) (int, error) {
	info, err := l.stream.Info(ctx, jetstream.WithSubjectFilter(logSubjectPfx+">"))
	if err != nil {
		return 0, fmt.Errorf("listing function logs: %w", err)
	}
	if len(info.State.Subjects) == 0 {
		return 0, nil
	}
	names, err := live(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for subj := range info.State.Subjects {
		if names[strings.TrimPrefix(subj, logSubjectPfx)] {
			continue
		}
		if err := l.stream.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			errs = append(errs, fmt.Errorf("deleting logs %s: %w", subj, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Flush publishes what is pending and waits until the store acknowledged
// it, or ctx ends.
func (l *LogStore) Flush(ctx context.Context) {
	ack := make(chan struct{})
	select {
	case l.flushReq <- ack:
		<-ack
	case <-l.done:
	case <-ctx.Done():
		return
	}
	select {
	case <-l.js.PublishAsyncComplete():
	case <-ctx.Done():
	}
}

// Close publishes what is pending and stops the publisher.
func (l *LogStore) Close() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// LogQuery selects log lines; its zero value selects them all.
type LogQuery struct {
	// Since and Until bound the lines' times (zero: unbounded).
	Since, Until time.Time
	// RequestID selects one invocation's lines.
	RequestID string
	// Versions selects the lines of these versions ("$LATEST", "3").
	Versions []string
}

func (q LogQuery) matches(meta LogMeta, at time.Time) bool {
	return (q.RequestID == "" || meta.RequestID == q.RequestID) &&
		(len(q.Versions) == 0 || slices.Contains(q.Versions, meta.Version)) &&
		(q.Since.IsZero() || !at.Before(q.Since)) && (q.Until.IsZero() || !at.After(q.Until))
}

// lines turns a stored message into its lines, when q selects them.
func (q LogQuery) lines(m jetstream.Msg) []lambdawire.LogLine {
	md, err := m.Metadata()
	if err != nil {
		return nil
	}
	h := m.Headers()
	meta := LogMeta{RequestID: h.Get(hdrRequestID), Version: h.Get(hdrVersion), Stream: h.Get(hdrStream)}
	if meta.Stream == "" {
		meta.Stream = lambdawire.LogFunction
	}
	if !q.matches(meta, md.Timestamp) {
		return nil
	}
	texts := strings.Split(strings.TrimSuffix(string(m.Data()), "\n"), "\n")
	out := make([]lambdawire.LogLine, len(texts))
	for i, t := range texts {
		out[i] = lambdawire.LogLine{Time: md.Timestamp, RequestID: meta.RequestID, Version: meta.Version, Stream: meta.Stream, Message: t}
	}
	return out
}

// Tail returns up to limit (0: all) of the most recent log lines of
// function fn that q selects, oldest first.
func (l *LogStore) Tail(ctx context.Context, fn string, q LogQuery, limit int) ([]lambdawire.LogLine, error) {
	// Lines written a moment ago are included, if their writes are
	// acknowledged soon: a store that lost a server may never answer some.
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	l.Flush(fctx)
	cancel()
	subj := logSubjectPfx + fn
	info, err := l.stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return nil, fmt.Errorf("reading log stream info: %w", err)
	}
	if info.State.Subjects[subj] == 0 {
		return nil, nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}}
	if !q.Since.IsZero() {
		since := q.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := l.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("reading logs of %s: %w", fn, err)
	}
	// The consumer goes with the read. Left to expire, a client polling
	// the log (owl logs in a loop, a console) piled up a thousand of them
	// within seconds, and JetStream refused the next read.
	defer l.deleteConsumer(cons)
	var lines []lambdawire.LogLine
	for done := false; !done; {
		msgs, batchErr := natsbus.FetchNoWait(cons, 256)
		n := 0
		for _, m := range msgs {
			n++
			md, err := m.Metadata()
			if err != nil || md.NumPending == 0 || (!q.Until.IsZero() && md.Timestamp.After(q.Until)) {
				done = true
			}
			lines = append(lines, q.lines(m)...)
			if limit > 0 && len(lines) > 4*limit {
				lines = append(lines[:0], lines[len(lines)-limit:]...)
			}
		}
		if err := batchErr; err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("reading logs of %s: %w", fn, err)
		}
		done = done || n == 0
	}
	if limit > 0 && len(lines) > limit {
		lines = lines[len(lines)-limit:]
	}
	return lines, nil
}

// Follow calls each with the lines of fn that q selects stored from now
// on, as they are stored (within milliseconds of the function writing
// them), until ctx ends or each fails. Lines stored before it began are
// Tail's.
func (l *LogStore) Follow(ctx context.Context, fn string, q LogQuery, each func([]lambdawire.LogLine) error) error {
	cons, err := l.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{logSubjectPfx + fn}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("following logs of %s: %w", fn, err)
	}
	defer l.deleteConsumer(cons)
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("following logs of %s: %w", fn, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("following logs of %s: %w", fn, err)
		}
		if lines := q.lines(m); len(lines) > 0 {
			if err := each(lines); err != nil {
				return err
			}
		}
	}
}

func (l *LogStore) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.stream.DeleteConsumer(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		l.logger.Debug("deleting a log reader's consumer", "consumer", info.Name, "err", err)
	}
}

// Report is what one invocation's REPORT line says.
type Report struct {
	RequestID    string
	Duration     time.Duration
	MemoryMB     int
	MaxMemoryMB  int
	InitDuration time.Duration // zero unless this was a cold start
	ErrorType    string        // set when the runtime failed (e.g. Runtime.ExitError)
}

// StartLine is Lambda's START line.
func StartLine(requestID, version string) string {
	return "START RequestId: " + requestID + " Version: " + version
}

// EndLine is Lambda's END line.
func EndLine(requestID string) string { return "END RequestId: " + requestID }

// Line renders the tab-separated REPORT line exactly as Lambda does.
func (r Report) Line() string { return string(r.AppendLine(nil)) }

// AppendLine appends Line to b. Every invocation formats one, so it uses
// strconv rather than fmt; 'f' with precision 2 is what %.2f does.
func (r Report) AppendLine(b []byte) []byte {
	b = append(b, "REPORT RequestId: "...)
	b = append(b, r.RequestID...)
	b = append(b, "\tDuration: "...)
	b = strconv.AppendFloat(b, ms(r.Duration), 'f', 2, 64)
	b = append(b, " ms\tBilled Duration: "...)
	b = strconv.AppendInt(b, Billed(r.Duration, r.InitDuration), 10)
	b = append(b, " ms\tMemory Size: "...)
	b = strconv.AppendInt(b, int64(r.MemoryMB), 10)
	b = append(b, " MB\tMax Memory Used: "...)
	b = strconv.AppendInt(b, int64(r.MaxMemoryMB), 10)
	b = append(b, " MB"...)
	if r.InitDuration > 0 {
		b = append(b, "\tInit Duration: "...)
		b = strconv.AppendFloat(b, ms(r.InitDuration), 'f', 2, 64)
		b = append(b, " ms"...)
	}
	if r.ErrorType != "" {
		b = append(b, "\tStatus: error\tError Type: "...)
		b = append(b, r.ErrorType...)
	}
	return b
}

// Billed is the milliseconds billed for an invocation that ran for dur
// after an init of initDur (zero when warm): their sum rounded up to the
// millisecond, at least 1. Lambda bills the init phase too since
// 2025-08-01, and so its REPORT line's Billed Duration includes it.
func Billed(dur, initDur time.Duration) int64 {
	return max(1, int64(math.Ceil(float64(dur+initDur)/float64(time.Millisecond))))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
