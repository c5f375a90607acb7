package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// utc is a time in UTC, for the tables.
func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestCronMatchesAWSExamples: the examples of EventBridge's documentation
// ("Cron expressions reference"), each with the firings it describes
// after Thursday 2026-12-03 09:00 UTC.
func TestCronMatchesAWSExamples(t *testing.T) {
	from := utc("2026-12-03 09:00")
	for _, c := range []struct {
		expr string
		want []string
	}{
		// Run at 10:00 am (UTC) every day.
		{"cron(0 10 * * ? *)", []string{"2026-12-03 10:00", "2026-12-04 10:00", "2026-12-05 10:00"}},
		// Run at 12:15 pm (UTC) every day.
		{"cron(15 12 * * ? *)", []string{"2026-12-03 12:15", "2026-12-04 12:15"}},
		// Run at 6:00 pm (UTC) every Monday through Friday.
		{"cron(0 18 ? * MON-FRI *)", []string{"2026-12-03 18:00", "2026-12-04 18:00", "2026-12-07 18:00"}},
		// Run at 8:00 am (UTC) every first day of the month.
		{"cron(0 8 1 * ? *)", []string{"2027-01-01 08:00", "2027-02-01 08:00"}},
		// Run every 15 minutes.
		{"cron(0/15 * * * ? *)", []string{"2026-12-03 09:15", "2026-12-03 09:30", "2026-12-03 09:45", "2026-12-03 10:00"}},
		// Run every 10 minutes Monday through Friday (Saturday: next Monday).
		{"cron(0/10 * ? * MON-FRI *)", []string{"2026-12-03 09:10", "2026-12-03 09:20"}},
		// Run every 5 minutes Monday through Friday between 8:00 am and 5:55 pm (UTC).
		{"cron(0/5 8-17 ? * MON-FRI *)", []string{"2026-12-03 09:05", "2026-12-03 09:10"}},
		// Run at 9 am on the first Monday of each month.
		{"cron(0 9 ? * 2#1 *)", []string{"2026-12-07 09:00", "2027-01-04 09:00", "2027-02-01 09:00"}},
		// The same with numbers: 2-6 is Monday to Friday on AWS (1 is Sunday).
		{"cron(0 18 ? * 2-6 *)", []string{"2026-12-03 18:00", "2026-12-04 18:00", "2026-12-07 18:00"}},
		// L: the last day of the month; 6L: the last Friday; 3W: the weekday nearest the 3rd.
		{"cron(0 0 L * ? *)", []string{"2026-12-31 00:00", "2027-01-31 00:00", "2027-02-28 00:00"}},
		{"cron(0 0 ? * 6L *)", []string{"2026-12-25 00:00", "2027-01-29 00:00"}},
		{"cron(0 0 3W * ? *)", []string{"2027-01-04 00:00", "2027-02-03 00:00"}},
		// The year field.
		{"cron(0 0 1 1 ? 2028-2029)", []string{"2028-01-01 00:00", "2029-01-01 00:00"}},
	} {
		s, err := Parse(c.expr, "")
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		at := from
		for i, w := range c.want {
			next, ok := s.Next(at, from)
			if !ok || !next.Equal(utc(w)) {
				t.Errorf("%s: firing %d after %s = %s (%v), want %s", c.expr, i+1, at.Format(time.DateTime), next.Format(time.DateTime), ok, w)
				break
			}
			at = next
		}
	}
	// Past its last year: no more firings.
	s, _ := Parse("cron(0 0 1 1 ? 2027)", "")
	if next, ok := s.Next(utc("2027-06-01 00:00"), from); ok {
		t.Errorf("a cron past its years fires at %s", next)
	}
}

