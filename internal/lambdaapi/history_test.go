package lambdaapi

import (
	"testing"
	"time"
)

// TestHistoryDefaultStep: without a step a range gets about 360 points
// of whole sampling intervals, and from 2.5 minutes on whole rollups (so
// a day and a week are read from rollups); never finer than the finest.
func TestHistoryDefaultStep(t *testing.T) {
	for _, c := range []struct {
		span, finest, rollup, want time.Duration
	}{
		{time.Hour, 10 * time.Second, 5 * time.Minute, 10 * time.Second},
		{24 * time.Hour, 10 * time.Second, 5 * time.Minute, 5 * time.Minute},
		{7 * 24 * time.Hour, 5 * time.Minute, 5 * time.Minute, 30 * time.Minute},
		{time.Minute, 10 * time.Second, 5 * time.Minute, 10 * time.Second},
		{24 * time.Hour, 10 * time.Minute, 0, 10 * time.Minute},
	} {
		got, err := historyStep("", c.span, c.finest, c.rollup)
		if err != nil || got != c.want {
			t.Errorf("span %v, finest %v, rollup %v: step %v (%v), want %v", c.span, c.finest, c.rollup, got, err, c.want)
		}
	}
	for arg, want := range map[string]time.Duration{"60": time.Minute, "90s": 90 * time.Second} {
		if got, err := historyStep(arg, time.Hour, 10*time.Second, 5*time.Minute); err != nil || got != want {
			t.Errorf("step %q: %v (%v), want %v", arg, got, err, want)
		}
	}
}
