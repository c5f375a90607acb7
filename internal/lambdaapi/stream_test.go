package lambdaapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/owl-project/owl/internal/lambdaapi"
	"github.com/owl-project/owl/internal/lambdaerr"
)

// event is one decoded message of an event stream answer.
type event struct {
	messageType, eventType, contentType string
	payload                             string
}

// decodeEvents reads an event stream with aws-sdk-go-v2's own decoder,
// which checks the prelude's and the message's CRCs.
func decodeEvents(t *testing.T, body []byte) []event {
	t.Helper()
	var out []event
	r := bytes.NewReader(body)
	dec := eventstream.NewDecoder()
	for r.Len() > 0 {
		m, err := dec.Decode(r, nil)
		if err != nil {
			t.Fatalf("decoding event %d: %v", len(out), err)
		}
		str := func(name string) string {
			if v := m.Headers.Get(name); v != nil {
				return v.String()
			}
			return ""
		}
		out = append(out, event{str(":message-type"), str(":event-type"), str(":content-type"), string(m.Payload)})
	}
	return out
}

// streamPath is InvokeWithResponseStream's path for name.
func streamPath(name string) string {
	return "/2021-11-15/functions/" + name + "/response-streaming-invocations"
}

// TestInvokeWithResponseStreamWire: the API's answer to
// InvokeWithResponseStream, against a fake worker at the invoker seam that
// streams: the event stream's framing, headers and events as
// aws-sdk-go-v2's decoder reads them; a buffered answer as one chunk;
// function and platform errors before and after the first byte; no
// write reaches the client once the invocation is over.
func TestInvokeWithResponseStreamWire(t *testing.T) {
	h := newHarness(t)
	h.create("fn")

	var kept lambdaapi.ResponseStream
	h.worker.answer = func(req lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
		kept = req.Stream
		if err := req.Stream.Begin("text/plain"); err != nil {
			return nil, err
		}
		for _, p := range []string{"a", "bc"} {
			if _, err := req.Stream.Write([]byte(p)); err != nil {
				return nil, err
			}
		}
		return &lambdaapi.InvokeResult{Streamed: true, Log: "START\nline\nREPORT\n"}, nil
	}
	r := h.do("POST", streamPath("fn"), []byte(`{}`), "X-Amz-Log-Type", "Tail")
	if r.status != 200 || r.header.Get("Content-Type") != "application/vnd.amazon.eventstream" || r.header.Get("X-Amz-Executed-Version") != "$LATEST" {
		t.Fatalf("%d %v", r.status, r.header)
	}
	evs := decodeEvents(t, r.body)
	want := []event{
		{"event", "PayloadChunk", "application/octet-stream", "a"},
		{"event", "PayloadChunk", "application/octet-stream", "bc"},
		{"event", "InvokeComplete", "application/json", `{"LogResult":"` + base64.StdEncoding.EncodeToString([]byte("START\nline\nREPORT\n")) + `"}`},
	}
	if len(evs) != len(want) {
		t.Fatalf("events %+v, want %+v", evs, want)
	}
	for i := range want {
		if evs[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, evs[i], want[i])
		}
	}
	if _, err := kept.Write([]byte("late")); err == nil {
		t.Errorf("a write after the invocation ended was taken")
	}

	t.Run("a buffered answer is one chunk", func(t *testing.T) {
		h.worker.answer = func(lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
			return &lambdaapi.InvokeResult{Payload: []byte(`{"whole":true}`)}, nil
		}
		evs := decodeEvents(t, h.do("POST", streamPath("fn"), []byte(`{}`)).body)
		if len(evs) != 2 || evs[0].eventType != "PayloadChunk" || evs[0].payload != `{"whole":true}` || evs[1].payload != `{}` {
			t.Fatalf("events %+v", evs)
		}
	})

	t.Run("a function error", func(t *testing.T) {
		h.worker.answer = func(lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
			return &lambdaapi.InvokeResult{FunctionError: true, ErrorType: "TypeError", Payload: lambdaerr.ErrorBody("TypeError", "boom")}, nil
		}
		evs := decodeEvents(t, h.do("POST", streamPath("fn"), []byte(`{}`)).body)
		var done struct{ ErrorCode, ErrorDetails string }
		if len(evs) != 1 || evs[0].eventType != "InvokeComplete" || json.Unmarshal([]byte(evs[0].payload), &done) != nil ||
			done.ErrorCode != "TypeError" || done.ErrorDetails != "boom" {
			t.Fatalf("events %+v", evs)
		}
	})

	t.Run("a platform error before the first byte", func(t *testing.T) {
		h.worker.answer = func(lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
			return nil, lambdaerr.New(lambdaerr.TooManyRequests, "Rate Exceeded.")
		}
		h.do("POST", streamPath("fn"), []byte(`{}`)).fails(t, lambdaerr.TooManyRequests)
	})

	t.Run("a platform error after the first byte", func(t *testing.T) {
		h.worker.answer = func(req lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
			req.Stream.Begin("application/octet-stream")
			req.Stream.Write([]byte("part"))
			return nil, errors.New("the environment went away")
		}
		r := h.do("POST", streamPath("fn"), []byte(`{}`))
		evs := decodeEvents(t, r.body)
		var done struct{ ErrorCode, ErrorDetails string }
		if r.status != 200 || len(evs) != 2 || evs[0].payload != "part" || json.Unmarshal([]byte(evs[1].payload), &done) != nil ||
			done.ErrorCode != lambdaerr.Service || done.ErrorDetails == "" {
			t.Fatalf("%d events %+v", r.status, evs)
		}
	})

	t.Run("a client that stops reading", func(t *testing.T) {
		// The runtime goes on writing after the invocation ended (as after
		// a timeout) to a client that reads nothing and stays connected:
		// its writes must fail rather than block for as long as the client
		// likes.
		writer := make(chan error, 1)
		h.worker.answer = func(req lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
			if err := req.Stream.Begin("application/octet-stream"); err != nil {
				return nil, err
			}
			var written atomic.Int64
			go func() {
				chunk := bytes.Repeat([]byte("x"), 64<<10)
				for range 1024 { // 64 MiB: far past what the sockets buffer
					if _, err := req.Stream.Write(chunk); err != nil {
						writer <- err
						return
					}
					written.Add(1)
				}
				writer <- nil
			}()
			// End the invocation once the writes are stuck on the client.
			for last := int64(-1); written.Load() != last; {
				last = written.Load()
				time.Sleep(200 * time.Millisecond)
			}
			return nil, errors.New("the invocation timed out")
		}
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: owl\r\nAuthorization: Bearer %s\r\nContent-Length: 2\r\n\r\n{}", streamPath("fn"), testToken)
		select {
		case err := <-writer:
			if err == nil {
				t.Fatal("64 MiB were written to a client that read nothing")
			}
		case <-time.After(time.Minute):
			t.Fatal("the runtime's writes to a client that stopped reading still block a minute on")
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		calls := h.worker.callCount()
		h.do("POST", streamPath("fn"), []byte(`{}`), "X-Amz-Invocation-Type", "Event").fails(t, lambdaerr.Validation)
		h.do("POST", streamPath("fn"), []byte(`{nope`)).fails(t, lambdaerr.InvalidRequestContent)
		h.do("POST", streamPath("missing"), []byte(`{}`)).fails(t, lambdaerr.ResourceNotFound)
		if r := h.do("POST", streamPath("fn"), []byte(`{}`), "X-Amz-Invocation-Type", "DryRun"); r.status != 204 {
			t.Fatalf("DryRun: %d %s", r.status, r.body)
		}
		if got := h.worker.callCount(); got != calls {
			t.Fatalf("refused requests ran the function %d times", got-calls)
		}
	})
}
