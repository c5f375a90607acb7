package sources

import (
	"regexp"
	"testing"
)

// TestTraceOf: a batch is invoked in the trace its first traced message
// carries (X-Amzn-Trace-Id or traceparent, any case), else in a new one.
func TestTraceOf(t *testing.T) {
	const xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	plain := Record{Headers: map[string]string{"Other": "x"}}
	for _, c := range []struct {
		records []Record
		want    string
	}{
		{[]Record{plain, {Headers: map[string]string{"traceparent": "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"}}}, xray},
		{[]Record{{Headers: map[string]string{"X-Amzn-Trace-Id": xray}}}, xray},
		{[]Record{{Headers: map[string]string{"x-amzn-trace-id": xray}}}, xray},
	} {
		if got := traceOf(c.records); got != c.want {
			t.Errorf("%+v: trace %q, want %q", c.records, got, c.want)
		}
	}
	newRoot := regexp.MustCompile(`^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Sampled=1$`)
	for _, rs := range [][]Record{nil, {plain}, {{Headers: map[string]string{"traceparent": "bad"}}}} {
		if got := traceOf(rs); !newRoot.MatchString(got) {
			t.Errorf("%+v: trace %q, want a new root", rs, got)
		}
	}
}
