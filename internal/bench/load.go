package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxConsecutiveTransportErrors stops a connection's worker after this many
// transport failures in a row: the server is gone, and spinning on refused
// connections would only inflate the error count.
const maxConsecutiveTransportErrors = 10

// respBufSize is how much of each response body a worker keeps (the rest is
// read and discarded); enough for error examples and log-free hellos.
const respBufSize = 4 << 10

// InvokePath is the path of a synchronous invocation of function.
func InvokePath(function string) string {
	return "/2015-03-31/functions/" + url.PathEscape(function) + "/invocations"
}

// loader sends invocations of one function over a pool of keep-alive
// connections. It is safe for concurrent use by one goroutine per
// connection.
type loader struct {
	tr      *http.Transport
	tmpl    *http.Request // copied, never sent
	payload []byte
	wantLog bool // ask for and return the log tail (X-Amz-Log-Type: Tail)
}

// newLoader builds a loader for cfg whose requests are cancelled with ctx.
func newLoader(ctx context.Context, cfg Config, conns int, wantLog bool) (*loader, error) {
	u, err := url.Parse(strings.TrimRight(cfg.Endpoint, "/") + InvokePath(cfg.Function))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("endpoint %q: want a URL like http://127.0.0.1:8790", cfg.Endpoint)
	}
	tr := &http.Transport{
		Proxy:       nil, // a benchmark of loopback must never go through $HTTP_PROXY
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// One connection per worker, kept for the whole run.
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		MaxConnsPerHost:       conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.Timeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("endpoint %q: %w", cfg.Endpoint, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "owl-bench")
	if cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	}
	if wantLog {
		req.Header.Set("X-Amz-Log-Type", "Tail")
	}
	req.ContentLength = int64(len(cfg.Payload))
	return &loader{tr: tr, tmpl: req, payload: cfg.Payload, wantLog: wantLog}, nil
}

// close drops the loader's connections.
func (l *loader) close() { l.tr.CloseIdleConnections() }

// body is a request body that allocates once per request.
type body struct{ bytes.Reader }

func (*body) Close() error { return nil }

// outcome is one invocation as the client saw it.
type outcome struct {
	latency time.Duration
	fail    *failure // nil when the invocation succeeded
	log     string   // decoded X-Amz-Log-Result, when the loader asks for it
}

// failure is why an invocation counts as an error.
type failure struct {
	kind      string // groups failures: "HTTP 429 TooManyRequestsException", "function error: Unhandled", …
	example   string
	transport bool // the request could not be exchanged at all
}

// invoke sends one invocation and reads the whole response; buf holds the
// start of the body.
func (l *loader) invoke(buf []byte) outcome {
	req := new(http.Request)
	*req = *l.tmpl
	b := new(body)
	b.Reset(l.payload)
	req.Body = b

	start := time.Now()
	resp, err := l.tr.RoundTrip(req)
	if err != nil {
		return outcome{latency: time.Since(start), fail: transportFailure(err)}
	}
	n, rerr := readBody(resp.Body, buf)
	resp.Body.Close()
	o := outcome{latency: time.Since(start)}
	switch {
	case rerr != nil:
		o.fail = transportFailure(fmt.Errorf("reading the response: %w", rerr))
	case resp.StatusCode != http.StatusOK:
		kind := "HTTP " + strconv.Itoa(resp.StatusCode)
		if t := resp.Header.Get("X-Amzn-ErrorType"); t != "" {
			kind += " " + t
		}
		o.fail = &failure{kind: kind, example: snippet(buf[:n])}
	case resp.Header.Get("X-Amz-Function-Error") != "":
		o.fail = &failure{kind: "function error: " + resp.Header.Get("X-Amz-Function-Error"), example: snippet(buf[:n])}
	}
	if l.wantLog {
		if lr := resp.Header.Get("X-Amz-Log-Result"); lr != "" {
			if dec, err := base64.StdEncoding.DecodeString(lr); err == nil {
				o.log = string(dec)
			}
		}
	}
	return o
}

// readBody reads r to its end, keeping what fits in buf.
func readBody(r io.Reader, buf []byte) (int, error) {
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return n, nil
	case err != nil:
		return n, err
	}
	_, err = io.Copy(io.Discard, r)
	return n, err
}

func transportFailure(err error) *failure {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &failure{kind: "transport error", example: err.Error(), transport: true}
}

// snippet is the start of a response body, for error examples.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// tally is what one worker saw. Only its own goroutine touches it until
// the run ends.
type tally struct {
	latencies    []time.Duration // successful invocations only
	ok, errs     int
	kinds        map[string]*ErrorKind
	transportRow int // consecutive transport failures
}

func newTally(capacity int) *tally {
	return &tally{latencies: make([]time.Duration, 0, capacity)}
}

func (t *tally) add(o outcome, record bool) {
	if o.fail == nil {
		t.ok++
		t.transportRow = 0
		if record {
			t.latencies = append(t.latencies, o.latency)
		}
		return
	}
	t.errs++
	if o.fail.transport {
		t.transportRow++
	} else {
		t.transportRow = 0
	}
	if t.kinds == nil {
		t.kinds = map[string]*ErrorKind{}
	}
	k := t.kinds[o.fail.kind]
	if k == nil {
		k = &ErrorKind{Kind: o.fail.kind, Example: o.fail.example}
		t.kinds[o.fail.kind] = k
	}
	k.Count++
}

// merged combines the workers' tallies.
func merged(ts []*tally) *tally {
	all := &tally{kinds: map[string]*ErrorKind{}}
	n := 0
	for _, t := range ts {
		n += len(t.latencies)
	}
	all.latencies = make([]time.Duration, 0, n)
	for _, t := range ts {
		all.latencies = append(all.latencies, t.latencies...)
		all.ok += t.ok
		all.errs += t.errs
		for key, k := range t.kinds {
			if a := all.kinds[key]; a != nil {
				a.Count += k.Count
			} else {
				c := *k
				all.kinds[key] = &c
			}
		}
	}
	return all
}

// stop decides, before each request of a worker, whether the run is over.
type stop func() bool

// countStop allows n requests in all, shared by the workers.
func countStop(n int) stop {
	var issued atomic.Int64
	return func() bool { return issued.Add(1) > int64(n) }
}

// durationStop allows requests to start for d from the first time it is
// asked, which is after run started its clock: the run's elapsed time is
// then at least d.
func durationStop(d time.Duration) stop {
	deadline := sync.OnceValue(func() time.Time { return time.Now().Add(d) })
	return func() bool { return !time.Now().Before(deadline()) }
}

// run drives conns workers, each sending invocations back to back on its
// own connection until done says so or ctx ends; it returns their tallies
// and the wall time from the first request to the last response. capacity
// is the expected number of samples per worker.
func (l *loader) run(ctx context.Context, conns int, done stop, record bool, capacity int) ([]*tally, time.Duration) {
	tallies := make([]*tally, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range tallies {
		t := newTally(capacity)
		tallies[i] = t
		wg.Go(func() {
			buf := make([]byte, respBufSize)
			for ctx.Err() == nil && !done() {
				t.add(l.invoke(buf), record)
				if t.transportRow >= maxConsecutiveTransportErrors {
					return
				}
			}
		})
	}
	wg.Wait()
	return tallies, time.Since(start)
}
