// Package schedule reads EventBridge Scheduler's schedule expressions —
// rate(5 minutes), cron(0 12 * * ? *), at(2026-12-24T18:00:00) — in a
// time zone, and says when each fires next. It checks what AWS checks
// (each field's range, one of day-of-month and day-of-week left as ?, the
// units of a rate) and leaves the calendar arithmetic of cron (L, W, #,
// the year field) to github.com/adhocore/gronx, once the expression is
// translated to its conventions (Sunday is 0 there, 1 on AWS).
package schedule

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/adhocore/gronx"
)

// Kind is the form of an expression.
type Kind string

// The forms.
const (
	Rate Kind = "rate"
	Cron Kind = "cron"
	At   Kind = "at"
)

// Schedule is a parsed expression in its time zone.
type Schedule struct {
	Expr string
	Kind Kind
	Loc  *time.Location
	// every is a rate's period; cron a cron expression in gronx's form;
	// at a one-time schedule's moment.
	every time.Duration
	cron  string
	at    time.Time
}

// Error is an expression that does not parse, and why.
type Error struct {
	Expr, Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("schedule expression %q: %s", e.Expr, e.Reason)
}

func bad(expr, format string, args ...any) error {
	return &Error{Expr: expr, Reason: fmt.Sprintf(format, args...)}
}

// Parse reads expr in time zone tz (an IANA name such as Europe/Paris;
// "" is UTC).
func Parse(expr, tz string) (Schedule, error) {
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil || strings.HasPrefix(tz, "/") || strings.Contains(tz, "..") {
			return Schedule{}, bad(expr, "unknown time zone %q (an IANA name such as Europe/Paris)", tz)
		}
		loc = l
	}
	s := Schedule{Expr: expr, Loc: loc}
	open := strings.IndexByte(expr, '(')
	if open < 0 || !strings.HasSuffix(expr, ")") {
		return s, bad(expr, "want rate(value unit), cron(minutes hours day-of-month month day-of-week year) or at(yyyy-mm-ddThh:mm:ss)")
	}
	body := strings.TrimSpace(expr[open+1 : len(expr)-1])
	var err error
	switch Kind(expr[:open]) {
	case Rate:
		s.Kind = Rate
		s.every, err = parseRate(expr, body)
	case Cron:
		s.Kind = Cron
		s.cron, err = parseCron(expr, body)
	case At:
		s.Kind = At
		s.at, err = time.ParseInLocation("2006-01-02T15:04:05", body, loc)
		if err != nil {
			err = bad(expr, "at() takes a local date and time, yyyy-mm-ddThh:mm:ss")
		}
	default:
		return s, bad(expr, "unknown form %q: want rate, cron or at", expr[:open])
	}
	return s, err
}

var rateUnits = map[string]time.Duration{
	"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour,
}

// parseRate reads "value unit": a positive whole value, the unit singular
// for 1 and plural otherwise, as AWS requires. Seconds are Owl's own
// addition (AWS's shortest rate is a minute).
func parseRate(expr, body string) (time.Duration, error) {
	f := strings.Fields(body)
	if len(f) != 2 {
		return 0, bad(expr, "rate() takes a value and a unit, e.g. rate(5 minutes)")
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 1 || n > 1_000_000 {
		return 0, bad(expr, "the rate's value %q must be a whole number from 1", f[0])
	}
	unit, plural := strings.CutSuffix(f[1], "s")
	d, ok := rateUnits[unit]
	if !ok {
		return 0, bad(expr, "the rate's unit %q must be second(s), minute(s), hour(s) or day(s)", f[1])
	}
	if plural != (n != 1) {
		want := unit
		if n != 1 {
			want += "s"
		}
		return 0, bad(expr, "say %d %s, not %d %s", n, want, n, f[1])
	}
	return time.Duration(n) * d, nil
}

// field is one cron field's rules: its range and what else it allows.
type field struct {
	name     string
	min, max int
	names    []string // names for min, min+1, …
	special  string   // characters beyond , - * /
}

var (
	months   = []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}
	weekdays = []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}
	fields   = []field{
		{name: "minutes", min: 0, max: 59},
		{name: "hours", min: 0, max: 23},
		{name: "day-of-month", min: 1, max: 31, special: "?LW"},
		{name: "month", min: 1, max: 12, names: months},
		{name: "day-of-week", min: 1, max: 7, names: weekdays, special: "?L#"},
		{name: "year", min: 1970, max: 2199},
	}
	// a value, or a range, with an optional step; or *, or * with a step.
	termRe = regexp.MustCompile(`^(\*|[0-9A-Z]+(?:-[0-9A-Z]+)?)(?:/([0-9]+))?$`)
)

// parseCron checks AWS's six fields and returns the expression in
// gronx's form.
func parseCron(expr, body string) (string, error) {
	f := strings.Fields(strings.ToUpper(body))
	if len(f) != 6 {
		return "", bad(expr, "cron() takes six fields: minutes hours day-of-month month day-of-week year (got %d)", len(f))
	}
	dom, dow := f[2], f[4]
	if (dom == "?") == (dow == "?") {
		return "", bad(expr, "one of day-of-month and day-of-week must be ?, and only one")
	}
	for i, fl := range fields {
		if err := fl.check(f[i]); err != nil {
			return "", bad(expr, "%s %q: %v", fl.name, f[i], err)
		}
	}
	f[4] = gronxWeekday(dow)
	// Seven fields (seconds first) so gronx reads the sixth as the year
	// even when it is *.
	return "0 " + strings.Join(f, " "), nil
}

