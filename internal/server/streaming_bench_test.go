package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// BenchmarkResponseStream measures, in one run and with the same
// aws-sdk-go-v2 client, one warm Node.js function wrapped in
// awslambda.streamifyResponse: through InvokeWithResponseStream, the time
// to its first PayloadChunk and to InvokeComplete; through Invoke (Lambda
// buffers a streaming function invoked that way), the time to the whole
// answer. "delay" writes a chunk, waits 100 ms and writes another: the
// first byte's head start; "small" writes one short chunk: what the
// stream costs over a buffered answer.
//
//	go test -run '^$' -bench BenchmarkResponseStream -benchtime 200x ./internal/server
func BenchmarkResponseStream(b *testing.B) {
	ts := startServer(b, "")
	ctx := context.Background()
	if _, err := ts.sdk().CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String("bench-stream"), Runtime: types.Runtime(interpreter(b, "nodejs")), Handler: aws.String("index.handler"),
		Role: aws.String("arn:aws:iam::000000000000:role/owl"), Timeout: aws.Int32(30),
		Code: &types.FunctionCode{ZipFile: makeZip(b, zipEntry{name: "index.mjs", body: streamNode})},
	}); err != nil {
		b.Fatal(err)
	}
	for _, payload := range []struct{ name, event string }{{"delay", `{"delay":100}`}, {"small", `{"n":1}`}} {
		b.Run(payload.name+"/stream", func(b *testing.B) {
			call := func() (first, total time.Duration) {
				start := time.Now()
				out, err := ts.sdk().InvokeWithResponseStream(ctx, &lambda.InvokeWithResponseStreamInput{
					FunctionName: aws.String("bench-stream"), Payload: []byte(payload.event)})
				if err != nil {
					b.Fatal(err)
				}
				es := out.GetStream()
				defer es.Close()
				for ev := range es.Events() {
					switch v := ev.(type) {
					case *types.InvokeWithResponseStreamResponseEventMemberPayloadChunk:
						if first == 0 {
							first = time.Since(start)
						}
					case *types.InvokeWithResponseStreamResponseEventMemberInvokeComplete:
						if v.Value.ErrorCode != nil {
							b.Fatalf("%s: %s", aws.ToString(v.Value.ErrorCode), aws.ToString(v.Value.ErrorDetails))
						}
					}
				}
				return first, time.Since(start)
			}
			call() // warm
			firsts, totals := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				f, t := call()
				firsts, totals = append(firsts, f), append(totals, t)
			}
			b.StopTimer()
			reportPercentiles(b, "first", firsts)
			reportPercentiles(b, "total", totals)
		})
		b.Run(payload.name+"/invoke", func(b *testing.B) {
			call := func() time.Duration {
				start := time.Now()
				out, err := ts.sdk().Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("bench-stream"), Payload: []byte(payload.event)})
				if err != nil || out.FunctionError != nil {
					b.Fatalf("%v %s", err, out.Payload)
				}
				return time.Since(start)
			}
			call() // warm
			totals := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				totals = append(totals, call())
			}
			b.StopTimer()
			reportPercentiles(b, "total", totals)
		})
	}
}

// reportPercentiles reports the p50 and p99 of lat, in milliseconds, as
// name-p50-ms and name-p99-ms.
func reportPercentiles(b *testing.B, name string, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, name+"-p99-ms")
}
