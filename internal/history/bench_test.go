package history_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/history"
	"github.com/owl-project/owl/internal/testkit/natstest"
)

// BenchmarkSample is the recorder's cost per sampling interval with N
// active functions (each with four invocations of different durations
// in the interval): the CPU of gathering and writing their samples (µs/fn
// per interval), and what a function active in every 10 s interval
// stores (B/sample; MB/fn/day: a day of its samples and rollups).
func BenchmarkSample(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("functions=%d", n), func(b *testing.B) {
			bus := natstest.Start(b)
			ctx := context.Background()
			r := openWith(b, ctx, bus, history.Options{Node: "bench", Interval: time.Hour})
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("function-%04d", i)
			}
			b.ResetTimer()
			for b.Loop() {
				for _, fn := range names {
					for j := 1; j <= 4; j++ {
						r.Observe(history.Observation{Function: fn, Duration: time.Duration(j*j) * 3 * time.Millisecond, Cold: j == 1})
					}
				}
				r.Sample(ctx)
			}
			b.StopTimer()
			s, err := bus.JS.Stream(ctx, history.Stream)
			if err != nil {
				b.Fatal(err)
			}
			info, err := s.Info(ctx)
			if err != nil {
				b.Fatal(err)
			}
			per := float64(info.State.Bytes) / float64(info.State.Msgs)
			b.ReportMetric(per, "B/sample")
			b.ReportMetric(per*(86400/10+86400/300)/1e6, "MB/fn/day")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/fn")
		})
	}
}

// BenchmarkPublishBaseline is the floor BenchmarkSample stands on, in
// the same run: publishing N+1 messages of a sample's size to a
// JetStream stream and awaiting their acknowledgements, nothing else.
func BenchmarkPublishBaseline(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("functions=%d", n), func(b *testing.B) {
			bus := natstest.Start(b)
			ctx := context.Background()
			if _, err := bus.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "BASELINE", Subjects: []string{"baseline.>"}}); err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 100) // a sample's JSON, about
			subjects := make([]string, n+1)
			for i := range subjects {
				subjects[i] = fmt.Sprintf("baseline.fn.bench.function-%04d", i)
			}
			for b.Loop() {
				futures := make([]jetstream.PubAckFuture, 0, len(subjects))
				for _, s := range subjects {
					f, err := bus.JS.PublishAsync(s, data)
					if err != nil {
						b.Fatal(err)
					}
					futures = append(futures, f)
				}
				for _, f := range futures {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/fn")
		})
	}
}

// BenchmarkQueryDay is one chart of a day of a function active in every
// 10 s interval (with another function beside it): by 4 minutes it
// reads the day's 8640 samples, by 5 minutes its 288 rollups. A week's
// chart reads 7 times the rollups. (The chart is of the day before the
// last hour: its samples were all written in the benchmark's first
// seconds, so reading the last minutes' samples, which JetStream finds
// by the time they were written, would read them all.)
func BenchmarkQueryDay(b *testing.B) {
	bus := natstest.Start(b)
	ctx := context.Background()
	r := openWith(b, ctx, bus, history.Options{Node: "bench", Interval: 10 * time.Second})
	since := time.Now().Truncate(history.RollupPeriod).Add(-24 * time.Hour)
	now := since
	r.SetClock(func() time.Time { return now })
	const samples = 8640
	for i := 0; i < samples; i++ {
		r.Observe(history.Observation{Function: "busy", Duration: time.Duration(i%50) * time.Millisecond})
		r.Observe(history.Observation{Function: "other", Duration: time.Millisecond})
		now = now.Add(10 * time.Second)
		r.Sample(ctx)
	}
	until := now
	now = now.Add(time.Hour)
	for _, step := range []time.Duration{4 * time.Minute, history.RollupPeriod} {
		b.Run("step="+step.String(), func(b *testing.B) {
			for b.Loop() {
				rep, err := r.Query(ctx, "busy", since, until, step)
				if err != nil {
					b.Fatal(err)
				}
				var n int64
				for _, p := range rep.Points {
					n += p.Invocations
				}
				if n != samples {
					b.Fatalf("read %d invocations, want %d", n, samples)
				}
			}
		})
	}
}
