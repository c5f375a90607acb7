package runtimeapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/testkit"
)

// Warm-invoke benchmarks. One op is one Invoke round trip through a real
// loopback TCP connection to a runtime that answers at once. Compare them
// with BenchmarkBaselineHTTPRoundTrip, one keep-alive request to a bare
// net/http server, measured in the same run.

var (
	benchEvent    = []byte(`{"name":"owl"}`)
	benchResponse = []byte(`{"message":"hello owl"}`)
)

// benchInvoke runs b's loop of Invokes against s, whose runtime is already
// looping. Back to back, one op is a whole runtime cycle: the event out, the
// result in, and the runtime's 202 and next /next. With parked, each Invoke
// starts only once the runtime waits in /next again, as when invocations
// are not back to back; then the latency of the Invoke alone is reported as
// p50-ns and p99-ns (ns/op includes the wait).
func benchInvoke(b *testing.B, s *Server, parked bool) {
	ctx := context.Background()
	inv := Invocation{
		RequestID:   "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
		Deadline:    time.Now().Add(time.Hour),
		FunctionARN: "arn:aws:lambda:us-east-1:123456789012:function:hello",
		Payload:     benchEvent,
	}
	// Request ids alternate so a result can never be mistaken for the
	// previous one's.
	ids := [2]string{inv.RequestID, "8476a536-e9f4-11e8-9739-2dfe598c3fce"}
	if err := s.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	var hist latencyHistogram
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		inv.RequestID = ids[i&1]
		i++
		var start time.Time
		if parked {
			for !isParked(s)() {
				time.Sleep(20 * time.Microsecond)
			}
			start = time.Now()
		}
		out, err := s.Invoke(ctx, inv)
		if err != nil || out.IsError {
			b.Fatalf("Invoke = %+v, %v", out, err)
		}
		if parked {
			hist.add(time.Since(start))
		}
	}
	if parked {
		b.ReportMetric(float64(hist.quantile(0.50)), "p50-ns")
		b.ReportMetric(float64(hist.quantile(0.99)), "p99-ns")
	}
}

// latencyHistogram counts latencies in 1 µs buckets up to 10 ms without
// allocating.
type latencyHistogram struct {
	n       int
	buckets [10000]int // the last one holds everything above
}

func (h *latencyHistogram) add(d time.Duration) {
	h.n++
	h.buckets[min(int(d/time.Microsecond), len(h.buckets)-1)]++
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *latencyHistogram) quantile(q float64) time.Duration {
	want := int(q * float64(h.n))
	seen := 0
	for i, c := range h.buckets {
		seen += c
		if seen > want {
			return time.Duration(i+1) * time.Microsecond
		}
	}
	return time.Duration(len(h.buckets)) * time.Microsecond
}

// BenchmarkInvokeWarm: the runtime is an http.Client loop (keep-alive, one
// connection), like aws-lambda-go's but in process.
func BenchmarkInvokeWarm(b *testing.B) {
	benchModes(b, benchInvokeWarm)
}

func benchInvokeWarm(b *testing.B, parked bool) {
	s, addr := startServer(b, Config{})
	c := newRuntimeClient(b, addr)
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		ctx := context.Background()
		for {
			r := c.next(ctx)
			if r.err != nil || r.status != http.StatusOK {
				return
			}
			id := r.header.Get(hdrRequestID)
			if p := c.post(ctx, id, "response", benchResponse); p.status != http.StatusAccepted {
				return
			}
		}
	}()
	b.Cleanup(func() {
		s.Close() // ends the loop's /next
		<-loopDone
	})
	benchInvoke(b, s, parked)
}

// BenchmarkInvokeWarmRawRuntime: the runtime is a minimal hand-written
// HTTP/1.1 loop, so allocs/op are nearly all the server's and Invoke's.
func BenchmarkInvokeWarmRawRuntime(b *testing.B) {
	benchModes(b, benchInvokeWarmRawRuntime)
}

func benchInvokeWarmRawRuntime(b *testing.B, parked bool) {
	s, addr := startServer(b, Config{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	loopDone := make(chan error, 1)
	go func() { loopDone <- rawRuntimeLoop(conn) }()
	b.Cleanup(func() {
		conn.Close()
		<-loopDone
	})
	benchInvoke(b, s, parked)
}

// rawRuntimeLoop plays a runtime on conn until it fails.
func rawRuntimeLoop(conn net.Conn) error {
	br := bufio.NewReaderSize(conn, 16<<10)
	var id, body, req []byte
	for {
		if _, err := io.WriteString(conn, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\n\r\n"); err != nil {
			return err
		}
		var err error
		if id, body, err = readRawResponse(br, 200, id, body); err != nil {
			return err
		}
		req = append(req[:0], "POST /2018-06-01/runtime/invocation/"...)
		req = append(req, id...)
		req = append(req, "/response HTTP/1.1\r\nHost: rt\r\nContent-Length: "...)
		req = strconv.AppendInt(req, int64(len(benchResponse)), 10)
		req = append(req, "\r\n\r\n"...)
		req = append(req, benchResponse...)
		if _, err := conn.Write(req); err != nil {
			return err
		}
		if _, body, err = readRawResponse(br, 202, nil, body); err != nil {
			return err
		}
	}
}

// readRawResponse reads one HTTP/1.1 response with a Content-Length body,
// returning the request id header and the body in the given buffers.
func readRawResponse(br *bufio.Reader, status int, id, body []byte) ([]byte, []byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return id, body, err
	}
	if len(line) < 12 || string(line[9:12]) != strconv.Itoa(status) {
		return id, body, errors.New("unexpected status line " + string(line))
	}
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return id, body, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, _ := bytes.Cut(line, []byte(": "))
		switch string(k) {
		case "Lambda-Runtime-Aws-Request-Id":
			id = append(id[:0], v...)
		case "Content-Length":
			if n, err = strconv.Atoi(string(v)); err != nil {
				return id, body, err
			}
		}
	}
	if n < 0 {
		return id, body, errors.New("response without Content-Length")
	}
	body = append(body[:0], make([]byte, n)...)
	_, err = io.ReadFull(br, body)
	return id, body, err
}

// BenchmarkInvokeWarmAWSLambdaGo: the runtime is the real aws-lambda-go
// hello function (testdata/hello) in a child process: the end-to-end warm
// path minus Owl's worker and frontend.
func BenchmarkInvokeWarmAWSLambdaGo(b *testing.B) {
	benchModes(b, func(b *testing.B, parked bool) {
		s, _ := startEnvironment(b, "hello")
		benchInvoke(b, s, parked)
	})
}

// benchModes runs bench back to back and parked.
func benchModes(b *testing.B, bench func(b *testing.B, parked bool)) {
	b.Run("back-to-back", func(b *testing.B) { bench(b, false) })
	b.Run("parked", func(b *testing.B) { bench(b, true) })
}

// BenchmarkBaselineHTTPRoundTrip is one keep-alive GET to a bare net/http
// server answering a small JSON body: what one Runtime API hop costs at
// best.
func BenchmarkBaselineHTTPRoundTrip(b *testing.B) {
	ln := testkit.Listen(b)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = jsonContentType
		w.Write(benchResponse)
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	c := newRuntimeClient(b, ln.Addr().String())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := c.request(ctx, http.MethodGet, "/", nil, nil, nil); r.err != nil || r.status != http.StatusOK {
			b.Fatal(r.err)
		}
	}
}
