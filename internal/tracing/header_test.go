package tracing

import (
	"net/http"
	"regexp"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestTraceparentToXRay(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"},
		{"00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"},
		{"00-5759E988BD862E3FE1BE46A994272793-53995C3F42CD8AD8-03", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"},
		// A later version may append fields.
		{"01-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01-extra", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"},
	} {
		convert(t, c.in, c.want, ParseTraceparent, FormatXRay)
	}
}

// convert checks that parse takes in and format writes what it parsed as
// want, and returns what parse made of it (ok false when it refused).
func convert(t *testing.T, in, want string, parse func(string) (trace.SpanContext, bool), format func(trace.SpanContext) string) (trace.SpanContext, bool) {
	t.Helper()
	sc, ok := parse(in)
	if !ok {
		t.Errorf("%s: refused", in)
		return sc, false
	}
	if got := format(sc); got != want {
		t.Errorf("%s: got %s, want %s", in, got, want)
	}
	return sc, true
}

func TestXRayToTraceparent(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"},
		{"Sampled=0;Parent=53995c3f42cd8ad8;Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=a87bd80c:1", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00"},
	} {
		sc, ok := convert(t, c.in, c.want, ParseXRay, FormatTraceparent)
		if !ok {
			continue
		}
		// And back: the same ids.
		back, ok := ParseTraceparent(FormatTraceparent(sc))
		if !ok || back.TraceID() != sc.TraceID() || back.SpanID() != sc.SpanID() || back.IsSampled() != sc.IsSampled() {
			t.Errorf("%s: the round trip changed it: %v", c.in, back)
		}
	}
	// A root without a parent (a new trace) stays one.
	sc, ok := ParseXRay("Root=1-5759e988-bd862e3fe1be46a994272793")
	if !ok || sc.SpanID().IsValid() || !sc.IsSampled() {
		t.Fatalf("a bare root: %v %v", sc, ok)
	}
	if got := FormatXRay(sc); got != "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1" {
		t.Errorf("a bare root formats as %s", got)
	}
}

func TestBadHeaders(t *testing.T) {
	for _, tp := range []string{"", "garbage", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8",
		"00-00000000000000000000000000000000-53995c3f42cd8ad8-01", "00-5759e988bd862e3fe1be46a994272793-0000000000000000-01",
		"ff-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01", "00-5759e988bd862e3fe1be46a99427279z-53995c3f42cd8ad8-01",
		"00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01-extra"} {
		if sc, ok := ParseTraceparent(tp); ok {
			t.Errorf("traceparent %q accepted: %v", tp, sc)
		}
	}
	for _, x := range []string{"", "garbage", "Root=1-5759e988-bd862e3f", "Root=2-5759e988-bd862e3fe1be46a994272793",
		"Root=1-5759e988-bd862e3fe1be46a99427279z", "Root=1-00000000-000000000000000000000000", "Parent=53995c3f42cd8ad8;Sampled=1",
		"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f"} {
		if sc, ok := ParseXRay(x); ok {
			t.Errorf("X-Ray header %q accepted: %v", x, sc)
		}
	}
}

var newRoot = regexp.MustCompile(`^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Sampled=1$`)

func TestFromHeaders(t *testing.T) {
	const tp = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
	const x = "Root=1-6759e988-bd862e3fe1be46a994272793;Parent=63995c3f42cd8ad8;Sampled=1"
	h := func(kv ...string) http.Header {
		hh := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			hh.Set(kv[i], kv[i+1])
		}
		return hh
	}
	if got := FromHeaders(h("X-Amzn-Trace-Id", x, "traceparent", tp)); got != x {
		t.Errorf("X-Amzn-Trace-Id first: got %s", got)
	}
	if got := FromHeaders(h("traceparent", tp)); got != "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1" {
		t.Errorf("traceparent: got %s", got)
	}
	if got := FromHeaders(h("X-Amzn-Trace-Id", "garbage", "traceparent", tp)); got != "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1" {
		t.Errorf("a malformed X-Amzn-Trace-Id is ignored for traceparent: got %s", got)
	}
	for _, hh := range []http.Header{h(), h("traceparent", "00-bad"), h("X-Amzn-Trace-Id", "Root=bad")} {
		got := FromHeaders(hh)
		if !newRoot.MatchString(got) {
			t.Errorf("%v: want a new root, got %s", hh, got)
		}
		if got == FromHeaders(hh) {
			t.Errorf("%v: two new roots are the same: %s", hh, got)
		}
	}
	if got := FromMap(map[string]string{"Traceparent": tp}); got != "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1" {
		t.Errorf("FromMap: got %s", got)
	}
}

// BenchmarkFromHeaders is what reading an invocation's trace costs the
// API with tracing off (the only tracing work on that path then).
//
//	go test -run '^$' -bench FromHeaders -benchmem ./internal/tracing
func BenchmarkFromHeaders(b *testing.B) {
	for _, c := range []struct{ name, key, value string }{
		{"xray", "X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"},
		{"traceparent", "traceparent", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"},
		{"none", "Other", "x"},
	} {
		h := http.Header{}
		h.Set(c.key, c.value)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				_ = FromHeaders(h)
			}
		})
	}
}
