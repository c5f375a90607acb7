package server_test

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/testkit"
)

// BenchmarkCluster measures, in one run on a NATS cluster of three
// nats-server processes (docs/benchmarks.md, "A cluster"):
//
//   - hop: the warm latency (p50/p99, sequential, alternating) through an
//     all node of a function only it runs (local) and of one only a worker
//     runs (forwarded over NATS request/reply);
//
//   - throughput: a warm function through an api node for 10 s, 8 clients
//     at once, with one worker and then two;
//
//   - failover: under that load, one worker killed with SIGKILL: how long
//     until what it ran failed and until new invocations stopped failing.
//
//     go test -run '^$' -bench BenchmarkCluster -benchtime 1x ./internal/server
func BenchmarkCluster(b *testing.B) {
	requireRoot(b)
	build(b)
	nc := startNATSCluster(b, 3)
	for range b.N {
		all := startNode(b, nc, b.TempDir(), "all1", "all", "--runtimes", "provided.al2023")
		w1 := startNode(b, nc, b.TempDir(), "w1", "worker", "--runtimes", "provided.al2")
		all.createKitchensink("here", func(in *lambda.CreateFunctionInput) { in.Runtime = types.RuntimeProvidedal2023 })
		all.createKitchensink("there", func(in *lambda.CreateFunctionInput) { in.Runtime = types.RuntimeProvidedal2 })
		benchHop(b, all.URL, "here", "there")
		all.sigterm(b)
		all.wantCleanStop(b)

		api := startNode(b, nc, b.TempDir(), "api1", "api")
		api.createKitchensink("tp", func(in *lambda.CreateFunctionInput) { in.Runtime = types.RuntimeProvidedal2 })
		one := benchThroughput(b, api.URL, "tp", 10*time.Second, nil)
		w2 := startNode(b, nc, b.TempDir(), "w2", "worker", "--runtimes", "provided.al2")
		testkit.WaitFor(b, 30*time.Second, "w2 to join", func() bool { return api.nodes(b)["w2"].Health == "ok" })
		two := benchThroughput(b, api.URL, "tp", 10*time.Second, nil)
		b.Logf("throughput through the api node, 8 clients, warm hello: 1 worker %.0f/s, 2 workers %.0f/s", one, two)
		b.ReportMetric(one, "inv/s-1worker")
		b.ReportMetric(two, "inv/s-2workers")

		restarted := cleanAfterKill(b, nc, w1, "w1", "--runtimes", "provided.al2")
		benchThroughput(b, api.URL, "tp", 8*time.Second, func() {
			if err := w1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				b.Fatal(err)
			}
		})
		w1.waitExit(b, 30*time.Second)
		// w1 comes back on its data dir to clean up what the kill left.
		w1 = startNode(b, nc, w1.dataDir, "w1", "worker", "--runtimes", "provided.al2")
		restarted()
		for _, p := range []*owlProcess{api, w1, w2} {
			p.sigterm(b)
		}
		for _, p := range []*owlProcess{api, w1, w2} {
			p.wantCleanStop(b)
		}
	}
}

// benchHop times warm sequential invocations of local and remote,
// alternating, and reports each one's p50 and p99.
func benchHop(b *testing.B, url, local, remote string) {
	const n = 400
	for range 20 { // warm both
		for _, fn := range []string{local, remote} {
			if o := invokeHTTP(url, fn, `{}`, nil); o.status != http.StatusOK {
				b.Fatalf("warming %s: %d %s", fn, o.status, o.body)
			}
		}
	}
	took := map[string][]time.Duration{}
	for range n {
		for _, fn := range []string{local, remote} {
			o := invokeHTTP(url, fn, `{}`, nil)
			if o.status != http.StatusOK {
				b.Fatalf("%s: %d %s", fn, o.status, o.body)
			}
			took[fn] = append(took[fn], o.took)
		}
	}
	for _, fn := range []string{local, remote} {
		d := took[fn]
		slices.Sort(d)
		p50, p99 := d[len(d)/2], d[len(d)*99/100]
		b.Logf("%s: p50 %v p99 %v (%d sequential warm invocations)", fn, p50, p99, n)
		b.ReportMetric(float64(p50.Microseconds()), "µs-p50-"+fn)
		b.ReportMetric(float64(p99.Microseconds()), "µs-p99-"+fn)
	}
}

// benchThroughput invokes fn with 8 clients for d and returns the
// successful invocations per second. kill, when set, is called a third
// of the way in; the failures after it are then reported.
func benchThroughput(b *testing.B, url, fn string, d time.Duration, kill func()) float64 {
	wantAllOK(b, "warming", invokeMany(url, fn, `{}`, 32, 8))
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var fails []invokeOutcome
	var firstOKAfterKill atomic.Int64
	var killedAt atomic.Int64
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				began := time.Now()
				o := invokeHTTP(url, fn, `{}`, nil)
				if o.status == http.StatusOK && !strings.Contains(o.body, "errorType") {
					ok.Add(1)
					if k := killedAt.Load(); k != 0 && began.UnixNano() > k {
						firstOKAfterKill.CompareAndSwap(0, o.ended.UnixNano())
					}
					continue
				}
				failed.Add(1)
				mu.Lock()
				fails = append(fails, o)
				mu.Unlock()
			}
		}()
	}
	if kill != nil {
		time.Sleep(d / 3) // the load runs a third of d before the kill
		killedAt.Store(time.Now().UnixNano())
		kill()
	}
	wg.Wait()
	rate := float64(ok.Load()) / time.Since(start).Seconds()
	if kill == nil {
		if failed.Load() != 0 {
			b.Fatalf("%d invocations failed without a kill: first %+v", failed.Load(), fails[0])
		}
		return rate
	}
	k := time.Unix(0, killedAt.Load())
	var lastFail time.Duration
	for _, o := range fails {
		if o.errType != "ServiceException" {
			b.Errorf("a failure other than the killed node's: %d %s %s", o.status, o.errType, o.body)
		}
		lastFail = max(lastFail, o.ended.Sub(k))
	}
	firstOK := time.Duration(0)
	if f := firstOKAfterKill.Load(); f != 0 {
		firstOK = time.Unix(0, f).Sub(k)
	}
	b.Logf("worker killed under load: %d invocations failed (ServiceException), the last %v after the kill; the first invocation started after the kill succeeded %v after it; %.0f/s overall",
		len(fails), lastFail, firstOK, rate)
	b.ReportMetric(float64(lastFail.Milliseconds()), "ms-kill-to-last-failure")
	b.ReportMetric(float64(firstOK.Milliseconds()), "ms-kill-to-first-success")
	return rate
}
