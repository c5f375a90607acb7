package tracing

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// TestOff: with no endpoint and no OTEL_EXPORTER_OTLP_* variable there is
// no tracer, and a nil one does nothing.
func TestOff(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tr, err := New(context.Background(), Options{})
	if err != nil || tr != nil {
		t.Fatalf("New without an endpoint: %v, %v", tr, err)
	}
	ctx := tr.WithParent(context.Background(), NewHeader())
	_, span := tr.Start(ctx, "x", trace.SpanKindServer)
	span.End()
	tr.Record(ctx, "y", time.Now(), time.Now())
	if span.IsRecording() || tr.Enabled() || tr.Dropped() != 0 || tr.Shutdown(ctx) != nil || tr.Header("h", span) != "h" {
		t.Error("a nil tracer did something")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	if Configured("") {
		t.Error("OTEL_TRACES_EXPORTER=none left export on")
	}
}

// TestEnvironment: the standard variables alone turn export on and say
// where to and with which headers.
func TestEnvironment(t *testing.T) {
	var mu sync.Mutex
	var paths, auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths, auths = append(paths, r.URL.Path), append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20secret")
	tr, err := New(context.Background(), Options{})
	if err != nil || tr == nil {
		t.Fatalf("New: %v, %v", tr, err)
	}
	_, span := tr.Start(tr.WithParent(context.Background(), NewHeader()), "x", trace.SpanKindServer)
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/v1/traces" || auths[0] != "Bearer secret" {
		t.Errorf("the endpoint got %q with %q", paths, auths)
	}
	if tr.Dropped() != 0 {
		t.Errorf("%d spans dropped", tr.Dropped())
	}
}

// TestDropsCounted: past the queue's bound spans are dropped at once,
// never waited for, and counted; so are those an endpoint that is down
// did not take.
func TestDropsCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there
	tr, err := New(context.Background(), Options{Endpoint: "http://" + addr, QueueSize: 2})
	if err != nil || tr == nil {
		t.Fatalf("New: %v, %v", tr, err)
	}
	ctx := tr.WithParent(context.Background(), NewHeader())
	for range 10 {
		_, span := tr.Start(ctx, "x", trace.SpanKindInternal)
		span.End()
	}
	if n := tr.Dropped(); n != 8 {
		t.Errorf("%d dropped past a queue of 2, want 8", n)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = tr.Shutdown(sctx) // the last two fail to go out
	if n := tr.Dropped(); n != 10 {
		t.Errorf("%d dropped in all, want 10", n)
	}
}
