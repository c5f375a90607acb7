package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/testkit"
)

// holdServer answers invocations only once `hold` of them are being served
// at once (or after a long fallback, so a broken test fails instead of
// hanging), so a test knows the concurrency a burst reached without timing
// anything. answer writes the i-th response (from 1; the probe is 1).
type holdServer struct {
	hold    int
	answer  func(i int, w http.ResponseWriter)
	mu      sync.Mutex
	cond    *sync.Cond
	serving int
	peak    int
	n       atomic.Int64
}

func newHoldServer(hold int, answer func(int, http.ResponseWriter)) *holdServer {
	h := &holdServer{hold: hold, answer: answer}
	h.cond = sync.NewCond(&h.mu)
	return h
}

func (h *holdServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	i := int(h.n.Add(1))
	if i > 1 { // the probe is answered at once
		h.mu.Lock()
		h.serving++
		h.peak = max(h.peak, h.serving)
		h.cond.Broadcast()
		deadline := time.AfterFunc(20*time.Second, func() { h.mu.Lock(); h.cond.Broadcast(); h.mu.Unlock() })
		start := time.Now()
		for h.peak < h.hold && time.Since(start) < 20*time.Second {
			h.cond.Wait()
		}
		deadline.Stop()
		h.serving--
		h.mu.Unlock()
	}
	h.answer(i, w)
}

func logTail(lines ...string) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Join(lines, "\n") + "\n"))
}

const reportLine = "REPORT RequestId: r\tDuration: 1000.00 ms\tBilled Duration: 1000 ms\tMemory Size: 128 MB\tMax Memory Used: 9 MB"

func okAnswer(_ int, w http.ResponseWriter) {
	w.Header().Set("X-Amz-Log-Result", logTail("START RequestId: r", reportLine+"\tInit Duration: 2.50 ms"))
	fmt.Fprint(w, `{"message":"hi"}`)
}

