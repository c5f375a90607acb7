package telemetry_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdawire"
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
		logs.Append("fn", telemetry.LogMeta{}, fmt.Sprintf("START %d\nline %d\nEND %d\n", i, i, i))
	}
	logs.Append("other", telemetry.LogMeta{}, "not mine\n")
	// One invocation's log larger than a NATS message is cut at line ends.
	big := strings.Repeat(strings.Repeat("x", 99)+"\n", 20000) // ~2 MB
	logs.Append("fn", telemetry.LogMeta{}, big)
	logs.Append("fn", telemetry.LogMeta{}, "LAST\n")

	// Tail sees everything appended before it, without waiting.
	lines, err := tailText(ctx, logs, "fn", 0)
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
	last, err := tailText(ctx, logs, "fn", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 3 || last[2] != "LAST" {
		t.Errorf("Tail(3) = %q", last)
	}
	if other, _ := tailText(ctx, logs, "other", 0); len(other) != 1 || other[0] != "not mine" {
		t.Errorf("other function's log = %q", other)
	}
	if none, err := tailText(ctx, logs, "nobody", 10); err != nil || len(none) != 0 {
		t.Errorf("unknown function: %q, %v", none, err)
	}
}

// tailText is Tail's messages.
func tailText(ctx context.Context, logs *telemetry.LogStore, fn string, limit int) ([]string, error) {
	lines, err := logs.Tail(ctx, fn, telemetry.LogQuery{}, limit)
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Message
	}
	return out, err
}

// TestLogQuery: lines keep their invocation, version and stream; a query
// selects by request id, versions and time, and Follow hands over each new
// line that a query selects, as appended.
func TestLogQuery(t *testing.T) {
	ctx := context.Background()
	_, logs := newLogStore(t)
	a1 := telemetry.LogMeta{RequestID: "a", Version: "1", Stream: lambdawire.LogPlatform}
	a := telemetry.LogMeta{RequestID: "a", Version: "1", Stream: lambdawire.LogFunction}
	b := telemetry.LogMeta{RequestID: "b", Version: "$LATEST", Stream: lambdawire.LogFunction}
	logs.Append("fn", a1, "START a\n")
	logs.Append("fn", a, "a one\n")
	logs.Append("fn", b, "b one\nb two\n")
	logs.Append("fn", a, "a two\n")
	logs.Append("fn", a1, "END a\n")
	logs.Flush(ctx)
	mid := time.Now()
	time.Sleep(10 * time.Millisecond) // the store's clock must pass mid
	logs.Append("fn", b, "b three\n")

	got := func(q telemetry.LogQuery) string {
		t.Helper()
		lines, err := logs.Tail(ctx, "fn", q, 0)
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, l := range lines {
			parts = append(parts, l.RequestID+"/"+l.Version+"/"+l.Stream+": "+l.Message)
			if l.Time.IsZero() {
				t.Errorf("line %q has no time", l.Message)
			}
		}
		return strings.Join(parts, "|")
	}
	if g, want := got(telemetry.LogQuery{RequestID: "a"}), "a/1/platform: START a|a/1/function: a one|a/1/function: a two|a/1/platform: END a"; g != want {
		t.Errorf("request a:\n%s\nwant\n%s", g, want)
	}
	if g, want := got(telemetry.LogQuery{Versions: []string{"$LATEST"}}), "b/$LATEST/function: b one|b/$LATEST/function: b two|b/$LATEST/function: b three"; g != want {
		t.Errorf("$LATEST: %s", g)
	}
	if g, want := got(telemetry.LogQuery{Since: mid}), "b/$LATEST/function: b three"; g != want {
		t.Errorf("since mid: %q", g)
	}
	if g := got(telemetry.LogQuery{Until: mid}); strings.Contains(g, "three") || !strings.HasPrefix(g, "a/1/platform: START a") {
		t.Errorf("until mid: %q", g)
	}
	if g := got(telemetry.LogQuery{Since: time.Now().Add(time.Hour)}); g != "" {
		t.Errorf("since an hour from now: %q", g)
	}

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := make(chan lambdawire.LogLine, 10)
	followed := make(chan error, 1)
	go func() {
		followed <- logs.Follow(fctx, "fn", telemetry.LogQuery{RequestID: "c"}, func(lines []lambdawire.LogLine) error {
			for _, l := range lines {
				seen <- l
			}
			return nil
		})
	}()
	// Follow starts from what is appended after it began: append until
	// the first line comes, then one more.
	c := telemetry.LogMeta{RequestID: "c", Stream: lambdawire.LogFunction}
	var first lambdawire.LogLine
	for deadline := time.Now().Add(20 * time.Second); first.Message == ""; {
		if time.Now().After(deadline) {
			t.Fatal("Follow saw nothing")
		}
		logs.Append("fn", b, "not c\n")
		logs.Append("fn", c, "c\n")
		select {
		case first = <-seen:
		case <-time.After(50 * time.Millisecond):
		}
	}
	logs.Append("fn", c, "c last\n")
	for l := range seen {
		if l.RequestID != "c" {
			t.Fatalf("Follow handed over %+v", l)
		}
		if l.Message == "c last" {
			break
		}
	}
	cancel()
	if err := <-followed; err != nil {
		t.Errorf("Follow: %v", err)
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
	logs.Append("fn", telemetry.LogMeta{}, "START\nEND\n")
	for i := range 2000 {
		if lines, err := logs.Tail(ctx, "fn", telemetry.LogQuery{}, 10); err != nil || len(lines) != 2 {
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

// TestLimitEach: a function writing far more than its bound keeps its
// newest lines, about the bound's worth, and another function's lines are
// untouched.
func TestLimitEach(t *testing.T) {
	ctx := context.Background()
	_, logs := newLogStore(t)
	const max = 1 << 20
	logs.LimitEach(max)
	for i := range 10 {
		logs.Append("quiet", telemetry.LogMeta{RequestID: "q"}, fmt.Sprintf("quiet %d\n", i))
	}
	line := strings.Repeat("x", 1000)
	for i := range 4000 { // ~4 MB in 400 runs of 10 lines, one invocation each
		logs.Append("chatty", telemetry.LogMeta{RequestID: fmt.Sprint(i / 10)}, fmt.Sprintf("%05d %s\n", i, line))
		if i%500 == 499 {
			logs.Flush(ctx)
		}
	}
	lines, err := tailText(ctx, logs, "chatty", 0)
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, l := range lines {
		kept += len(l) + 1
	}
	if kept > max+max/32 || kept < max/10*9-max/32 || !strings.HasPrefix(lines[len(lines)-1], "03999 ") {
		t.Errorf("chatty kept %d bytes (bound %d), its last line %.10q", kept, max, lines[len(lines)-1])
	}
	if strings.HasPrefix(lines[0], "00000 ") {
		t.Error("chatty's oldest line is still there")
	}
	if q, _ := tailText(ctx, logs, "quiet", 0); len(q) != 10 {
		t.Errorf("quiet kept %d of its 10 lines", len(q))
	}
	if p := logs.PurgedBytes(); p < 3*max-max/4 {
		t.Errorf("PurgedBytes = %d, want about 3 MB", p)
	}
}
