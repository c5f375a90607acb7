package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// BenchmarkExtensions measures what an external extension adds to a warm
// invocation: the same server invokes, one at a time, a function without
// extensions (the kitchensink), one whose extension subscribes to INVOKE,
// and one whose extension also subscribes to platform telemetry. It
// reports the p50 of each.
//
//	go test -run '^$' -bench BenchmarkExtensions -benchtime 2000x ./internal/server
func BenchmarkExtensions(b *testing.B) {
	requireRoot(b)
	build(b)
	ts := startServer(b, "")
	ts.createKitchensink("plain")
	for _, mode := range []string{"bench", "bench-telemetry"} {
		ts.createExtended(b, mode, mode)
	}
	for _, c := range []struct{ name, fn string }{{"no-extension", "plain"}, {"extension", "bench"}, {"extension+telemetry", "bench-telemetry"}} {
		b.Run(c.name, func(b *testing.B) {
			in := &lambda.InvokeInput{FunctionName: aws.String(c.fn), Payload: []byte(`{}`)}
			sdk := ts.sdk()
			if _, err := sdk.Invoke(context.Background(), in); err != nil { // cold start
				b.Fatal(err)
			}
			durs := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				out, err := sdk.Invoke(context.Background(), in)
				durs = append(durs, time.Since(t0))
				if err != nil || out.FunctionError != nil {
					b.Fatalf("invoke: %v %s", err, out.Payload)
				}
			}
			slices.Sort(durs)
			b.ReportMetric(float64(durs[len(durs)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds()), "p99-µs")
		})
	}
}