// check validates one field's value against AWS's rules for it.
func (fl field) check(v string) error {
	if v == "?" {
		if !strings.Contains(fl.special, "?") {
			return fmt.Errorf("? is only for day-of-month or day-of-week")
		}
		return nil
	}
	for term := range strings.SplitSeq(v, ",") {
		if err := fl.checkTerm(term); err != nil {
			return err
		}
	}
	return nil
}

func (fl field) checkTerm(term string) error {
	switch {
	case strings.Contains(fl.special, "L") && fl.name == "day-of-month" && (term == "L" || term == "LW"):
		return nil
	case strings.Contains(fl.special, "W") && strings.HasSuffix(term, "W"):
		return fl.checkValue(strings.TrimSuffix(term, "W"))
	case fl.name == "day-of-week" && strings.HasSuffix(term, "L"):
		if term == "L" {
			return nil
		}
		return fl.checkValue(strings.TrimSuffix(term, "L"))
	case strings.Contains(fl.special, "#") && strings.Contains(term, "#"):
		day, nth, _ := strings.Cut(term, "#")
		if n, err := strconv.Atoi(nth); err != nil || n < 1 || n > 5 {
			return fmt.Errorf("the week in %s must be 1 to 5", term)
		}
		return fl.checkValue(day)
	}
	m := termRe.FindStringSubmatch(term)
	if m == nil {
		return fmt.Errorf("%q is not a value, a range, * or a step", term)
	}
	if m[2] != "" {
		if fl.name == "day-of-week" {
			return fmt.Errorf("day-of-week takes no step (/)")
		}
		if step, err := strconv.Atoi(m[2]); err != nil || step < 1 || step > fl.max {
			return fmt.Errorf("the step in %s must be 1 to %d", term, fl.max)
		}
	}
	if m[1] == "*" {
		return nil
	}
	lo, hi, isRange := strings.Cut(m[1], "-")
	if err := fl.checkValue(lo); err != nil {
		return err
	}
	if isRange {
		return fl.checkValue(hi)
	}
	return nil
}

func (fl field) checkValue(v string) error {
	if _, ok := fl.value(v); !ok {
		if fl.names != nil {
			return fmt.Errorf("%q is out of range (%d-%d or %s-%s)", v, fl.min, fl.max, fl.names[0], fl.names[len(fl.names)-1])
		}
		return fmt.Errorf("%q is out of range (%d-%d)", v, fl.min, fl.max)
	}
	return nil
}

func (fl field) value(v string) (int, bool) {
	for i, n := range fl.names {
		if v == n {
			return fl.min + i, true
		}
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= fl.min && n <= fl.max
}

var number = regexp.MustCompile(`[0-9]+`)

// gronxWeekday renumbers AWS's day-of-week numbers (1 = Sunday … 7 =
// Saturday) to cron's (0 = Sunday … 6), which gronx uses; names stay, and
// so does the week of N#W.
func gronxWeekday(dow string) string {
	terms := strings.Split(dow, ",")
	for i, term := range terms {
		day, nth, hasNth := strings.Cut(term, "#")
		day = number.ReplaceAllStringFunc(day, func(n string) string {
			v, _ := strconv.Atoi(n)
			return strconv.Itoa(v - 1)
		})
		if hasNth {
			day += "#" + nth
		}
		terms[i] = day
	}
	return strings.Join(terms, ",")
}

// Next is the first firing strictly after t, and false when there is
// none (a one-time schedule past its moment, a cron past its years). A
// rate counts its periods from anchor (when the schedule was created).
func (s Schedule) Next(t, anchor time.Time) (time.Time, bool) {
	switch s.Kind {
	case Rate: // anchor + k·every, k ≥ 1
		n := time.Duration(1)
		if !t.Before(anchor) {
			n = t.Sub(anchor)/s.every + 1
		}
		return anchor.Add(n * s.every), true
	case At:
		return s.at, s.at.After(t)
	default:
		next, err := gronx.NextTickAfter(s.cron, t.In(s.Loc), false)
		if err != nil || !next.After(t) {
			return time.Time{}, false
		}
		return next, true
	}
}

// Last is the latest firing at or before t, and false when none is (a
// rate before its first period, an at() still ahead, a cron before its
// years).
func (s Schedule) Last(t, anchor time.Time) (time.Time, bool) {
	switch s.Kind {
	case Rate:
		n := t.Sub(anchor) / s.every
		if n < 1 {
			return time.Time{}, false
		}
		return anchor.Add(n * s.every), true
	case At:
		return s.at, !s.at.After(t)
	default:
		prev, err := gronx.PrevTickBefore(s.cron, t.In(s.Loc), true)
		if err != nil || prev.After(t) || prev.IsZero() {
			return time.Time{}, false
		}
		return prev, true
	}
}
