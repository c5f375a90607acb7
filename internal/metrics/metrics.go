// Package metrics owns Owl's Prometheus metrics: the collectors of what
// each invocation did (counted by the worker through Observer) and the
// gauges and counters read from the node's parts when scraped (their
// Stats), served in the Prometheus exposition format by Handler
// (prometheus/client_golang).
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Outcomes of an invocation.
const (
	Success       = "success"
	FunctionError = "function_error"
	Timeout       = "timeout"
	Throttle      = "throttle"
	InitError     = "init_error"
)

// Sources are what the scrape reads from the node's parts (nil fields
// are left out).
type Sources struct {
	// Environments by state (busy, idle, frozen, prewarmed) and the
	// invocations running.
	Environments func() map[string]int
	// FunctionEnvironments are each function's environments by state
	// (starting, busy, idle, frozen, and provisioned among them).
	FunctionEnvironments func() map[string]map[string]int
	Concurrent           func() int
	// MemoryBudget and MemoryUsed are the sandboxes' budget and what
	// their environments reserve, in bytes.
	MemoryBudget, MemoryUsed func() int64
	// Async are the asynchronous invocation counters.
	Async func() map[string]int64
	// Queue is the asynchronous invocations stored and not yet finished
	// and how long the oldest of them has waited, in seconds (0: none),
	// read together.
	Queue func() (depth, oldestAge float64)
	// Triggers are schedule firings, missed firings and subject batches.
	Triggers func() map[string]int64
	// TraceSpansDropped is how many spans were never exported (the
	// export queue was full, or the OTLP endpoint did not take them).
	TraceSpansDropped func() int64
	// Nodes counts the cluster's nodes by health (ok, draining,
	// unhealthy, lost, incompatible); nil outside a cluster.
	Nodes func() map[string]int
	// Placements counts what placement did (cluster.Placer.Stats); nil
	// outside a cluster.
	Placements func() map[string]int64
}

// Metrics is the node's registry of metrics.
type Metrics struct {
	reg         *prometheus.Registry
	invocations *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	initDur     *prometheus.HistogramVec
	coldStarts  *prometheus.CounterVec
}

// New makes the registry, with the Go runtime's and the process's own
// collectors, and reads src at each scrape.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "owl_invocations_total",
			Help: "Invocations by function, version and outcome (success, function_error, timeout, throttle, init_error).",
		}, []string{"function", "version", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "owl_invocation_duration_seconds",
			Help:    "How long invocations ran in the function (its handler; not the init).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9), // 1 ms to 65 s
		}, []string{"function"}),
		initDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "owl_init_duration_seconds",
			Help:    "How long cold starts took to initialise the runtime and the function.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 8), // 5 ms to 11 s
		}, []string{"function"}),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "owl_cold_starts_total",
			Help: "Invocations that started a new execution environment.",
		}, []string{"function"}),
	}
	reg.MustRegister(m.invocations, m.duration, m.initDur, m.coldStarts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(sourceCollector{src})
	return m
}

// Invocation records one invocation of function's version: its outcome,
// how long the handler ran, and a cold start's init (cold false: warm).
func (m *Metrics) Invocation(function, version, outcome string, dur, initDur time.Duration, cold bool) {
	m.invocations.WithLabelValues(function, version, outcome).Inc()
	if outcome == Throttle || outcome == InitError {
		return
	}
	m.duration.WithLabelValues(function).Observe(dur.Seconds())
	if cold {
		m.coldStarts.WithLabelValues(function).Inc()
		m.initDur.WithLabelValues(function).Observe(initDur.Seconds())
	}
}

// Forget drops a deleted function's series.
func (m *Metrics) Forget(function string) {
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.invocations, m.duration, m.initDur, m.coldStarts} {
		v.DeletePartialMatch(prometheus.Labels{"function": function})
	}
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// sourceCollector reads Sources at each scrape.
type sourceCollector struct{ src Sources }

