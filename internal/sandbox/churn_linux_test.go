package sandbox

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkCreateDestroyParallel is the node's sandbox churn rate: create a
// sandbox running /usr/bin/true, wait for it, destroy it, from four goroutines per
// GOMAXPROCS (-cpu sets it), with fresh inits (no spares:
// under sustained churn spares run out). 1e9/ns-per-op is creates+destroys
// per second.
func BenchmarkCreateDestroyParallel(b *testing.B) {
	m := newTestManagerWith(b, Config{})
	code := b.TempDir()
	os.Chmod(code, 0o755)
	ctx := context.Background()
	var seq atomic.Int64
	b.ReportAllocs()
	// Creating a sandbox mostly waits (for the init, the kernel), so four
	// goroutines per CPU keep the CPUs busy.
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := "churn" + strconv.FormatInt(seq.Add(1), 10)
			sb, err := m.Create(ctx, Spec{ID: id, CodeDir: code, Argv: []string{"/usr/bin/true"}, MemoryMB: 128})
			if err != nil {
				b.Error(err)
				return
			}
			<-sb.Done()
			if err := sb.Destroy(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sandboxes/s")
}
