package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testConfig targets srv with small counts and no warm-up, so tests can
// count every request.
func testConfig(srv *httptest.Server) Config {
	cfg := DefaultConfig()
	cfg.Endpoint, cfg.Token, cfg.Function = srv.URL, "tok", "hello"
	cfg.Requests, cfg.Warmup, cfg.Timeout = 100, 0, 10*time.Second
	return cfg
}

// connCounter counts the connections a test server accepted.
type connCounter struct{ n atomic.Int64 }

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		c.n.Add(1)
	}
}

func newServer(t testing.TB, h http.Handler) (*httptest.Server, *connCounter) {
	srv := httptest.NewUnstartedServer(h)
	cc := &connCounter{}
	srv.Config.ConnState = cc.hook
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cc
}

func TestWarmAgainstBaseline(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	inner := BaselineHandler()
	srv, conns := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")]++
		mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	cfg := testConfig(srv)
	cfg.Requests, cfg.Connections, cfg.Warmup = 1000, 4, 40
	r, err := Warm(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != 1000 || r.Errors != 0 || r.Requests != 1000 || r.Latency.Count != 1000 || r.Warmup != 40 {
		t.Errorf("result = ok %d errors %d requests %d latencies %d warm-up %d; want 1000 clean, 40 warm-up",
			r.OK, r.Errors, r.Requests, r.Latency.Count, r.Warmup)
	}
	if r.Mode != ModeWarm || r.Target != TargetOwl || r.Connections != 4 || r.Throughput <= 0 || r.Elapsed <= 0 {
		t.Errorf("result = %+v", r)
	}
	l := r.Latency
	if !(l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Min > 0) {
		t.Errorf("latency summary out of order: %+v", l)
	}
	// probe + warm-up + measured, all as an invocation with the token.
	want := fmt.Sprintf("POST %s Bearer tok", InvokePath("hello"))
	if len(seen) != 1 || seen[want] != 1041 {
		t.Errorf("server saw %v, want 1041 × %q", seen, want)
	}
	if n := conns.n.Load(); n > 4 {
		t.Errorf("%d connections for -c 4: keep-alive is not working", n)
	}
}

// scriptedServer answers the i-th request (from 1) with answer(i).
func scriptedServer(t *testing.T, answer func(i int64, w http.ResponseWriter)) *httptest.Server {
	var n atomic.Int64
	srv, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64)
		for {
			if _, err := r.Body.Read(buf); err != nil {
				break
			}
		}
		answer(n.Add(1), w)
	}))
	return srv
}

func TestErrorsAreCountedByKind(t *testing.T) {
	// Request 1 is the probe; 2..101 are measured.
	srv := scriptedServer(t, func(i int64, w http.ResponseWriter) {
		switch {
		case i > 1 && i%10 == 0:
			w.Header().Set("X-Amzn-ErrorType", "TooManyRequestsException")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"message":"Rate Exceeded."}`)
		case i > 1 && i%7 == 0:
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
			fmt.Fprint(w, `{"errorType":"Runtime.ExitError"}`)
		case i == 33:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			fmt.Fprint(w, `{"message":"hi"}`)
		}
	})
	r, err := Warm(context.Background(), testConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	// Among 2..101: multiples of 10: 10; of 7 but not 10: 14-1 (70) = 13; and 33.
	if r.Requests != 100 || r.Errors != 24 || r.OK != 76 || r.Latency.Count != 76 || !r.Failed() {
		t.Errorf("requests %d, errors %d, ok %d, latencies %d; want 100, 24, 76, 76", r.Requests, r.Errors, r.OK, r.Latency.Count)
	}
	want := []ErrorKind{
		{Kind: "function error: Unhandled", Count: 13, Example: `{"errorType":"Runtime.ExitError"}`},
		{Kind: "HTTP 429 TooManyRequestsException", Count: 10, Example: `{"message":"Rate Exceeded."}`},
		{Kind: "HTTP 500", Count: 1, Example: "(empty body)"},
	}
	if fmt.Sprint(r.ErrorKinds) != fmt.Sprint(want) {
		t.Errorf("error kinds =\n %v, want\n %v", r.ErrorKinds, want)
	}
}

func TestWarmupErrorsAreReported(t *testing.T) {
	srv := scriptedServer(t, func(i int64, w http.ResponseWriter) {
		if i == 3 {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	cfg := testConfig(srv)
	cfg.Warmup = 5
	r, err := Warm(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Warmup != 5 || r.WarmupErrors != 1 || r.Errors != 0 || !r.Failed() {
		t.Errorf("warm-up %d errors %d, measured errors %d; want 5, 1, 0 and Failed", r.Warmup, r.WarmupErrors, r.Errors)
	}
	if len(r.ErrorKinds) != 1 || r.ErrorKinds[0].Kind != "warm-up: HTTP 502" {
		t.Errorf("error kinds = %v", r.ErrorKinds)
	}
}

func TestFailingProbeStopsTheRun(t *testing.T) {
	srv := scriptedServer(t, func(_ int64, w http.ResponseWriter) {
		w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"Message":"Function not found: arn:aws:lambda:us-east-1:000000000000:function:hello"}`)
	})
	for name, run := range map[string]func(context.Context, Config) (*Result, error){"warm": Warm, "throughput": Throughput} {
		_, err := run(context.Background(), testConfig(srv))
		if err == nil || !strings.Contains(err.Error(), "HTTP 404 ResourceNotFoundException") ||
			!strings.Contains(err.Error(), "Function not found") {
			t.Errorf("%s against a missing function: %v", name, err)
		}
	}
}

