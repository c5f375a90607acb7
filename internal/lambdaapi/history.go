package lambdaapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/owl-project/owl/internal/history"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
)

// History answers metric history queries (internal/history): samples
// and rollups summed per step over a range.
type History interface {
	// FinestStep is the finest step a range from since may ask for;
	// Rollup the period of the rollups (0: none).
	FinestStep(since time.Time) time.Duration
	Rollup() time.Duration
	Query(ctx context.Context, function string, since, until time.Time, step time.Duration) (lambdawire.HistoryReport, error)
}

// defaultHistoryPoints is how many points a query without a step gets.
const defaultHistoryPoints = 360

// getHistory is GET /owl/v1/metrics/history?function=&since=&until=&step=:
// since is an RFC 3339 time or a duration back from now ("24h"; default
// 1h), until an RFC 3339 time (default now), step a duration ("1m") or
// seconds, at least the sampling interval (the rollups' 5 minutes for a
// range older than the samples) and at most history.MaxPoints steps in
// the range (default: the range in about 360 steps, whole intervals, or
// whole rollups from 2.5 minutes on).
func (a *API) getHistory(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if a.opts.History == nil {
		return lambdaerr.New(lambdaerr.UnknownOperation, "Metric history is not kept on this node.")
	}
	q := r.URL.Query()
	function, err := functionParam(q.Get("function"))
	if err != nil {
		return err
	}
	if function != "" {
		if _, err := a.reg.Get(r.Context(), function); err != nil {
			return err
		}
	}
	now := time.Now()
	since, until, err := historyRange(q.Get("since"), q.Get("until"), now)
	if err != nil {
		return err
	}
	step, err := historyStep(q.Get("step"), until.Sub(since), a.opts.History.FinestStep(since), a.opts.History.Rollup())
	if err != nil {
		return err
	}
	rep, err := a.opts.History.Query(r.Context(), function, since, until, step)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// historyRange parses a history query's since and until.
func historyRange(sinceArg, untilArg string, now time.Time) (since, until time.Time, err error) {
	until = now
	if untilArg != "" {
		if until, err = timeParam(untilArg, "until"); err != nil {
			return since, until, err
		}
	}
	since = now.Add(-time.Hour)
	if sinceArg != "" {
		if d, derr := time.ParseDuration(sinceArg); derr == nil {
			if d <= 0 {
				return since, until, lambdaerr.New(lambdaerr.InvalidParameterValue, "since %q: a duration back from now must be positive.", sinceArg)
			}
			since = now.Add(-d)
		} else if since, err = timeParam(sinceArg, "since"); err != nil {
			return since, until, lambdaerr.New(lambdaerr.InvalidParameterValue,
				"since %q is neither an RFC 3339 time (2026-12-06T08:00:00Z) nor a duration back from now (24h).", sinceArg)
		}
	}
	if !until.After(since) {
		return since, until, lambdaerr.New(lambdaerr.InvalidParameterValue, "The range is empty: until %s is not after since %s.",
			until.UTC().Format(time.RFC3339), since.UTC().Format(time.RFC3339))
	}
	if since.After(now) {
		return since, until, lambdaerr.New(lambdaerr.InvalidParameterValue, "since %s is in the future.", since.UTC().Format(time.RFC3339))
	}
	return since, until, nil
}

// historyStep parses a history query's step, or picks one for span.
func historyStep(arg string, span, finest, rollup time.Duration) (time.Duration, error) {
	if arg == "" {
		step := max((span/defaultHistoryPoints+finest-1)/finest*finest, finest)
		if rollup > 0 && step > rollup/2 {
			step = (step + rollup - 1) / rollup * rollup
		}
		return step, nil
	}
	step, err := time.ParseDuration(arg)
	if err != nil {
		n, nerr := strconv.ParseInt(arg, 10, 64)
		if nerr != nil || n > int64(365*24*time.Hour/time.Second) {
			return 0, lambdaerr.New(lambdaerr.InvalidParameterValue, "step %q is neither a duration (1m) nor a number of seconds.", arg)
		}
		step = time.Duration(n) * time.Second
	}
	if step < finest {
		return 0, lambdaerr.New(lambdaerr.InvalidParameterValue,
			"step %v is finer than the history of this range: it is kept by %v (--metric-history-interval; 5 min rollups past %v).",
			step, finest, history.SampleAge)
	}
	if span/step+1 > history.MaxPoints {
		return 0, lambdaerr.New(lambdaerr.InvalidParameterValue,
			"step %v is too small for a range of %v: at most %d points; use a step of at least %v.",
			step, span.Round(time.Second), history.MaxPoints, (span/(history.MaxPoints-1)).Round(time.Second)+time.Second)
	}
	return step, nil
}
