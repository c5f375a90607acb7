package cli

import (
	"strings"
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                          {},
		"30m":                       now.Add(-30 * time.Minute),
		"2h":                        now.Add(-2 * time.Hour),
		"7d":                        now.Add(-7 * 24 * time.Hour),
		"1d12h":                     now.Add(-36 * time.Hour),
		"2026-12-06T08:00:00Z":      time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC),
		"2026-12-06T08:00:00+01:00": time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC),
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"yesterday", "d", "1.5d", "-2h", "7dd", "2026-12-06"} {
		if _, err := parseWhen(in, now); err == nil || !strings.Contains(err.Error(), in) {
			t.Errorf("parseWhen(%q): %v, want an error naming it", in, err)
		}
	}
}
