package usage_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/testkit/natstest"
	"github.com/owl-project/owl/internal/usage"
)

// TestSumsAcrossRecordersAndPeriods: two recorders (two nodes) adding to
// the same hours sum exactly; rows group by hour, day or the range; the
// range selects whole hours.
func TestSumsAcrossRecordersAndPeriods(t *testing.T) {
	bus := natstest.Start(t)
	ctx := context.Background()
	a, err := usage.Open(ctx, bus.JS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := usage.Open(ctx, bus.JS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	day := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	h9, h10, next := day.Add(9*time.Hour+time.Minute), day.Add(10*time.Hour+59*time.Minute), day.Add(24*time.Hour+time.Hour)
	a.Record("f", 128, 3, false, h9)
	b.Record("f", 128, 5, true, h9)
	a.Record("f", 256, 10, false, h10)
	b.Record("g", 1024, 1000, false, next)
	// Both flush into the same keys: compare-and-set keeps every sum.
	a.Flush(ctx)
	b.Flush(ctx)

	row := func(fn, period string, inv, errs, ms, mbms int64) lambdawire.UsageRow {
		return lambdawire.UsageRow{Function: fn, Period: period, Invocations: inv, Errors: errs, BilledMs: ms, MBMs: mbms, GBSeconds: float64(mbms) / 1024 / 1000}
	}
	for _, c := range []struct {
		since, until time.Time
		function, by string
		want         []lambdawire.UsageRow
	}{
		{function: "", by: "", want: []lambdawire.UsageRow{row("f", "", 3, 1, 18, 8*128+10*256), row("g", "", 1, 0, 1000, 1024000)}},
		{by: "hour", function: "f", want: []lambdawire.UsageRow{
			row("f", "2026-12-05T09:00:00Z", 2, 1, 8, 8*128), row("f", "2026-12-05T10:00:00Z", 1, 0, 10, 2560)}},
		{by: "day", want: []lambdawire.UsageRow{row("f", "2026-12-05T00:00:00Z", 3, 1, 18, 3584), row("g", "2026-12-06T00:00:00Z", 1, 0, 1000, 1024000)}},
		// 10:30 falls in the 10:00 hour, which is included; 09:00 is not.
		{since: day.Add(10*time.Hour + 30*time.Minute), until: day.Add(12 * time.Hour), want: []lambdawire.UsageRow{row("f", "", 1, 0, 10, 2560)}},
		{until: day.Add(9*time.Hour + 30*time.Minute), want: []lambdawire.UsageRow{row("f", "", 2, 1, 8, 1024)}},
		{function: "nobody", want: []lambdawire.UsageRow{}},
	} {
		got, err := a.Query(ctx, c.since, c.until, c.function, c.by)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Query(%v, %v, %q, %q):\n got  %+v\n want %+v", c.since, c.until, c.function, c.by, got, c.want)
		}
	}
}
