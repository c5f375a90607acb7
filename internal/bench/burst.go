package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/owl-project/owl/internal/client"
)

// BurstPayload is the event burst mode sends by default: hello-go sleeps
// sleep_ms before answering, so every invocation holds an environment for a
// second, as in the target.
const BurstPayload = `{"name":"owl","sleep_ms":1000}`

// BurstStats is what a burst run adds to its Result.
type BurstStats struct {
	// SleepMS is the event's sleep_ms (0 when it has none).
	SleepMS int `json:"sleep_ms"`
	// MemoryMB is the function's MemorySize, when it was read (fresh runs).
	MemoryMB int `json:"memory_mb,omitempty"`
	// Fresh is true when the burst hit a new revision of the function, on
	// which no execution environment existed yet.
	Fresh bool `json:"fresh"`
	// PeakInFlight is the most invocations the client had sent and not yet
	// seen answered at once: the concurrency the burst actually reached.
	PeakInFlight int `json:"peak_in_flight"`
	// Dials counts the connections the burst opened.
	Dials int `json:"connections_opened"`
	// Cold, Warm and NoLog classify the successful invocations by their
	// log tail: an Init Duration (a new environment), none, or no tail at
	// all (a server that returns none, like the bare baseline).
	Cold  int `json:"cold"`
	Warm  int `json:"warm"`
	NoLog int `json:"no_log"`
}

// sleepMS reads sleep_ms from an event, 0 when it has none.
func sleepMS(payload []byte) int {
	var e struct {
		SleepMS int `json:"sleep_ms"`
	}
	if json.Unmarshal(payload, &e) != nil {
		return 0
	}
	return e.SleepMS
}

// Burst starts N invocations at once, each in its own goroutine, over a
// pool of C connections (C = N: one connection each), and measures the wall
// time from the first send to the last response, every invocation's
// latency, the concurrency reached, and how many were cold (their log tail,
// asked for with X-Amz-Log-Type: Tail, reports an Init Duration).
//
// One invocation first checks the endpoint and the function (and unpacks
// its code on the node). With cfg.Fresh, the function's configuration is
// then changed (BENCH_ITER, as in Cold) so that the burst meets a revision
// without any environment: every invocation has to find or make one, which
// is what scaling from zero costs. The original environment is restored at
// the end. Without Fresh, the burst runs against whatever is warm.
//
// It is long because it is one measurement's script (check, prepare,
// burst, collect, restore), read in the order it runs.
func Burst(ctx context.Context, cfg Config) (res *Result, err error) {
	if err := cfg.Validate(ModeBurst); err != nil {
		return nil, err
	}
	conns := cfg.Connections
	// Each connection is a file descriptor; a few dozen more for the rest.
	if err := ensureOpenFiles(uint64(conns) + 64); err != nil {
		return nil, fmt.Errorf("burst: %w", err)
	}
	l, err := newLoader(ctx, cfg, conns, true)
	if err != nil {
		return nil, err
	}
	defer l.close()
	var dials atomic.Int64
	dial := l.tr.DialContext
	l.tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return dial(ctx, network, addr)
	}
	b := &BurstStats{SleepMS: sleepMS(cfg.Payload), Fresh: cfg.Fresh}

	var api *client.Client
	var original map[string]string
	if cfg.Fresh {
		api = client.New(cfg.Endpoint, cfg.Token, client.WithUserAgent("owl-bench"))
		fn, err := api.GetFunction(ctx, cfg.Function)
		if err != nil {
			return nil, fmt.Errorf("burst: function %s: %w", cfg.Function, err)
		}
		if e := fn.Configuration.Environment; e != nil {
			original = e.Variables
		}
		b.MemoryMB = fn.Configuration.MemorySize
	}
	if err := probe(l, cfg); err != nil {
		return nil, err
	}
	r := cfg.newResult(ModeBurst, conns)
	r.Warmup = 1
	if cfg.Fresh {
		defer func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), updateWait)
			defer cancel()
			if rerr := updateEnv(rctx, api, cfg.Function, original); rerr != nil && err == nil {
				res, err = nil, fmt.Errorf("burst: restoring the environment of %s: %w", cfg.Function, rerr)
			}
		}()
		vars := maps.Clone(original)
		if vars == nil {
			vars = map[string]string{}
		}
		vars[coldVar] = "burst-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		if err := updateEnv(ctx, api, cfg.Function, vars); err != nil {
			return nil, fmt.Errorf("burst: %w", err)
		}
		if cfg.Settle > 0 {
			select {
			case <-time.After(cfg.Settle):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	// The probe's connection is not the burst's: every invocation opens
	// (or, with C < N, waits for) its own.
	l.tr.CloseIdleConnections()
	dials.Store(0)

	endCPU := cfg.startCPU()
	outs, elapsed, peak := l.burst(ctx, cfg.Requests)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t := newTally(len(outs))
	var inits []time.Duration
	for _, o := range outs {
		t.add(o, true)
		if o.fail != nil {
			continue
		}
		switch d, ok := initDuration(o.log); {
		case ok:
			b.Cold++
			inits = append(inits, d)
		case o.log == "":
			b.NoLog++
		default:
			b.Warm++
		}
	}
	r.fill(t, elapsed)
	r.CPU = endCPU(r.Requests)
	b.PeakInFlight, b.Dials = peak, int(dials.Load())
	r.Burst = b
	if len(inits) > 0 {
		s := Summarize(inits)
		r.InitDuration = &s
	}
	if cfg.Fresh {
		r.Notes = append(r.Notes, fmt.Sprintf("fresh: %s changed and %s waited before the burst, so no environment of the revision existed", coldVar, cfg.Settle))
	}
	return r, nil
}

// burst sends n invocations at once, one goroutine each, and returns their
// outcomes, the wall time from the first send to the last response and the
// most invocations in flight at once.
func (l *loader) burst(ctx context.Context, n int) ([]outcome, time.Duration, int) {
	outs := make([]outcome, n)
	sent := make([]time.Time, n)
	done := make([]time.Time, n)
	var inflight, peak atomic.Int64
	var ready, wg sync.WaitGroup
	gate := make(chan struct{})
	ready.Add(n)
	for i := range n {
		wg.Go(func() {
			buf := make([]byte, respBufSize)
			ready.Done()
			select {
			case <-gate:
			case <-ctx.Done():
				outs[i] = outcome{fail: &failure{kind: "cancelled", example: ctx.Err().Error()}}
				return
			}
			sent[i] = time.Now()
			cur := inflight.Add(1)
			for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
			}
			outs[i] = l.invoke(buf)
			done[i] = time.Now()
			inflight.Add(-1)
		})
	}
	// Every goroutine exists and waits: one close starts them all.
	ready.Wait()
	close(gate)
	wg.Wait()
	var first, last time.Time
	for i := range n {
		if sent[i].IsZero() {
			continue
		}
		if first.IsZero() || sent[i].Before(first) {
			first = sent[i]
		}
		if done[i].After(last) {
			last = done[i]
		}
	}
	return outs, last.Sub(first), int(peak.Load())
}
