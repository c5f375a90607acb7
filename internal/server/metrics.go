package server

import (
	"context"
	"time"

	"github.com/owl-project/owl/internal/metrics"
	"github.com/owl-project/owl/internal/usage"
	"github.com/owl-project/owl/internal/worker"
)

// invocationObserver tells the metrics and the usage sums of every
// invocation the worker ends.
type invocationObserver struct {
	m *metrics.Metrics
	u *usage.Recorder
}

func (o invocationObserver) Invocation(inv worker.Invocation) {
	o.m.Invocation(inv.Function, inv.Version, inv.Outcome, inv.Duration, inv.InitDuration, inv.Cold)
	if inv.BilledMs > 0 { // a throttled invocation never ran: nothing to bill
		o.u.Record(inv.Function, inv.MemoryMB, inv.BilledMs, inv.Outcome != metrics.Success, time.Now())
	}
}

// newMetrics makes the node's metrics, reading its parts at each scrape
// (they exist by the time anything scrapes: after New).
func newMetrics(s *Server) *metrics.Metrics {
	src := metrics.Sources{
		// A closure: the worker is made after the metrics.
		FunctionEnvironments: func() map[string]map[string]int { return s.worker.FunctionEnvironments() },
		Environments: func() map[string]int {
			st := s.worker.Stats()
			return map[string]int{"busy": st.Environments - st.Idle, "idle": st.Idle - st.Frozen, "frozen": st.Frozen,
				"prewarmed": st.PrewarmReady}
		},
		Concurrent: func() int { return s.worker.Stats().Inflight },
		MemoryBudget: func() int64 {
			b, _ := s.worker.MemoryBytes()
			return b
		},
		MemoryUsed: func() int64 {
			_, u := s.worker.MemoryBytes()
			return u
		},
		Async: func() map[string]int64 {
			st := s.EventStats()
			return map[string]int64{"accepted": st.Accepted, "delivered": st.Delivered, "retried": st.Retried,
				"throttled": st.Throttled, "dropped": st.Dropped, "destined": st.Destined,
				"destination_failed": st.DestinationFailed, "loops": st.Loops, "replayed": st.Replayed}
		},
		Queue: func() (float64, float64) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, oldest, err := s.events.Backlog(ctx)
			if err != nil || oldest.IsZero() {
				return float64(n), 0
			}
			return float64(n), max(0, time.Since(oldest).Seconds())
		},
		Triggers: func() map[string]int64 {
			t, src := s.sched.Stats(), s.sources.Stats()
			return map[string]int64{"schedule_fired": t.Fired, "schedule_missed": t.Missed, "schedule_stopped": t.Stopped,
				"subject_batches": src.Batches, "subject_filtered": src.Filtered, "subject_failed": src.Failed,
				"subject_loops": src.Loops}
		},
		TraceSpansDropped: s.tracer.Dropped,
	}
	if clustered(s.cfg) {
		// Closures: the membership and the placer are made after the
		// metrics.
		src.Nodes = func() map[string]int {
			by := map[string]int{}
			for _, n := range s.members.Nodes() {
				by[n.Health]++
			}
			return by
		}
		src.Placements = func() map[string]int64 { return s.placer.Stats() }
	}
	return metrics.New(src)
}
