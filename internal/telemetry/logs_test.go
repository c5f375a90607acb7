package telemetry_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/telemetry"
	"github.com/owl-project/owl/internal/testkit/natstest"
)

// newLogStore opens a log store on an embedded NATS of its own, closed
// when the test ends.
func newLogStore(t *testing.T) (*natsbus.Bus, *telemetry.LogStore) {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	bus := natstest.Start(t)
	logs, err := telemetry.OpenLogStore(ctx, bus.JS, time.Hour, 1<<30, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(logs.Close)
	return bus, logs
}

func TestLogStoreBatchesAndTails(t *testing.T) {
	ctx := context.Background()
	_, logs := newLogStore(t)

	for i := range 50 {
		logs.Append("fn", fmt.Sprintf("START %d\nline %d\nEND %d\n", i, i, i))
	}
	logs.Append("other", "not mine\n")
	// One invocation's log larger than a NATS message is cut at line ends.
	big := strings.Repeat(strings.Repeat("x", 99)+"\n", 20000) // ~2 MB
	logs.Append("fn", big)
	logs.Append("fn", "LAST\n")

	// Tail sees everything appended before it, without waiting.
	lines, err := logs.Tail(ctx, "fn", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := 150 + 20000 + 1; len(lines) != want {
		t.Fatalf("Tail returned %d lines, want %d", len(lines), want)
	}
	if lines[0] != "START 0" || lines[len(lines)-1] != "LAST" {
		t.Errorf("order: first %q, last %q", lines[0], lines[len(lines)-1])
	}
	for _, l := range lines[150 : 150+20000] {
		if len(l) != 99 {
			t.Fatalf("a line was cut: %d bytes", len(l))
		}
	}
	last, err := logs.Tail(ctx, "fn", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 3 || last[2] != "LAST" {
		t.Errorf("Tail(3) = %q", last)
	}
	if other, _ := logs.Tail(ctx, "other", 0); len(other) != 1 || other[0] != "not mine" {
		t.Errorf("other function's log = %q", other)
	}
	if none, err := logs.Tail(ctx, "nobody", 10); err != nil || len(none) != 0 {
		t.Errorf("unknown function: %q, %v", none, err)
	}
}

func TestReportLine(t *testing.T) {
	r := telemetry.Report{RequestID: "id", Duration: 38660 * time.Microsecond, MemoryMB: 128, MaxMemoryMB: 54, InitDuration: 203690 * time.Microsecond}
	want := "REPORT RequestId: id\tDuration: 38.66 ms\tBilled Duration: 243 ms\tMemory Size: 128 MB\tMax Memory Used: 54 MB\tInit Duration: 203.69 ms"
	if got := r.Line(); got != want {
		t.Errorf("Line() = %q\nwant     %q", got, want)
	}
	r = telemetry.Report{RequestID: "id", Duration: 100 * time.Microsecond, MemoryMB: 128, MaxMemoryMB: 1, ErrorType: "Runtime.ExitError"}
	if got := r.Line(); !strings.HasSuffix(got, "\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 1 MB\tStatus: error\tError Type: Runtime.ExitError") {
		t.Errorf("Line() = %q", got)
	}
}

// TestTailLeavesNoConsumers reads a log many times in a row, as a client
// polling `owl logs` does: each read's consumer goes with it, so the
// stream never reaches JetStream's consumer limit.
func TestTailLeavesNoConsumers(t *testing.T) {
	ctx := context.Background()
	bus, logs := newLogStore(t)
	logs.Append("fn", "START\nEND\n")
	for i := range 2000 {
		if lines, err := logs.Tail(ctx, "fn", 10); err != nil || len(lines) != 2 {
			t.Fatalf("read %d: %q, %v", i, lines, err)
		}
	}
	s, err := bus.JS.Stream(ctx, "OWL_LOGS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers > 1 {
		t.Errorf("%d consumers left on the log stream after 2000 reads", info.State.Consumers)
	}
}
