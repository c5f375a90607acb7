// Package telemetry owns what Owl records about invocations: the function
// log stream (START/END/REPORT plus the function's own output, kept per
// function in JetStream across restarts) and the Lambda-format report lines.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	logStream     = "OWL_LOGS"
	logSubjectPfx = "owl.logs."
)

// LogStore keeps function logs in a size- and age-limited JetStream stream,
// one subject per function, one message per invocation.
type LogStore struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	logger *slog.Logger
}

// OpenLogStore creates or updates the log stream.
func OpenLogStore(ctx context.Context, js jetstream.JetStream, maxAge time.Duration, maxBytes int64, logger *slog.Logger) (*LogStore, error) {
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
	return &LogStore{js: js, stream: s, logger: logger}, nil
}

// Append stores one invocation's log text for function fn without waiting
// for the store's acknowledgement (logs must never slow an invocation).
func (l *LogStore) Append(fn, text string) {
	if _, err := l.js.PublishAsync(logSubjectPfx+fn, []byte(text)); err != nil {
		l.logger.Warn("storing function log", "function", fn, "err", err)
	}
}

// Flush waits until appended logs are stored, or ctx ends.
func (l *LogStore) Flush(ctx context.Context) {
	select {
	case <-l.js.PublishAsyncComplete():
	case <-ctx.Done():
	}
}

// Tail returns up to limit of the most recent log lines of function fn,
// oldest first.
func (l *LogStore) Tail(ctx context.Context, fn string, limit int) ([]string, error) {
	subj := logSubjectPfx + fn
	info, err := l.stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return nil, fmt.Errorf("reading log stream info: %w", err)
	}
	if info.State.Subjects[subj] == 0 {
		return nil, nil
	}
	cons, err := l.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		return nil, fmt.Errorf("reading logs of %s: %w", fn, err)
	}
	remaining := info.State.Subjects[subj]
	var lines []string
	for remaining > 0 {
		batch, err := cons.Fetch(int(min(remaining, 256)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("reading logs of %s: %w", fn, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			lines = append(lines, strings.Split(strings.TrimSuffix(string(m.Data()), "\n"), "\n")...)
			if limit > 0 && len(lines) > 4*limit {
				lines = append(lines[:0], lines[len(lines)-limit:]...)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("reading logs of %s: %w", fn, err)
		}
		if n == 0 {
			break
		}
		remaining -= uint64(n)
	}
	if limit > 0 && len(lines) > limit {
		lines = lines[len(lines)-limit:]
	}
	return lines, nil
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
func (r Report) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB",
		r.RequestID, ms(r.Duration), BilledMillis(r.Duration), r.MemoryMB, r.MaxMemoryMB)
	if r.InitDuration > 0 {
		fmt.Fprintf(&b, "\tInit Duration: %.2f ms", ms(r.InitDuration))
	}
	if r.ErrorType != "" {
		fmt.Fprintf(&b, "\tStatus: error\tError Type: %s", r.ErrorType)
	}
	return b.String()
}

// BilledMillis rounds a duration up to the next millisecond (at least 1).
func BilledMillis(d time.Duration) int64 {
	return max(1, int64(math.Ceil(float64(d)/float64(time.Millisecond))))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