var (
	envDesc      = prometheus.NewDesc("owl_environments", "Execution environments by state.", []string{"state"}, nil)
	fnEnvDesc    = prometheus.NewDesc("owl_function_environments", "A function's execution environments by state (starting, busy, idle, frozen; provisioned counts those of them that are provisioned).", []string{"function", "state"}, nil)
	concDesc     = prometheus.NewDesc("owl_concurrent_executions", "Invocations running now.", nil, nil)
	budgetDesc   = prometheus.NewDesc("owl_memory_budget_bytes", "Memory the sandboxes may use together.", nil, nil)
	usedDesc     = prometheus.NewDesc("owl_memory_reserved_bytes", "Memory the execution environments reserve.", nil, nil)
	asyncDesc    = prometheus.NewDesc("owl_async_events_total", "Asynchronous invocation events by what happened to them (accepted, delivered, retried, throttled, dropped, destined, loops).", []string{"event"}, nil)
	queueDesc    = prometheus.NewDesc("owl_async_queue_depth", "Asynchronous invocations stored and not yet finished.", nil, nil)
	oldestDesc   = prometheus.NewDesc("owl_async_queue_oldest_age_seconds", "How long the oldest asynchronous invocation stored and not yet finished has waited (0: none).", nil, nil)
	triggersDesc = prometheus.NewDesc("owl_trigger_events_total", "Trigger activity by kind (schedule firings and missed firings, subject batches, filtered and failed messages).", []string{"event"}, nil)
	droppedDesc  = prometheus.NewDesc("owl_trace_spans_dropped_total", "Spans never exported to the OTLP endpoint: its queue was full, or the endpoint did not take them.", nil, nil)
	nodesDesc    = prometheus.NewDesc("owl_cluster_nodes", "The cluster's nodes this node knows of, by health (ok, draining, unhealthy, lost, incompatible).", []string{"health"}, nil)
	placedDesc   = prometheus.NewDesc("owl_placements_total", "Invocations this node placed: run here (local), sent to another node (forwarded), sent on to the next node (redirected), failed as their node stopped (node_lost), or with no node to run them (no_node).", []string{"outcome"}, nil)
)

// nodeHealths are the healths owl_cluster_nodes reports (0 when none).
var nodeHealths = []string{"ok", "draining", "unhealthy", "lost", "incompatible"}

// functionEnvStates are the states owl_function_environments reports for
// every function that has an environment (0 when none is in it).
var functionEnvStates = []string{"starting", "busy", "idle", "frozen", "provisioned"}

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{envDesc, fnEnvDesc, concDesc, budgetDesc, usedDesc, asyncDesc, queueDesc, oldestDesc, triggersDesc, droppedDesc, nodesDesc, placedDesc} {
		ch <- d
	}
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src
	if s.FunctionEnvironments != nil {
		for fn, states := range s.FunctionEnvironments() {
			for _, state := range functionEnvStates {
				ch <- prometheus.MustNewConstMetric(fnEnvDesc, prometheus.GaugeValue, float64(states[state]), fn, state)
			}
		}
	}
	if s.Environments != nil {
		for state, n := range s.Environments() {
			ch <- prometheus.MustNewConstMetric(envDesc, prometheus.GaugeValue, float64(n), state)
		}
	}
	if s.Concurrent != nil {
		ch <- prometheus.MustNewConstMetric(concDesc, prometheus.GaugeValue, float64(s.Concurrent()))
	}
	if s.MemoryBudget != nil {
		ch <- prometheus.MustNewConstMetric(budgetDesc, prometheus.GaugeValue, float64(s.MemoryBudget()))
	}
	if s.MemoryUsed != nil {
		ch <- prometheus.MustNewConstMetric(usedDesc, prometheus.GaugeValue, float64(s.MemoryUsed()))
	}
	if s.Async != nil {
		for event, n := range s.Async() {
			ch <- prometheus.MustNewConstMetric(asyncDesc, prometheus.CounterValue, float64(n), event)
		}
	}
	if s.Queue != nil {
		depth, age := s.Queue()
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, depth)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age)
	}
	if s.Triggers != nil {
		for event, n := range s.Triggers() {
			ch <- prometheus.MustNewConstMetric(triggersDesc, prometheus.CounterValue, float64(n), event)
		}
	}
	if s.TraceSpansDropped != nil {
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(s.TraceSpansDropped()))
	}
	c.collectCluster(ch)
}

// collectCluster reads the cluster's sources.
func (c sourceCollector) collectCluster(ch chan<- prometheus.Metric) {
	if c.src.Nodes != nil {
		by := c.src.Nodes()
		for _, h := range nodeHealths {
			ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(by[h]), h)
		}
	}
	if c.src.Placements != nil {
		for outcome, n := range c.src.Placements() {
			ch <- prometheus.MustNewConstMetric(placedDesc, prometheus.CounterValue, float64(n), outcome)
		}
	}
}
