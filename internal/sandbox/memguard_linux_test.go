package sandbox

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkOOMKill measures how long a function that allocates past its
// memory keeps running after its last progress: a 128 MB sandbox (1/14 of
// a CPU) allocating 300 MB, one page per write, saying "mb N" after each
// MB. Reported: limit-to-kill-ms, the median time from the last "mb" line
// read to the sandbox's exit, total-ms, its whole run, and guard-kills/op,
// the share of runs the guard ended (not the kernel: it shows the guard's
// trigger, a v1 threshold or v2's memory.events, fired). "kernel" is the
// baseline: the memory guard off, the kernel's OOM killer alone. The
// "-cold-text" cases first evict the probe binary from the page cache, so
// the sandbox faults its program text in and its own cgroup is charged
// for it: at the limit the kernel then reclaims and re-faults that text
// instead of giving up.
//
//	go test -run '^$' -bench OOMKill -benchtime 10x ./internal/sandbox/
//
// and on cgroup v2, in the qemu guest (docs/architecture.md, "Testing on a
// cgroup v2 host"):
//
//	bash .ci/v2guest -run sandbox -timeout 90m -- -test.run '^$' -test.bench OOMKill -test.benchtime 5x
func BenchmarkOOMKill(b *testing.B) {
	for _, mode := range []string{"guard", "kernel", "guard-cold-text", "kernel-cold-text"} {
		b.Run(mode, func(b *testing.B) {
			memGuardEnabled = strings.HasPrefix(mode, "guard")
			coldText := strings.HasSuffix(mode, "cold-text")
			defer func() { memGuardEnabled = true }()
			m := newTestManager(b)
			code := probeCodeDir(b)
			var tail, total []time.Duration
			guardKills := 0
			for b.Loop() {
				spec := testSpec(b, code, "alloc", "300", "progress")
				spec.MemoryMB = 128
				if coldText {
					evictFromPageCache(b, filepath.Join(code, "probe"))
				}
				start := time.Now()
				sb := create(b, m, spec)
				var last time.Time
				r := bufio.NewReader(sb.Output())
				sb.Output().SetReadDeadline(time.Now().Add(5 * time.Minute))
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						break
					}
					if strings.HasPrefix(line, "mb ") {
						last = time.Now()
					}
				}
				<-sb.Done()
				end := time.Now()
				if err := sb.ExitError(); err == nil || err.Error() != "signal: killed" {
					b.Fatalf("exit %v, want signal: killed", err)
				}
				if last.IsZero() {
					b.Fatal("no progress line")
				}
				tail = append(tail, end.Sub(last))
				total = append(total, end.Sub(start))
				if sb.memKilled.Load() {
					guardKills++
				}
				sb.Destroy()
			}
			b.ReportMetric(medianMs(tail), "limit-to-kill-ms")
			b.ReportMetric(medianMs(total), "total-ms")
			b.ReportMetric(float64(guardKills)/float64(len(tail)), "guard-kills/op")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// evictFromPageCache drops a file's pages from the page cache.
func evictFromPageCache(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		b.Fatal(err)
	}
}

func medianMs(ds []time.Duration) float64 {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[len(s)/2]) / float64(time.Millisecond)
}
