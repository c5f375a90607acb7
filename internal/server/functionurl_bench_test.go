package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// BenchmarkFunctionURL measures, in one run, the warm latency (p50/p99,
// sequential requests over one keep-alive connection) of the same Go
// function through its function URL and through a direct Invoke (raw
// HTTP with the bearer token, the same client), and of a bare net/http
// server answering the same JSON (the floor HTTP itself sets here).
//
//	go test -run '^$' -bench BenchmarkFunctionURL -benchtime 2000x ./internal/server
func BenchmarkFunctionURL(b *testing.B) {
	ts := startServer(b, "")
	ts.createKitchensink("bench-url")
	out, err := ts.sdk().CreateFunctionUrlConfig(context.Background(), &lambda.CreateFunctionUrlConfigInput{
		FunctionName: aws.String("bench-url"), AuthType: types.FunctionUrlAuthTypeNone,
	})
	if err != nil {
		b.Fatal(err)
	}
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"message":"hello world"}`)
	}))
	defer bare.Close()
	for _, c := range []struct {
		name, method, url string
		hdr               map[string]string
	}{
		{"function-url", "GET", aws.ToString(out.FunctionUrl) + "hello", nil},
		{"direct-invoke", "POST", ts.URL + "/2015-03-31/functions/bench-url/invocations", map[string]string{"Authorization": "Bearer " + testToken}},
		{"bare-server", "GET", bare.URL + "/hello", nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer hc.CloseIdleConnections()
			call := func() {
				req, _ := http.NewRequest(c.method, c.url, strings.NewReader(`{}`))
				for k, v := range c.hdr {
					req.Header.Set(k, v)
				}
				resp, err := hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), "hello world") {
					b.Fatalf("%d %s", resp.StatusCode, body)
				}
			}
			call() // warm
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				call()
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
