package lambdaapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HealthProblem is one failed health check.
type HealthProblem struct {
	// Check is the public name of what failed ("nats", "jetstream",
	// "sandbox", "disk"): the only thing /healthz reveals.
	Check string
	// Err says why, for the server's log only.
	Err error
}

// HealthFunc reports what keeps the node from serving; nil or empty when
// it is ready. It must be cheap and honour ctx: probes call it often.
type HealthFunc func(ctx context.Context) []HealthProblem

const (
	// healthTimeout bounds one run of the health checks.
	healthTimeout = 2 * time.Second
	// healthCacheTTL is how long a result answers further probes:
	// unauthenticated clients cannot make the checks run more often.
	healthCacheTTL = 500 * time.Millisecond
)

func newHealth(check HealthFunc, logger *slog.Logger) *health {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &health{check: check, logger: logger, ttl: healthCacheTTL}
}

// health serves GET and HEAD /healthz without authentication: 200
// {"status":"ok"} when the node is live and ready, 503
// {"status":"unavailable","failed":[...]} naming the failed checks and
// nothing else. Probes are not logged; a change of the outcome is (WARN
// when it turns unhealthy, INFO when it recovers).
type health struct {
	check  HealthFunc
	logger *slog.Logger
	ttl    time.Duration // healthCacheTTL

	mu      sync.Mutex // guards the fields below; one check runs at a time
	at      time.Time  // when failed was computed
	failed  []string   // names of the failed checks; nil when healthy
	wasSick bool       // the last logged outcome was unhealthy
}

func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"status": "method not allowed"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	failed := h.run(r.Context())
	status, body := http.StatusOK, []byte(`{"status":"ok"}`)
	if len(failed) > 0 {
		status = http.StatusServiceUnavailable
		body, _ = json.Marshal(struct {
			Status string   `json:"status"`
			Failed []string `json:"failed"`
		}{"unavailable", failed})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// run returns the names of the failed checks, from the cache when fresh.
func (h *health) run(ctx context.Context) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.at.IsZero() && time.Since(h.at) < h.ttl {
		return h.failed
	}
	var problems []HealthProblem
	if h.check != nil {
		ctx, cancel := context.WithTimeout(ctx, healthTimeout)
		problems = h.check(ctx)
		cancel()
	}
	h.failed, h.at = nil, time.Now()
	for _, p := range problems {
		h.failed = append(h.failed, p.Check)
	}
	switch sick := len(problems) > 0; {
	case sick && !h.wasSick:
		var b strings.Builder
		for i, p := range problems {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(p.Check + ": " + errText(p.Err))
		}
		h.logger.Warn("health check failing: /healthz answers 503", "failed", b.String())
	case !sick && h.wasSick:
		h.logger.Info("health check passing again: /healthz answers 200")
	}
	h.wasSick = len(problems) > 0
	return h.failed
}

func errText(err error) string {
	if err == nil {
		return "failed"
	}
	return err.Error()
}
