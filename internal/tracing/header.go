package tracing

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Headers an invocation's trace arrives in.
const (
	// HeaderXRay is Lambda's (X-Ray's) trace header, also what the
	// runtime gets as Lambda-Runtime-Trace-Id and _X_AMZN_TRACE_ID.
	HeaderXRay = "X-Amzn-Trace-Id"
	// HeaderTraceparent is W3C Trace Context's.
	HeaderTraceparent = "traceparent"
)

// FromHeaders is the X-Ray trace header an invocation carries: h's
// X-Amzn-Trace-Id, unchanged, when it is well formed, else its traceparent
// converted, else a new root, as Lambda starts one for a request without
// a trace. A malformed header is ignored, never an error.
func FromHeaders(h http.Header) string {
	// Indexed by their canonical keys: Get would canonicalise
	// "traceparent" anew (an allocation) on every invocation.
	if x := h["X-Amzn-Trace-Id"]; len(x) > 0 {
		if _, ok := ParseXRay(x[0]); ok {
			return x[0] // as it came, other fields (Lineage, Self) too
		}
	}
	if tp := h["Traceparent"]; len(tp) > 0 {
		if sc, ok := ParseTraceparent(tp[0]); ok {
			return FormatXRay(sc)
		}
	}
	return NewHeader()
}

// FromMap is FromHeaders for headers in a map whose keys may be in any
// case (a NATS message's).
func FromMap(m map[string]string) string {
	h := http.Header{}
	for k, v := range m {
		switch {
		case strings.EqualFold(k, HeaderXRay):
			h.Set(HeaderXRay, v)
		case strings.EqualFold(k, HeaderTraceparent):
			h.Set(HeaderTraceparent, v)
		}
	}
	return FromHeaders(h)
}

// NewHeader is the X-Ray header of a new, sampled trace without a parent:
// Root=1-<the time in seconds, 8 hex digits>-<24 random hex digits>.
func NewHeader() string {
	var tid trace.TraceID
	binary.BigEndian.PutUint32(tid[:4], uint32(time.Now().Unix()))
	// Unique, not secret (as X-Ray's): the runtime's fast generator.
	binary.BigEndian.PutUint64(tid[4:12], rand.Uint64())
	binary.BigEndian.PutUint32(tid[12:], rand.Uint32())
	return FormatXRay(trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, TraceFlags: trace.FlagsSampled}))
}

// ParseXRay reads an X-Ray trace header (Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1,
// in any order, other fields ignored): its trace id (the Root's two hex
// parts), parent span id (none when absent) and sampling flag (sampled
// unless Sampled=0). ok is false without a well-formed Root.
func ParseXRay(h string) (sc trace.SpanContext, ok bool) {
	cfg := trace.SpanContextConfig{TraceFlags: trace.FlagsSampled, Remote: true}
	root := false
	for f := range strings.SplitSeq(h, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "Root":
			// 1-<8 hex>-<24 hex>
			if len(v) != 35 || v[:2] != "1-" || v[10] != '-' || !decodeHex(cfg.TraceID[:4], v[2:10]) || !decodeHex(cfg.TraceID[4:], v[11:]) {
				return trace.SpanContext{}, false
			}
			root = cfg.TraceID.IsValid()
		case "Parent":
			if len(v) != 16 || !decodeHex(cfg.SpanID[:], v) {
				return trace.SpanContext{}, false
			}
		case "Sampled":
			if v == "0" {
				cfg.TraceFlags = 0
			}
		}
	}
	if !root {
		return trace.SpanContext{}, false
	}
	return trace.NewSpanContext(cfg), true
}

// ParseTraceparent reads a W3C traceparent (00-<32 hex trace id>-<16 hex
// parent id>-<2 hex flags>; a later version may append fields). ok is
// false when it is malformed or its ids are all zeros.
func ParseTraceparent(h string) (sc trace.SpanContext, ok bool) {
	h = strings.TrimSpace(h)
	if len(h) < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-' || (len(h) > 55 && h[55] != '-') {
		return trace.SpanContext{}, false
	}
	var ver, flags [1]byte
	cfg := trace.SpanContextConfig{Remote: true}
	if !decodeHex(ver[:], h[:2]) || ver[0] == 0xff || (ver[0] == 0 && len(h) != 55) ||
		!decodeHex(cfg.TraceID[:], h[3:35]) || !decodeHex(cfg.SpanID[:], h[36:52]) || !decodeHex(flags[:], h[53:55]) {
		return trace.SpanContext{}, false
	}
	cfg.TraceFlags = trace.TraceFlags(flags[0]) & trace.FlagsSampled
	sc = trace.NewSpanContext(cfg)
	if !sc.IsValid() {
		return trace.SpanContext{}, false
	}
	return sc, true
}

// FormatXRay is sc as an X-Ray trace header: Root, then Parent when sc
// has a span id, then Sampled.
func FormatXRay(sc trace.SpanContext) string {
	tid, sid := sc.TraceID(), sc.SpanID()
	b := make([]byte, 0, 72)
	b = append(b, "Root=1-"...)
	b = hex.AppendEncode(b, tid[:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, tid[4:])
	if sid.IsValid() {
		b = append(b, ";Parent="...)
		b = hex.AppendEncode(b, sid[:])
	}
	if sc.IsSampled() {
		b = append(b, ";Sampled=1"...)
	} else {
		b = append(b, ";Sampled=0"...)
	}
	return string(b)
}

// FormatTraceparent is sc as a W3C traceparent; sc must have a span id.
func FormatTraceparent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// decodeHex decodes lower- or upper-case hex s into dst, which it must
// fill exactly.
func decodeHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