func TestTransportErrorsStopAWorker(t *testing.T) {
	// After the probe, every connection is dropped without an answer.
	var calls atomic.Int64
	srv, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			return
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	cfg := testConfig(srv)
	cfg.Requests = 1000
	r, err := Warm(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != maxConsecutiveTransportErrors || r.OK != 0 || len(r.ErrorKinds) != 1 || r.ErrorKinds[0].Kind != "transport error" {
		t.Errorf("errors %d ok %d kinds %v; want %d transport errors, then stop", r.Errors, r.OK, r.ErrorKinds, maxConsecutiveTransportErrors)
	}
}

func TestThroughput(t *testing.T) {
	srv, conns := newServer(t, BaselineHandler())
	cfg := testConfig(srv)
	cfg.Connections, cfg.Duration = 3, 200*time.Millisecond
	start := time.Now()
	r, err := Throughput(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK == 0 || r.Errors != 0 || r.Latency.Count != r.OK || r.Elapsed < cfg.Duration || time.Since(start) > 10*time.Second {
		t.Errorf("ok %d errors %d latencies %d elapsed %v", r.OK, r.Errors, r.Latency.Count, r.Elapsed)
	}
	if got := float64(r.OK) / r.Elapsed.Seconds(); got != r.Throughput {
		t.Errorf("throughput %v, want ok/elapsed = %v", r.Throughput, got)
	}
	if n := conns.n.Load(); n > 3 {
		t.Errorf("%d connections for -c 3", n)
	}
}

func TestCancel(t *testing.T) {
	srv, _ := newServer(t, BaselineHandler())
	cfg := testConfig(srv)
	cfg.Duration = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Throughput(ctx, cfg); err != context.DeadlineExceeded {
		t.Errorf("Throughput after its context ended = %v, want DeadlineExceeded", err)
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	for _, mode := range []string{ModeWarm, ModeThroughput, ModeCold, ModeExec} {
		if err := ok.Validate(mode); err != nil {
			t.Errorf("DefaultConfig().Validate(%s) = %v", mode, err)
		}
	}
	tests := []struct {
		mode   string
		change func(*Config)
		want   string
	}{
		{ModeWarm, func(c *Config) { c.Requests = 0 }, "requests (-n) 0"},
		{ModeWarm, func(c *Config) { c.Connections = 0 }, "connections (-c) 0"},
		{ModeWarm, func(c *Config) { c.Requests, c.Connections = 10, 32 }, "at least the connections"},
		{ModeThroughput, func(c *Config) { c.Duration = 0 }, "duration (-d)"},
		{ModeThroughput, func(c *Config) { c.Endpoint = "" }, "endpoint: required"},
		{ModeCold, func(c *Config) { c.Function = "" }, "function: required"},
		{ModeCold, func(c *Config) { c.Settle = -time.Second }, "settle"},
		{ModeWarm, func(c *Config) { c.Warmup = -2 }, "warmup -2"},
		{ModeWarm, func(c *Config) { c.Timeout = 0 }, "timeout"},
		{"sprint", func(*Config) {}, `mode "sprint"`},
		{ModeBurst, func(c *Config) { c.Requests, c.Connections = 5, 6 }, "connections (-c) 6"},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.change(&c)
		if err := c.Validate(tt.mode); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%s) = %v, want an error naming %q", tt.mode, err, tt.want)
		}
	}
	c := DefaultConfig()
	c.Endpoint = "127.0.0.1:8790"
	if _, err := Warm(context.Background(), c); err == nil || !strings.Contains(err.Error(), "want a URL") {
		t.Errorf("Warm with an endpoint without scheme = %v", err)
	}
}

// BenchmarkInvoke is one round trip of the load generator to an in-process
// bare server over loopback: the generator's own cost, plus the server's.
func BenchmarkInvoke(b *testing.B) {
	srv, _ := newServer(b, BaselineHandler())
	cfg := DefaultConfig()
	cfg.Endpoint, cfg.Function = srv.URL, "hello"
	l, err := newLoader(context.Background(), cfg, 1, false)
	if err != nil {
		b.Fatal(err)
	}
	defer l.close()
	buf := make([]byte, respBufSize)
	b.ReportAllocs()
	for b.Loop() {
		if o := l.invoke(buf); o.fail != nil {
			b.Fatal(o.fail.kind, o.fail.example)
		}
	}
}
