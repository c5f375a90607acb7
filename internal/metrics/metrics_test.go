package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestInvocationAndForget(t *testing.T) {
	m := New(Sources{Concurrent: func() int { return 3 }, Async: func() map[string]int64 { return map[string]int64{"accepted": 7} }})
	m.Invocation("f", "$LATEST", Success, 5*time.Millisecond, 100*time.Millisecond, true)
	m.Invocation("f", "$LATEST", Success, 2*time.Millisecond, 0, false)
	m.Invocation("f", "1", Throttle, 0, 0, false)
	m.Invocation("g", "$LATEST", FunctionError, time.Millisecond, 0, false)
	m.Forget("g")
	text := scrape(t, m)
	for _, want := range []string{
		`owl_invocations_total{function="f",outcome="success",version="$LATEST"} 2`,
		`owl_invocations_total{function="f",outcome="throttle",version="1"} 1`,
		`owl_cold_starts_total{function="f"} 1`,
		`owl_invocation_duration_seconds_count{function="f"} 2`,
		`owl_init_duration_seconds_count{function="f"} 1`,
		`owl_concurrent_executions 3`,
		`owl_async_events_total{event="accepted"} 7`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, `function="g"`) {
		t.Errorf("a forgotten function's series remain:\n%s", text)
	}
}

func scrape(t testing.TB, m *Metrics) string {
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// BenchmarkInvocation is what metrics add to each warm invocation (an
// Observer call); compare it with a warm invoke's p50 (BenchmarkFunctionURL's
// direct-invoke).
//
//	go test -run '^$' -bench BenchmarkInvocation ./internal/metrics
func BenchmarkInvocation(b *testing.B) {
	m := New(Sources{})
	b.ReportAllocs()
	for b.Loop() {
		m.Invocation("bench", "$LATEST", Success, 3*time.Millisecond, 0, false)
	}
}
