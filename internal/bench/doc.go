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
//   - Baseline: the same load against a bare net/http hello server running
//     in a separate process (BaselineHandler), and Exec, the fork+exec+wait
//     time of a command (e.g. `unshare ... /bin/true`) as the cold-start
//     floor.
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
