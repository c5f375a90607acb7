package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/testkit/ocitest"
)

// BenchmarkImageColdStart measures, in one run, the same aws-lambda-go
// binary (the kitchensink) as a FROM scratch image and as a zip:
//
//   - first: from CreateFunction to the first invocation's answer. For the
//     image that includes the pull (from a registry in the test process,
//     each iteration a new image: all its layers downloaded, verified and
//     unpacked) and waiting for State Active; for the zip, the upload and
//     the unpacking of the code.
//
//   - cold: a later cold start, once the code is on the node: the
//     configuration is changed (so the environment is retired) and the
//     next invocation timed.
//
//     go test -run '^$' -bench BenchmarkImageColdStart -benchtime 10x ./internal/server
func BenchmarkImageColdStart(b *testing.B) {
	requireRoot(b)
	build(b)
	host := ocitest.Registry(b, nil)
	ts := startServer(b, "", func(c *config.Config) { c.InsecureRegistries = []string{host} })
	sdk := ts.sdk()
	ctx := context.Background()
	bin := binaryLayer(b)
	invoke := func(name string) {
		resp, body := ts.rawInvoke(name+"/invocations", `{}`, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" {
			b.Fatalf("invoke %s: %d %s", name, resp.StatusCode, body)
		}
	}
	// create makes function name, timing (b's timer) from CreateFunction on.
	create := map[string]func(b *testing.B, name string, i int){
		"image": func(b *testing.B, name string, i int) {
			// A new image each time: its one layer has a nonce.
			nonce := ocitest.File{Name: "nonce", Body: []byte(fmt.Sprint(time.Now().UnixNano(), i))}
			uri := ocitest.Push(b, host, name+":v1", ocitest.Image(b, ocitest.Config{Arch: ociArch, Entrypoint: []string{"/main"}}, ocitest.Layer(b, bin, nonce)))
			b.StartTimer()
			createImage(b, ts, name, uri, nil)
			if c := waitImage(b, ts, name).Configuration; c.State != types.StateActive {
				b.Fatalf("%s: %s", c.State, aws.ToString(c.StateReason))
			}
		},
		"zip": func(b *testing.B, name string, _ int) {
			b.StartTimer()
			ts.createKitchensink(name)
		},
	}
	seq := 0 // b.Run runs each benchmark more than once: names must not repeat
	for _, kind := range []string{"image", "zip"} {
		b.Run(kind+"-first", func(b *testing.B) {
			b.StopTimer()
			for range b.N {
				seq++
				name := fmt.Sprintf("bench-%s-%d", kind, seq)
				create[kind](b, name, seq)
				invoke(name)
				b.StopTimer()
			}
		})
		b.Run(kind+"-cold", func(b *testing.B) {
			b.StopTimer()
			seq++
			name := fmt.Sprintf("bench-%s-cold-%d", kind, seq)
			create[kind](b, name, seq)
			b.StopTimer()
			for i := range b.N {
				if _, err := sdk.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(name),
					Environment: &types.Environment{Variables: map[string]string{"COLD_START": fmt.Sprint(i)}}}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				invoke(name)
				b.StopTimer()
			}
		})
	}
}
