package lambdawire

// HistoryReport answers GET /owl/v1/metrics/history: a function's (or,
// without one, every function's) invocation metrics over a time range,
// one point per step from Start, oldest first, every step present (a
// quiet one is zeros). The samples are recorded every IntervalSeconds,
// so the last, still open interval is not in it yet.
type HistoryReport struct {
	// Function is the function asked for; empty: the sum of all.
	Function string `json:"Function,omitempty"`
	// Start is the first point's start (RFC 3339, UTC): the range's
	// since, rounded down to a whole step.
	Start           string         `json:"Start"`
	StepSeconds     int64          `json:"StepSeconds"`
	IntervalSeconds int64          `json:"IntervalSeconds"`
	Points          []HistoryPoint `json:"Points"`
}

// HistoryPoint is what happened in one step: invocations (throttled
// ones included, as in owl_invocations_total), those that ended in an
// error (a function error, a timeout or an init failure), throttles,
// cold starts, the duration's quantiles (interpolated in power-of-two
// millisecond buckets, as Prometheus' histogram_quantile; absent without
// an invocation that ran) and the average concurrency (the invocations'
// summed durations over the step's length).
type HistoryPoint struct {
	Time          string   `json:"Time"`
	Invocations   int64    `json:"Invocations"`
	Errors        int64    `json:"Errors"`
	Throttles     int64    `json:"Throttles"`
	ColdStarts    int64    `json:"ColdStarts"`
	DurationP50Ms *float64 `json:"DurationP50Ms,omitempty"`
	DurationP99Ms *float64 `json:"DurationP99Ms,omitempty"`
	Concurrency   float64  `json:"Concurrency"`
}
