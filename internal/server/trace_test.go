package server_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/testkit"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes the protobuf
// ExportTraceServiceRequests the exporter posts to /v1/traces and keeps
// their spans.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []receivedSpan
}

// receivedSpan is what the tests check of a span.
type receivedSpan struct {
	name, traceID, spanID, parentID string
	attrs                           map[string]string
	start, end                      time.Time
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var in coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &in)
		}
		if err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("the receiver got an undecodable export (%s): %v", req.Header.Get("Content-Type"), err)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range in.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					attrs := map[string]string{}
					for _, kv := range s.Attributes {
						v := kv.Value
						switch v.Value.(type) {
						case *commonpb.AnyValue_StringValue:
							attrs[kv.Key] = v.GetStringValue()
						case *commonpb.AnyValue_BoolValue:
							attrs[kv.Key] = fmt.Sprint(v.GetBoolValue())
						case *commonpb.AnyValue_IntValue:
							attrs[kv.Key] = fmt.Sprint(v.GetIntValue())
						}
					}
					r.spans = append(r.spans, receivedSpan{name: s.Name, traceID: hex.EncodeToString(s.TraceId),
						spanID: hex.EncodeToString(s.SpanId), parentID: hex.EncodeToString(s.ParentSpanId), attrs: attrs,
						start: time.Unix(0, int64(s.StartTimeUnixNano)), end: time.Unix(0, int64(s.EndTimeUnixNano))})
				}
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(b)
	})
	r.Server = httptest.NewServer(mux)
	t.Cleanup(r.Close)
	return r
}

// waitSpans polls until the receiver holds spans of trace traceID (hex)
// with each of names, and returns them by name.
func (r *otlpReceiver) waitSpans(t *testing.T, traceID string, names ...string) map[string]receivedSpan {
	t.Helper()
	var got map[string]receivedSpan
	testkit.Eventually(t, 60*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		got = map[string]receivedSpan{}
		for _, s := range r.spans {
			if s.traceID == traceID {
				got[s.name] = s
			}
		}
		for _, n := range names {
			if _, ok := got[n]; !ok {
				return fmt.Errorf("no span %q in trace %s yet (have %d spans of it)", n, traceID, len(got))
			}
		}
		return nil
	})
	return got
}

var traceEnvRe = regexp.MustCompile(`_X_AMZN_TRACE_ID=Root=1-([0-9a-f]{8})-([0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=1`)

// runtimeTrace is the trace id (hex) and parent span id the function saw
// in _X_AMZN_TRACE_ID, from the kitchensink's env action's answer.
func runtimeTrace(t *testing.T, payload []byte) (traceID, parent string) {
	t.Helper()
	var env []string
	if err := json.Unmarshal(payload, &env); err != nil {
		t.Fatalf("the env action answered %s: %v", payload, err)
	}
	for _, kv := range env {
		if m := traceEnvRe.FindStringSubmatch(kv); m != nil {
			return m[1] + m[2], m[3]
		}
	}
	t.Fatalf("no well-formed _X_AMZN_TRACE_ID in the function's environment: %q", env)
	return "", ""
}