func TestBurstReachesItsConcurrency(t *testing.T) {
	const n = 40
	h := newHoldServer(n, okAnswer)
	srv, conns := newServer(t, h)
	cfg := testConfig(srv)
	cfg.Requests, cfg.Connections, cfg.Payload = n, n, []byte(BurstPayload)
	r, err := Burst(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != ModeBurst || r.Requests != n || r.OK != n || r.Errors != 0 || r.Latency.Count != n || r.Warmup != 1 || r.Connections != n {
		t.Errorf("burst result = %+v", r)
	}
	b := r.Burst
	if b == nil {
		t.Fatal("no burst stats")
	}
	if h.peak != n || b.PeakInFlight != n {
		t.Errorf("concurrency: server saw %d at once, client %d; want %d", h.peak, b.PeakInFlight, n)
	}
	// One connection per invocation, none reused from the probe.
	if b.Dials != n || conns.n.Load() != n+1 {
		t.Errorf("connections: burst opened %d, server accepted %d; want %d and %d with the probe's", b.Dials, conns.n.Load(), n, n+1)
	}
	if b.Cold != n || b.Warm != 0 || b.NoLog != 0 || b.SleepMS != 1000 || b.Fresh {
		t.Errorf("burst stats = %+v", b)
	}
	if r.InitDuration == nil || r.InitDuration.Count != n || r.InitDuration.P50 != 2500*time.Microsecond {
		t.Errorf("init duration = %+v", r.InitDuration)
	}
	if r.Elapsed <= 0 || r.Elapsed < r.Latency.Max {
		t.Errorf("wall %v shorter than the slowest invocation %v", r.Elapsed, r.Latency.Max)
	}
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	testkit.Contains(t, "text", text.String(),
		"owl burst: hello at "+srv.URL+", 40 connections\n",
		"  burst     40 invocations started at once, wall ",
		"peak 40 in flight, 40 connections opened\n",
		"  cold      40 cold (Init Duration in the log tail), 0 warm, 0 without a log tail; event sleep_ms 1000\n",
	)
}

func TestBurstOverFewerConnections(t *testing.T) {
	const n, c = 30, 5
	h := newHoldServer(c, okAnswer)
	srv, conns := newServer(t, h)
	cfg := testConfig(srv)
	cfg.Requests, cfg.Connections = n, c
	r, err := Burst(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != n || r.Errors != 0 {
		t.Errorf("burst over %d connections: %d ok, %d errors", c, r.OK, r.Errors)
	}
	if h.peak != c || r.Burst.Dials > c || conns.n.Load() > c+1 {
		t.Errorf("server saw %d at once over %d connections (burst dialled %d); want at most %d", h.peak, conns.n.Load(), r.Burst.Dials, c)
	}
	// Every goroutine had sent: invocations waiting for a connection count
	// as in flight, as the client sees them.
	if r.Burst.PeakInFlight < c {
		t.Errorf("peak in flight %d, want at least %d", r.Burst.PeakInFlight, c)
	}
}

func TestBurstClassifiesErrorsAndColdStarts(t *testing.T) {
	const n = 12
	h := newHoldServer(n, func(i int, w http.ResponseWriter) {
		switch k := i - 1; {
		case i == 1:
			okAnswer(i, w)
		case k <= 3:
			w.Header().Set("X-Amzn-ErrorType", "TooManyRequestsException")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"Reason":"ConcurrentInvocationLimitExceeded","message":"Rate Exceeded."}`)
		case k <= 5:
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
			w.Header().Set("X-Amz-Log-Result", logTail(reportLine+"\tInit Duration: 9.00 ms"))
			fmt.Fprint(w, `{"errorMessage":"Task timed out after 3.00 seconds"}`)
		case k <= 9:
			okAnswer(i, w)
		case k <= 11:
			w.Header().Set("X-Amz-Log-Result", logTail("START RequestId: r", reportLine))
			fmt.Fprint(w, `{"message":"hi"}`)
		default:
			fmt.Fprint(w, `{"message":"hi"}`)
		}
	})
	srv, _ := newServer(t, h)
	cfg := testConfig(srv)
	cfg.Requests, cfg.Connections = n, n
	r, err := Burst(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != 7 || r.Errors != 5 || r.Latency.Count != 7 || !r.Failed() {
		t.Errorf("result: %d ok, %d errors, %d latencies; want 7, 5, 7", r.OK, r.Errors, r.Latency.Count)
	}
	kinds := map[string]int{}
	for _, k := range r.ErrorKinds {
		kinds[k.Kind] = k.Count
	}
	if len(kinds) != 2 || kinds["HTTP 429 TooManyRequestsException"] != 3 || kinds["function error: Unhandled"] != 2 {
		t.Errorf("error kinds = %+v", r.ErrorKinds)
	}
	// Failed invocations are not classified; the successful ones are.
	if b := r.Burst; b.Cold != 4 || b.Warm != 2 || b.NoLog != 1 {
		t.Errorf("cold %d warm %d no log %d; want 4, 2, 1", b.Cold, b.Warm, b.NoLog)
	}
}

func TestBurstFresh(t *testing.T) {
	f := &fakeOwl{exists: true, env: map[string]string{"STAGE": "prod"}}
	cfg := startFake(t, f)
	cfg.Requests, cfg.Connections, cfg.Fresh, cfg.Settle = 4, 4, true, time.Millisecond
	r, err := Burst(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The fake serves one invocation at a time: the new revision's first is
	// cold, the others reuse its environment.
	if r.OK != 4 || r.Burst.Cold != 1 || r.Burst.Warm != 3 || !r.Burst.Fresh {
		t.Errorf("fresh burst = %+v, stats %+v", r, r.Burst)
	}
	if len(f.updates) != 2 || !strings.HasPrefix(f.updates[0][coldVar], "burst-") || f.updates[0]["STAGE"] != "prod" {
		t.Fatalf("updates = %v, want a new BENCH_ITER then the original", f.updates)
	}
	if last := f.updates[1]; len(last) != 1 || last["STAGE"] != "prod" {
		t.Errorf("restored environment = %v", last)
	}
	if f.invokes != 5 {
		t.Errorf("%d invocations, want the probe and 4", f.invokes)
	}
}

func TestBurstValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Requests, cfg.Connections = 10, 11
	if err := cfg.Validate(ModeBurst); err == nil || !strings.Contains(err.Error(), "connections (-c) 11") {
		t.Errorf("Validate(-c > -n) = %v", err)
	}
	cfg.Requests, cfg.Connections = maxBurst+1, 1
	if err := cfg.Validate(ModeBurst); err == nil {
		t.Error("Validate accepted a burst over the maximum")
	}
	cfg.Requests, cfg.Connections = 1000, 1000
	if err := cfg.Validate(ModeBurst); err != nil {
		t.Errorf("Validate(1000 × 1000) = %v", err)
	}
}

func TestSleepMS(t *testing.T) {
	for in, want := range map[string]int{BurstPayload: 1000, `{"name":"owl"}`: 0, `not json`: 0, `{"sleep_ms":250}`: 250} {
		if got := sleepMS([]byte(in)); got != want {
			t.Errorf("sleepMS(%s) = %d, want %d", in, got, want)
		}
	}
}

func TestEnsureOpenFiles(t *testing.T) {
	// What the process already has is always enough.
	if err := ensureOpenFiles(16); err != nil {
		t.Errorf("ensureOpenFiles(16) = %v", err)
	}
}
