package runtimeapi

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/testkit"
)

// telemetryReceiver is an extension's telemetry listener: each POSTed
// batch arrives on its channel.
type telemetryReceiver struct {
	batches chan []map[string]any
	paths   chan string
}

func startReceiver(t *testing.T) (*telemetryReceiver, string) {
	t.Helper()
	rc := &telemetryReceiver{batches: make(chan []map[string]any, 16), paths: make(chan string, 16)}
	ln := testkit.Listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []map[string]any
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &batch) != nil {
			t.Errorf("telemetry request %s %s %q: %s", r.Method, r.URL, r.Header.Get("Content-Type"), b)
		}
		rc.paths <- r.URL.Path
		rc.batches <- batch
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return rc, ln.Addr().String()
}

// TestTelemetryDelivery: a subscription gets init's events from before
// it, then an invocation's platform.start, function lines,
// platform.runtimeDone and platform.report in Lambda's form, in order, at
// its path; Shutdown sends the buffer before SHUTDOWN.
func TestTelemetryDelivery(t *testing.T) {
	rc, addr := startReceiver(t)
	dialed := make(chan string, 4)
	s, c, ctx := newTestEnv(t, Config{Extensions: []string{"ext"}, Function: FunctionInfo{Name: "fn", Version: "$LATEST"},
		Dial: func(ctx context.Context, to string) (net.Conn, error) {
			dialed <- to
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}})
	s.TelemetryInitStart("on-demand")
	id := c.register(ctx, "ext", `["SHUTDOWN"]`).header.Get(hdrExtID)
	// A long timeout: nothing is sent until Shutdown flushes.
	r := c.extRequest(ctx, http.MethodPut, telemetryPath, id, nil, `{"schemaVersion":"2022-12-13","types":["platform","function"],
		"buffering":{"timeoutMs":30000},"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243/tel"}}`)
	wantStatus(t, r, http.StatusOK, "")
	if string(r.body) != `"OK"` {
		t.Fatalf("subscription answered %s", r.body)
	}
	next := c.extNextAsync(ctx, id)
	runtimeNext := c.nextAsync(ctx)
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	s.TelemetryInitDone("on-demand", "", 40*time.Millisecond)
	s.TelemetryStart("req-1", "$LATEST")
	s.TelemetryLines(TelemetryFunction, []string{"hello from the function"})
	s.TelemetryInvokeDone(InvokeReport{RequestID: "req-1", Status: "success", Duration: 1500 * time.Microsecond,
		InitDuration: 40 * time.Millisecond, BilledMs: 42, MemorySizeMB: 128, MaxMemoryUsed: 20})

	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	shut := make(chan struct{})
	go func() { s.Shutdown(sctx, ShutdownSpindown); close(shut) }()
	wantEvent(t, receive(t, next), eventShutdown)
	// The batch was sent before SHUTDOWN.
	var batch []map[string]any
	select {
	case batch = <-rc.batches:
	default:
		t.Fatal("SHUTDOWN came before the buffered telemetry")
	}
	if p := <-rc.paths; p != "/tel" {
		t.Errorf("POSTed to %s, want /tel", p)
	}
	if to := <-dialed; to != "127.0.0.1:4243" {
		t.Errorf("dialed %s, want the sandbox's loopback port 4243", to)
	}
	var types []string
	for _, ev := range batch {
		types = append(types, ev["type"].(string))
		if _, err := time.Parse(time.RFC3339Nano, ev["time"].(string)); err != nil {
			t.Errorf("time of %v: %v", ev, err)
		}
	}
	want := "platform.initStart platform.telemetrySubscription platform.initRuntimeDone platform.initReport platform.start function platform.runtimeDone platform.report"
	if got := strings.Join(types, " "); got != want {
		t.Fatalf("types %s,\nwant %s", got, want)
	}
	if rec := batch[5]["record"]; rec != "hello from the function" {
		t.Errorf("function record %v", rec)
	}
	rep := batch[7]["record"].(map[string]any)
	m := rep["metrics"].(map[string]any)
	if rep["requestId"] != "req-1" || rep["status"] != "success" || m["durationMs"] != 1.5 || m["billedDurationMs"] != 42.0 ||
		m["memorySizeMB"] != 128.0 || m["maxMemoryUsedMB"] != 20.0 || m["initDurationMs"] != 40.0 {
		t.Errorf("platform.report record %v", rep)
	}
	next = c.extNextAsync(ctx, id)
	receive(t, shut)
	t.Cleanup(func() { <-next; <-runtimeNext })
}
