package server

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/diskspace"
	"github.com/owl-project/owl/internal/history"
	"github.com/owl-project/owl/internal/metrics"
	"github.com/owl-project/owl/internal/usage"
	"github.com/owl-project/owl/internal/worker"
)

// invocationObserver tells the metrics, the usage sums and the metric
// history of every invocation the worker ends.
type invocationObserver struct {
	m *metrics.Metrics
	u *usage.Recorder
	h *history.Recorder
}

func (o invocationObserver) Invocation(inv worker.Invocation) {
	o.m.Invocation(inv.Function, inv.Version, inv.Outcome, inv.Duration, inv.InitDuration, inv.Cold)
	o.h.Observe(history.Observation{Function: inv.Function, Throttled: inv.Outcome == metrics.Throttle,
		Failed:     inv.Outcome == metrics.FunctionError || inv.Outcome == metrics.Timeout,
		InitFailed: inv.Outcome == metrics.InitError, Duration: inv.Duration, Cold: inv.Cold})
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

// openHistory opens the metric history, its samples written under this
// host's name (a cluster's nodes each write their own subjects) and
// only while the disk guard has room. Unless set, its bytes are a
// sixteenth of the store's space, 4 to 256 MiB: JetStream counts a
// stream's MaxBytes against the store's size when it is created, so a
// fixed size could keep a small disk's server from starting.
func openHistory(ctx context.Context, s *Server, cfg config.Config, plan diskspace.Plan, logger *slog.Logger) (*history.Recorder, error) {
	node, err := os.Hostname()
	if err != nil {
		node = "local"
	}
	bytes := cfg.MetricHistoryBytes
	if bytes == 0 {
		bytes = min(256<<20, max(4<<20, (plan.Free+plan.StoreBytes-plan.Reserve)/16))
	}
	logger.Debug("metric history", "max_bytes", bytes, "interval", cfg.MetricHistoryInterval, "max_age", cfg.MetricHistoryAge)
	return history.Open(ctx, s.bus.JS, history.Options{Node: node, Interval: cfg.MetricHistoryInterval,
		MaxAge: cfg.MetricHistoryAge, MaxBytes: bytes, SpaceCheck: s.space.Check, Logger: logger})
}

// forgetHistory deletes a deleted function's metric history.
func (s *Server) forgetHistory(function string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.history.Forget(ctx, function); err != nil {
		s.logger.Warn("deleting a deleted function's metric history", "function", function, "err", err)
	}
}
