package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/owl-project/owl/internal/config"
)

// BenchmarkTracing measures what tracing costs a warm invocation: two
// servers in one run, one without an OTLP endpoint (no tracer at all) and
// one exporting every span to an OTLP/HTTP receiver in this process (which
// decodes them, on the same CPUs), each invoked with a traceparent header
// over one keep-alive connection, the two alternating call by call so that
// both see the same machine. It reports each one's p50 and p99 and the
// ratio of the p50s.
//
//	go test -run '^$' -bench BenchmarkTracing -benchtime 5000x -count 3 ./internal/server
func BenchmarkTracing(b *testing.B) {
	var received atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var in coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &in); err == nil {
			for _, rs := range in.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					received.Add(int64(len(ss.Spans)))
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(recv.Close) // after the servers' (cleanups run last first): their last spans
	off := startServer(b, "")
	on := startServer(b, "", func(c *config.Config) { c.OTLPEndpoint = recv.URL })
	calls := make([]func() time.Duration, 2)
	for i, ts := range []*testServer{off, on} {
		ts.createKitchensink("bench-trace")
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		defer hc.CloseIdleConnections()
		url := ts.URL + "/2015-03-31/functions/bench-trace/invocations"
		calls[i] = func() time.Duration {
			req, _ := http.NewRequest("POST", url, strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			start := time.Now()
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			d := time.Since(start)
			if resp.StatusCode != 200 || !strings.Contains(string(body), "hello world") {
				b.Fatalf("%d %s", resp.StatusCode, body)
			}
			return d
		}
		calls[i]() // cold
	}
	lat := [2][]time.Duration{make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)}
	b.ResetTimer()
	for n := range b.N {
		first := n % 2 // alternate which goes first
		for _, i := range []int{first, 1 - first} {
			lat[i] = append(lat[i], calls[i]())
		}
	}
	b.StopTimer()
	p := func(l []time.Duration, q int) float64 {
		slices.Sort(l)
		return float64(l[len(l)*q/100].Microseconds()) / 1000
	}
	offP50, onP50 := p(lat[0], 50), p(lat[1], 50)
	b.ReportMetric(offP50, "off-p50-ms")
	b.ReportMetric(p(lat[0], 99), "off-p99-ms")
	b.ReportMetric(onP50, "on-p50-ms")
	b.ReportMetric(p(lat[1], 99), "on-p99-ms")
	b.ReportMetric(onP50/offP50, "on/off-p50")
	b.ReportMetric(float64(received.Load()), "spans-received")
}