func TestTimeZone(t *testing.T) {
	s, err := Parse("cron(0 9 * * ? *)", "America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	// 09:00 in New York is 14:00 UTC in winter, 13:00 in summer.
	if next, _ := s.Next(utc("2026-12-03 00:00"), time.Time{}); !next.Equal(utc("2026-12-03 14:00")) {
		t.Errorf("winter: %s", next.UTC())
	}
	if next, _ := s.Next(utc("2026-07-03 00:00"), time.Time{}); !next.Equal(utc("2026-07-03 13:00")) {
		t.Errorf("summer: %s", next.UTC())
	}
	at, err := Parse("at(2026-12-24T18:00:00)", "Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	if next, ok := at.Next(utc("2026-12-01 00:00"), time.Time{}); !ok || !next.Equal(utc("2026-12-24 17:00")) {
		t.Errorf("at() in Paris: %s %v", next.UTC(), ok)
	}
	if _, ok := at.Next(utc("2026-12-24 17:00"), time.Time{}); ok {
		t.Error("at() fires again after its moment")
	}
}

func TestRate(t *testing.T) {
	anchor := utc("2026-12-03 09:00")
	for expr, every := range map[string]time.Duration{
		"rate(1 minute)": time.Minute, "rate(5 minutes)": 5 * time.Minute, "rate(1 hour)": time.Hour,
		"rate(12 hours)": 12 * time.Hour, "rate(1 day)": 24 * time.Hour, "rate(7 days)": 7 * 24 * time.Hour,
		"rate(1 second)": time.Second, "rate(30 seconds)": 30 * time.Second,
	} {
		s, err := Parse(expr, "")
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if next, _ := s.Next(anchor.Add(-time.Hour), anchor); !next.Equal(anchor.Add(every)) {
			t.Errorf("%s: first firing %s, want anchor + %s", expr, next, every)
		}
		if next, _ := s.Next(anchor.Add(every), anchor); !next.Equal(anchor.Add(2 * every)) {
			t.Errorf("%s: after the first firing %s, want anchor + 2×%s", expr, next, every)
		}
		if next, _ := s.Next(anchor.Add(every*5/2), anchor); !next.Equal(anchor.Add(3 * every)) {
			t.Errorf("%s: mid-period %s, want anchor + 3×%s", expr, next, every)
		}
	}
}

func TestBadExpressions(t *testing.T) {
	for expr, want := range map[string]string{
		"":                         "want rate",
		"every 5 minutes":          "want rate",
		"weekly(1)":                "unknown form",
		"rate(5)":                  "a value and a unit",
		"rate(0 minutes)":          "whole number",
		"rate(-1 minutes)":         "whole number",
		"rate(1.5 hours)":          "whole number",
		"rate(5 minute)":           "say 5 minutes",
		"rate(1 minutes)":          "say 1 minute",
		"rate(5 weeks)":            "unit",
		"cron(0 10 * * *)":         "six fields",
		"cron(0 10 * * ? * *)":     "six fields",
		"cron(0 10 * * * *)":       "must be ?",
		"cron(0 10 ? * ? *)":       "must be ?",
		"cron(60 10 * * ? *)":      "minutes \"60\"",
		"cron(0 24 * * ? *)":       "hours \"24\"",
		"cron(0 10 32 * ? *)":      "day-of-month \"32\"",
		"cron(0 10 0 * ? *)":       "day-of-month \"0\"",
		"cron(0 10 * 13 ? *)":      "month \"13\"",
		"cron(0 10 * FOO ? *)":     "month \"FOO\"",
		"cron(0 10 ? * 8 *)":       "day-of-week \"8\"",
		"cron(0 10 ? * 0 *)":       "day-of-week \"0\"",
		"cron(0 10 ? * 2#6 *)":     "the week",
		"cron(0 10 ? * MON/2 *)":   "no step",
		"cron(0 10 * * ? 1969)":    "year \"1969\"",
		"cron(0 10 * * ? 2200)":    "year \"2200\"",
		"cron(0/0 10 * * ? *)":     "step",
		"cron(0 10 1#2 * ? *)":     "day-of-month",
		"cron(? 10 * * ? *)":       "only for day-of-month",
		"cron(0 10 * * ? *":        "want rate",
		"at(2026-12-24)":           "yyyy-mm-ddThh:mm:ss",
		"at(2026-12-24T25:00:00)":  "yyyy-mm-ddThh:mm:ss",
		"at(2026-12-24T18:00:00Z)": "yyyy-mm-ddThh:mm:ss",
	} {
		_, err := Parse(expr, "")
		var se *Error
		if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", expr, err, want)
		}
	}
	for _, tz := range []string{"Mars/Olympus", "../../etc/passwd", "/etc/localtime"} {
		if _, err := Parse("rate(1 minute)", tz); err == nil || !strings.Contains(err.Error(), "time zone") {
			t.Errorf("time zone %q: %v", tz, err)
		}
	}
}

func TestLast(t *testing.T) {
	anchor := utc("2026-12-03 09:00")
	r, _ := Parse("rate(1 minute)", "")
	if _, ok := r.Last(anchor.Add(59*time.Second), anchor); ok {
		t.Error("a rate has a firing before its first period")
	}
	if last, ok := r.Last(anchor.Add(150*time.Second), anchor); !ok || !last.Equal(anchor.Add(2*time.Minute)) {
		t.Errorf("rate: last = %s %v", last, ok)
	}
	c, _ := Parse("cron(0 10 * * ? *)", "")
	if last, ok := c.Last(utc("2026-12-05 09:00"), anchor); !ok || !last.Equal(utc("2026-12-04 10:00")) {
		t.Errorf("cron: last = %s %v", last, ok)
	}
	if last, ok := c.Last(utc("2026-12-05 10:00"), anchor); !ok || !last.Equal(utc("2026-12-05 10:00")) {
		t.Errorf("cron at a firing: last = %s %v", last, ok)
	}
	a, _ := Parse("at(2026-12-24T18:00:00)", "")
	if _, ok := a.Last(utc("2026-12-24 17:59"), anchor); ok {
		t.Error("at() has fired before its moment")
	}
	if last, ok := a.Last(utc("2026-12-25 00:00"), anchor); !ok || !last.Equal(utc("2026-12-24 18:00")) {
		t.Errorf("at: last = %s %v", last, ok)
	}
}
