package bench

import (
	"encoding/json"
	"math"
	"slices"
	"time"
)

// Summary describes a set of latencies. Percentiles use the nearest-rank
// method: Percentile(p) is the smallest sample that at least p% of the
// samples are less than or equal to, so every reported figure is a latency
// that was actually measured.
type Summary struct {
	Count int
	Min   time.Duration
	Mean  time.Duration
	P50   time.Duration
	P90   time.Duration
	P99   time.Duration
	P999  time.Duration
	Max   time.Duration
}

// Summarize computes the Summary of samples. It sorts samples in place.
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	slices.Sort(samples)
	var sum float64
	for _, d := range samples {
		sum += float64(d)
	}
	return Summary{
		Count: len(samples),
		Min:   samples[0],
		Mean:  time.Duration(math.Round(sum / float64(len(samples)))),
		P50:   Percentile(samples, 50),
		P90:   Percentile(samples, 90),
		P99:   Percentile(samples, 99),
		P999:  Percentile(samples, 99.9),
		Max:   samples[len(samples)-1],
	}
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method; 0 for no samples. p <= 0 gives the minimum.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The rank is ceil(p/100 * n); the small epsilon keeps float error from
	// turning an exact rank (p50 of 10 samples is rank 5) into the next one.
	rank := int(math.Ceil(p/100*float64(n) - 1e-9))
	return sorted[min(max(rank, 1), n)-1]
}

// summaryJSON is Summary on the wire: microseconds, as floats.
type summaryJSON struct {
	Count  int     `json:"count"`
	MinUS  float64 `json:"min_us"`
	MeanUS float64 `json:"mean_us"`
	P50US  float64 `json:"p50_us"`
	P90US  float64 `json:"p90_us"`
	P99US  float64 `json:"p99_us"`
	P999US float64 `json:"p999_us"`
	MaxUS  float64 `json:"max_us"`
}

func micros(d time.Duration) float64 { return math.Round(float64(d)/1e1) / 1e2 }

func fromMicros(us float64) time.Duration { return time.Duration(math.Round(us * 1e3)) }

// MarshalJSON writes the summary in microseconds.
func (s Summary) MarshalJSON() ([]byte, error) {
	return json.Marshal(summaryJSON{
		Count: s.Count, MinUS: micros(s.Min), MeanUS: micros(s.Mean), P50US: micros(s.P50),
		P90US: micros(s.P90), P99US: micros(s.P99), P999US: micros(s.P999), MaxUS: micros(s.Max),
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Summary) UnmarshalJSON(b []byte) error {
	var j summaryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Summary{
		Count: j.Count, Min: fromMicros(j.MinUS), Mean: fromMicros(j.MeanUS), P50: fromMicros(j.P50US),
		P90: fromMicros(j.P90US), P99: fromMicros(j.P99US), P999: fromMicros(j.P999US), Max: fromMicros(j.MaxUS),
	}
	return nil
}
