package bench

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// series returns 1..n in unit, shuffled so Summarize must sort.
func series(n int, unit time.Duration) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = time.Duration(i+1) * unit
	}
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

func TestPercentileNearestRank(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample p50", []time.Duration{7 * ms}, 50, 7 * ms},
		{"one sample p99", []time.Duration{7 * ms}, 99, 7 * ms},
		{"1..10 p50 is rank 5", series(10, ms), 50, 5 * ms},
		{"1..10 p90 is rank 9", series(10, ms), 90, 9 * ms},
		{"1..10 p99 rounds up to rank 10", series(10, ms), 99, 10 * ms},
		{"1..10 p100 is the max", series(10, ms), 100, 10 * ms},
		{"1..10 p10 is rank 1", series(10, ms), 10, 1 * ms},
		{"1..10 p11 is rank 2", series(10, ms), 11, 2 * ms},
		{"1..10 p0 is the min", series(10, ms), 0, 1 * ms},
		{"1..100 p50", series(100, ms), 50, 50 * ms},
		{"1..100 p99", series(100, ms), 99, 99 * ms},
		{"1..100 p99.9", series(100, ms), 99.9, 100 * ms},
		{"1..1000 p99.9", series(1000, ms), 99.9, 999 * ms},
		{"1..3 p50 is the middle", series(3, ms), 50, 2 * ms},
		{"1..4 p50 is the lower middle", series(4, ms), 50, 2 * ms},
		{"1..4 p75", series(4, ms), 75, 3 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := slices.Clone(tt.samples)
			slices.Sort(s)
			if got := Percentile(s, tt.p); got != tt.want {
				t.Errorf("Percentile(p%g) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	us := time.Microsecond
	got := Summarize(series(1000, us))
	want := Summary{Count: 1000, Min: us, Mean: 500500 * time.Nanosecond, P50: 500 * us, P90: 900 * us,
		P99: 990 * us, P999: 999 * us, Max: 1000 * us}
	if got != want {
		t.Errorf("Summarize(1..1000µs) =\n %+v, want\n %+v", got, want)
	}
	if got := Summarize(nil); got != (Summary{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", got)
	}
	// Heavy tail: one outlier moves the max and the mean, not the median.
	s := append(slices.Repeat([]time.Duration{100 * us}, 99), 50*time.Millisecond)
	got = Summarize(s)
	if got.P50 != 100*us || got.P99 != 100*us || got.Max != 50*time.Millisecond || got.Mean != 599*us {
		t.Errorf("Summarize(99×100µs + 50ms) = %+v", got)
	}
}

func TestSummaryJSON(t *testing.T) {
	s := Summary{Count: 3, Min: 1500 * time.Nanosecond, Mean: 2 * time.Microsecond, P50: 2 * time.Microsecond,
		P90: 2500 * time.Nanosecond, P99: 3 * time.Microsecond, P999: 3 * time.Microsecond, Max: 3 * time.Microsecond}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"count":3,"min_us":1.5,"mean_us":2,"p50_us":2,"p90_us":2.5,"p99_us":3,"p999_us":3,"max_us":3}`
	if string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
	var back Summary
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != s {
		t.Errorf("round trip = %+v, want %+v", back, s)
	}
}

func BenchmarkSummarize(b *testing.B) {
	src := series(100000, time.Microsecond)
	s := make([]time.Duration, len(src))
	b.ReportAllocs()
	for b.Loop() {
		copy(s, src)
		Summarize(s)
	}
}

// BenchmarkTallyAdd is the per-invocation bookkeeping of a worker.
func BenchmarkTallyAdd(b *testing.B) {
	t := newTally(1 << 20)
	o := outcome{latency: 100 * time.Microsecond}
	b.ReportAllocs()
	for b.Loop() {
		if len(t.latencies) == cap(t.latencies) {
			t.latencies = t.latencies[:0]
		}
		t.add(o, true)
	}
}
