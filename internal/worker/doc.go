// Package worker owns execution environments on one node: per function
// version pools of sandboxes with a running runtime, reused warm for the next
// invocation, created cold when none is idle, and torn down on failure,
// configuration change, idleness or shutdown.
//
// One environment serves one invocation at a time (Lambda's model); scaling
// is more environments. An environment whose runtime timed out, crashed or
// left an invocation unanswered is never reused.
//
// # Parts
//
// The Worker (worker.go) runs an invocation: Invoke admits it, acquires an
// environment, delivers the event through the environment's Runtime API
// (internal/runtimeapi) and concludes with a Result and its log. The
// parts it uses each own one thing, under their own lock or none:
//
//   - admission (capacity.go): concurrency slots, per function (reserved
//     concurrency) and for the account.
//   - memoryBudget (capacity.go): the MemorySize of all environments
//     against the node's budget × overcommit; a reservation that does not
//     fit evicts the least recently used idle environment or waits.
//   - envPool (pool.go): every environment, the idle ones per configuration
//     (poolKey: function, version, revision), and each environment's state
//     (state.go). It decides which environment goes where; environments it
//     retires are torn down by the worker (env.go).
//   - env (env.go): one environment — a sandbox, its Runtime API server and
//     its log capture (logcapture.go) — and how one is started (start,
//     serve, awaitReady), frozen, thawed and torn down.
//   - the code cache (codecache.go, layers.go): code and layers unpacked once
//     per node, referenced by the environments that bind them.
//   - prewarmPool (prewarm.go): sandboxes whose interpreter already runs, to
//     be specialised for a function on a cold start.
//   - provisioning (provision.go): provisioned concurrency, kept at its
//     targets by a loop.
//   - extensions (extensions.go): which external extensions an environment
//     starts (a launcher in front of the runtime, a relay marking each
//     one's output), AWS_LAMBDA_EXEC_WRAPPER, the process look-ups that
//     tell a crash, and the lifecycle the Runtime API server is told of:
//     INVOKE, the end of an invocation, SHUTDOWN at teardown, telemetry.
//
// Sandboxes come through a seam (sandboxes.go): the Sandboxes and Sandbox
// interfaces hold what the worker uses of *sandbox.Manager and
// *sandbox.Sandbox; SandboxManager adapts a manager. The unit tests run the
// worker on a fake of the seam, without root.
//
// # Environment states
//
// An environment is starting (its runtime initialises), busy (serving one
// invocation), idle (in its pool), frozen (idle, its sandbox stopped by the
// cgroup freezer after FreezeAfter) or retiring (being destroyed; final):
//
//	starting ─▶ busy ◀─▶ idle ─▶ frozen ─▶ busy (thawed by the next acquire)
//	any state ─▶ retiring
//
// Changes are checked (state.go): an illegal one is a worker bug, refused
// and logged as an error.
package worker