// TestTraces: a W3C traceparent sent on invoke reaches the runtime as the
// X-Ray header of the same trace (_X_AMZN_TRACE_ID), and a real OTLP/HTTP
// receiver gets that trace's spans (the API's, the acquisition with the
// cold start's init, the runtime's invocation); an Event invocation's
// trace adds the queue's wait; a message published with a trace header
// is invoked in that trace by its subject trigger; a function's call to
// another carries the trace on (its SDK sends X-Amzn-Trace-Id).
func TestTraces(t *testing.T) {
	t.Parallel()
	recv := newOTLPReceiver(t)
	ts := startServer(t, "", func(c *config.Config) { c.OTLPEndpoint = recv.URL })
	ts.createKitchensink("traced")

	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp, body := ts.rawInvoke("traced/invocations", `{"action":"env"}`, map[string]string{"traceparent": "00-" + traceID + "-" + parent + "-01"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("invoke: %d %s", resp.StatusCode, body)
	}
	seen, seenParent := runtimeTrace(t, body)
	if seen != traceID {
		t.Fatalf("the runtime saw trace %s, want %s", seen, traceID)
	}
	spans := recv.waitSpans(t, traceID, "owl.api Invoke", "owl.acquire", "owl.init", "owl.invoke")
	api, inv := spans["owl.api Invoke"], spans["owl.invoke"]
	if api.parentID != parent {
		t.Errorf("the API's span has parent %s, want the caller's %s", api.parentID, parent)
	}
	for _, n := range []string{"owl.acquire", "owl.invoke"} {
		if s := spans[n]; s.parentID != api.spanID {
			t.Errorf("%s's parent is %s, want the API's span %s", n, s.parentID, api.spanID)
		}
	}
	if spans["owl.init"].parentID != spans["owl.acquire"].spanID {
		t.Errorf("owl.init is not within owl.acquire: %+v", spans)
	}
	if seenParent != inv.spanID {
		t.Errorf("the runtime's parent is %s, want owl.invoke's span %s", seenParent, inv.spanID)
	}
	if inv.attrs["faas.name"] != "traced" || inv.attrs["faas.coldstart"] != "true" || inv.attrs["faas.invocation_id"] != resp.Header.Get("x-amzn-RequestId") {
		t.Errorf("owl.invoke's attributes: %v", inv.attrs)
	}

	t.Run("async", func(t *testing.T) {
		ts := ts.as(t)
		const root = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
		resp, body := ts.rawInvoke("traced/invocations", `{}`, map[string]string{"X-Amz-Invocation-Type": "Event", "X-Amzn-Trace-Id": root})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("Event invoke: %d %s", resp.StatusCode, body)
		}
		spans := recv.waitSpans(t, "5759e988bd862e3fe1be46a994272793", "owl.api Invoke", "owl.queue", "owl.acquire", "owl.invoke")
		if q := spans["owl.queue"]; q.parentID != spans["owl.api Invoke"].spanID || spans["owl.invoke"].parentID != spans["owl.api Invoke"].spanID {
			t.Errorf("the queue's and the invocation's spans are not children of the API's: %+v", spans)
		}
		if spans["owl.invoke"].attrs["faas.coldstart"] != "false" {
			t.Errorf("a warm invocation's span says cold: %v", spans["owl.invoke"].attrs)
		}
	})

	t.Run("subject", func(t *testing.T) {
		ts := ts.as(t)
		if _, stderr, code := owlCLI(t, ts.URL, "trigger", "add", "--subject", "traced.in", "--function", "traced", "--batch-size", "1"); code != 0 {
			t.Fatalf("trigger add: %s", stderr)
		}
		const root = "Root=1-6759e988-cd862e3fe1be46a994272793;Parent=63995c3f42cd8ad8;Sampled=1"
		resp, body := ts.do("POST", "/owl/v1/events/publish", []byte(`{"Subject":"traced.in","Data":{}}`), map[string]string{"X-Amzn-Trace-Id": root})
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"Stored":true`) {
			t.Fatalf("publish: %d %s", resp.StatusCode, body)
		}
		spans := recv.waitSpans(t, "6759e988cd862e3fe1be46a994272793", "owl.queue", "owl.invoke")
		if s := spans["owl.invoke"]; s.attrs["faas.name"] != "traced" {
			t.Errorf("the subject's invocation span: %+v", s)
		}
	})

	t.Run("function to function", func(t *testing.T) {
		ts := ts.as(t)
		ts.createCaller("tcaller")
		const id = "0af7651916cd43dd8448eb211c80319c"
		resp, body := ts.rawInvoke("tcaller/invocations", `{"call":"traced","payload":{"action":"env"}}`,
			map[string]string{"traceparent": "00-" + id + "-b7ad6b7169203331-01"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("invoke: %d %s", resp.StatusCode, body)
		}
		var out struct{ Payload string }
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("the caller answered %s", body)
		}
		if seen, _ := runtimeTrace(t, []byte(out.Payload)); seen != id {
			t.Fatalf("the callee saw trace %s, want the caller's %s", seen, id)
		}
		spans := recv.waitSpans(t, id, "owl.api Invoke", "owl.invoke")
		n := 0
		recv.mu.Lock()
		for _, s := range recv.spans {
			if s.traceID == id && s.name == "owl.api Invoke" {
				n++
			}
		}
		recv.mu.Unlock()
		if n != 2 {
			t.Errorf("want the caller's and the callee's API spans in one trace, got %d: %+v", n, spans)
		}
	})
}

// TestTracesEndpointDown: with an OTLP endpoint where nothing listens,
// invocations succeed as usual, and the spans that could not be sent are
// counted as dropped.
func TestTracesEndpointDown(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *config.Config) { c.OTLPEndpoint = "http://" + testkit.FreeAddr(t) })
	ts.createKitchensink("untraced")
	for range 5 {
		if r := ts.invoke("untraced", `{}`); r.funcErr != "" {
			t.Fatalf("an invocation failed: %+v", r)
		}
	}
	testkit.Eventually(t, 90*time.Second, func() error {
		_, body := ts.do(http.MethodGet, "/metrics", nil, nil)
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "owl_trace_spans_dropped_total ") && l != "owl_trace_spans_dropped_total 0" {
				return nil
			}
		}
		return fmt.Errorf("no spans counted as dropped yet")
	})
}
