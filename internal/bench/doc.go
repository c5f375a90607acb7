// Package bench is Owl's own load generator, behind `owl bench`: it measures
// an Owl endpoint the way a client sees it (end to end, over HTTP keep-alive)
// and measures a bare Go net/http hello server with the very same code path,
// so that the ratios it reports are honest.
//
// Modes:
//
//   - Warm: N synchronous invocations of an already warm function over C
//     keep-alive connections, after a warm-up; every round trip is timed.
//   - Throughput: C connections invoke back to back for D; completed
//     invocations per second.
//   - Cold: for each of N iterations the function's configuration is changed
//     (the environment variable BENCH_ITER), which makes a new $LATEST
//     revision whose environments do not exist yet; the first invocation of
//     that revision is timed. The log tail of each cold invocation must carry
//     an "Init Duration" (the platform's own mark of a cold start), else the
//     iteration counts as an error. The code is unchanged, so the node's
//     unpacked-code cache is warm: this is the cost of a new execution
//     environment (sandbox + runtime init + first invoke), which is what
//     "cold start of a new version" means for a config-only deploy and for
//     every scale-out.
//   - Burst: N invocations started at once (one goroutine each) over C
//     connections (C = N by default), usually of a function that sleeps
//     (BurstPayload); the wall time from the first send to the last
//     response, the concurrency reached and how many were cold. With Fresh,
//     on a new revision that has no environment yet: scaling from zero.
//   - Baseline: the same load against a bare net/http hello server running
//     in a separate process (BaselineHandler, which sleeps sleep_ms like
//     hello-go), Exec, the fork+exec+wait time of a command (e.g.
//     `unshare ... /bin/true`) as the cold-start floor, and Runc, `runc run`
//     of a one-program OCI bundle, a container's cold start.
//
// Compare (`owl bench report`) sets Owl's results beside the baselines and
// Owl's targets (report.go); ReadResults also reads `go test -bench` output,
// for the sandbox churn benchmark.
//
// Every response that is not 200, carries X-Amz-Function-Error or fails in
// transport counts as an error; errors are grouped by kind in the Result,
// with an example each, and never dropped. Latencies of failed requests are
// not mixed into the percentiles.
//
// The client is net/http with one Transport per run whose pool is sized to
// the connection count, so each worker goroutine keeps one connection for
// the whole run; a request is a shallow copy of a template and allocates
// little, so the generator adds the same small overhead to both targets.
package bench
