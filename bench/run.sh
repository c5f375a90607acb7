#!/usr/bin/env bash
# bench/run.sh: Owl's benchmark record, measured beside its baselines in one run.
#
# Builds owl and examples/hello-go (CGO_ENABLED=0, as bootstrap), starts `owl serve` on a temp
# data dir and a free port, then for each round measures, baseline first and Owl right after:
#   warm latency at 1 and 32 connections     vs a bare Go net/http hello server (separate process)
#   throughput at 32 connections             vs the same bare server
#   cold start (first invoke of new versions) vs fork+exec+wait of /bin/true and of unshare,
#                                             and vs `runc run` of a one-program OCI bundle
#   burst: 1000 invocations of a 1 s function  vs the bare server sleeping 1 s, same burst
#          started at once (fresh revision)
# (warm, throughput and burst also give the server's and the functions' CPU per invocation)
# and, once, the sandbox package's create+destroy benchmark (go test -bench), then prints the
# comparison table (`owl bench report`), with ratios and Owl's targets (docs/benchmarks.md).
# Everything temporary (server, data dir, binaries) is removed on exit; results stay in $OUT.
#
# Run it as root (sandboxes need namespaces and cgroups) on an otherwise idle machine:
#   bench/run.sh
#   ROUNDS=3 D=10s bench/run.sh
#
# Settings (environment):
#   N=20000       warm invocations at 1 connection      N32=50000  warm invocations at 32 connections
#   D=10s         throughput duration                   COLD_N=50  cold starts
#   EXEC_N=200    runs of each exec baseline            ROUNDS=1   repetitions of the whole set
#   RUNC_N=100    runs of runc run (skipped, with a note, when runc is missing: apt-get install runc)
#   BURST_N=1000  invocations of the burst              BURST_SLEEP_MS=1000  each one's sleep
#   OVERCOMMIT=8  owl serve --memory-overcommit (admits the burst's 1000 × 128 MB)
#   CHURN_BENCHTIME=2s  -benchtime of BenchmarkCreateDestroy (internal/sandbox); 0 skips it
#   OUT=bench/results/<UTC timestamp>                   where the JSON results go
#   QUIET_WAIT=0  seconds to wait for the machine to be idle (< 10% busy) before measuring
# Exit status: 0 when every benchmark ran without a single failed invocation, 1 otherwise.
set -euo pipefail
# The Go release go.mod names (the machine's own go fetches it from the proxy).
export GOTOOLCHAIN=go1.27.3

N=${N:-20000}
N32=${N32:-50000}
D=${D:-10s}
COLD_N=${COLD_N:-50}
EXEC_N=${EXEC_N:-200}
ROUNDS=${ROUNDS:-1}
RUNC_N=${RUNC_N:-100}
BURST_N=${BURST_N:-1000}
BURST_SLEEP_MS=${BURST_SLEEP_MS:-1000}
OVERCOMMIT=${OVERCOMMIT:-8}
CHURN_BENCHTIME=${CHURN_BENCHTIME:-2s}
QUIET_WAIT=${QUIET_WAIT:-0}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
OUT=${OUT:-$REPO/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
FUNCTION=owl-bench-hello
BURST_FUNCTION=owl-bench-sleep # the same hello-go, invoked with {"sleep_ms":...}; its own environments

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run me as root: Owl's sandboxes need namespaces and cgroups"
command -v go >/dev/null || die "go is not on PATH"

TMP=$(mktemp -d /tmp/owl-bench.XXXXXX)
SERVER_PID=""
cleanup() {
	local rc=$?
	if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		log "stopping owl serve (pid $SERVER_PID)"
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		for _ in $(seq 1 300); do
			kill -0 "$SERVER_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$SERVER_PID" 2>/dev/null; then
			log "owl serve did not stop in 30s: killing it"
			kill -KILL "$SERVER_PID" 2>/dev/null || true
		fi
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$REPO"
mkdir -p "$OUT"

log "building owl and examples/hello-go"
OWL=$TMP/owl
CGO_ENABLED=0 go build -o "$OWL" ./cmd/owl
hello_build "$TMP/hello"

# The machine, as the results will be read with it.
{
	echo "date:   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "host:   $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
	echo "kernel: $(uname -r)"
	echo "go:     $(go version | cut -d' ' -f3-)"
	echo "owl:    $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
	echo "load:   $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

# A busy machine makes every figure noisy: say so before measuring.
busy() {
	local a b
	read -r _ a1 a2 a3 a4 a5 a6 a7 a8 _ </proc/stat
	sleep 1
	read -r _ b1 b2 b3 b4 b5 b6 b7 b8 _ </proc/stat
	a=$(((b1 + b2 + b3 + b6 + b7) - (a1 + a2 + a3 + a6 + a7)))
	b=$(((b1 + b2 + b3 + b4 + b5 + b6 + b7 + b8) - (a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8)))
	echo $((100 * a / (b > 0 ? b : 1)))
}
idle_busy=$(busy)
waited=0
while ((idle_busy > 10 && waited < QUIET_WAIT)); do
	log "machine ${idle_busy}% busy: waiting for it to be idle (${waited}s of ${QUIET_WAIT}s)"
	sleep 4
	waited=$((waited + 5))
	idle_busy=$(busy)
done
log "machine busy before the run: ${idle_busy}%"
if ((idle_busy > 10)); then
	log "WARNING: something else is using ${idle_busy}% of the CPUs; results will be noisy"
	ps -eo pid,pcpu,comm --sort=-pcpu | head -6 >&2
fi
echo "busy before the run: ${idle_busy}%" >>"$OUT/machine.txt"

# Sandbox churn, before the server starts so nothing else runs: the sandbox package's own
# benchmark (create a sandbox running /usr/bin/true, wait, destroy). `owl bench report` reads
# its output: ns/op becomes create+destroy per second. It has a sequential variant only.
CHURN=""
if [[ $CHURN_BENCHTIME != 0 ]]; then
	log "sandbox churn: go test -run XXX -bench BenchmarkCreateDestroy -benchtime $CHURN_BENCHTIME ./internal/sandbox/"
	if go test -run XXX -bench BenchmarkCreateDestroy -benchtime "$CHURN_BENCHTIME" -benchmem ./internal/sandbox/ \
		>"$OUT/sandbox-churn.txt" 2>&1; then
		grep '^Benchmark' "$OUT/sandbox-churn.txt" >&2 || true
	else
		cat "$OUT/sandbox-churn.txt" >&2
		log "FAILED: sandbox churn benchmark"
		CHURN_FAILED=1
	fi
	if grep -q '^Benchmark.*ns/op' "$OUT/sandbox-churn.txt"; then
		CHURN=$OUT/sandbox-churn.txt
	else
		log "note: the churn benchmark gave no result (skipped? it needs root and sandboxes)"
	fi
fi

log "starting owl serve"
export OWL_DATA=$TMP/data
# The burst admits BURST_N × 128 MB environments: overcommit the memory budget enough for them
# (the one-cgroup cap at the budget still protects the host).
owl_serve "$OWL" "$OWL_DATA" "$TMP/serve.log" --log-level info --memory-overcommit "$OVERCOMMIT"
SERVER_PID=$OWL_SERVE_PID
export OWL_ENDPOINT=$OWL_SERVE_ENDPOINT
log "owl serving at $OWL_ENDPOINT (data $OWL_DATA)"

FAILED=${CHURN_FAILED:-0}
# bench NAME ARGS...: one benchmark, its JSON in $OUT/NAME.json; a failure is counted, not fatal.
bench() {
	local name=$1
	shift
	log "$name: owl bench $*"
	if ! "$OWL" bench "$@" --json "$OUT/$name.json"; then
		log "FAILED: $name"
		FAILED=$((FAILED + 1))
	fi
}

"$OWL" bench warm --deploy "$TMP/hello" -f "$FUNCTION" -n 200 --warmup 0 >/dev/null ||
	die "could not deploy and invoke $FUNCTION"
"$OWL" bench warm --deploy "$TMP/hello" -f "$BURST_FUNCTION" -n 1 --warmup 0 >/dev/null ||
	die "could not deploy and invoke $BURST_FUNCTION"
# A timeout well past the sleep: a loaded machine must not turn slow starts into errors.
"$OWL" deploy "$TMP/hello" --name "$BURST_FUNCTION" --runtime provided.al2023 --timeout 30 >/dev/null ||
	die "could not set $BURST_FUNCTION's timeout"
BURST_DATA="{\"name\":\"owl\",\"sleep_ms\":$BURST_SLEEP_MS}"
if ! command -v runc >/dev/null; then
	log "note: runc is not installed (apt-get install runc): the runc run baseline is skipped"
fi
for round in $(seq 1 "$ROUNDS"); do
	r=r$round
	bench "$r-baseline-warm-c1" baseline --mode warm -c 1 -n "$N"
	bench "$r-owl-warm-c1" warm -f "$FUNCTION" -c 1 -n "$N"
	bench "$r-baseline-warm-c32" baseline --mode warm -c 32 -n "$N32"
	bench "$r-owl-warm-c32" warm -f "$FUNCTION" -c 32 -n "$N32"
	bench "$r-baseline-throughput-c32" baseline --mode throughput -c 32 -d "$D"
	bench "$r-owl-throughput-c32" throughput -f "$FUNCTION" -c 32 -d "$D"
	bench "$r-baseline-exec-true" baseline --mode exec -n "$EXEC_N" --exec /bin/true
	if command -v unshare >/dev/null; then
		bench "$r-baseline-exec-unshare" baseline --mode exec -n "$EXEC_N" \
			--exec "unshare --mount --pid --ipc --uts --net --fork /bin/true"
	fi
	if command -v runc >/dev/null; then
		bench "$r-baseline-runc" baseline --mode runc -n "$RUNC_N"
	fi
	bench "$r-owl-cold" cold -f "$FUNCTION" -n "$COLD_N"
	# Burst last: it leaves BURST_N environments behind, torn down when the burst restores the
	# function's configuration. Each needs 128 MB: a server that admits environments by memory
	# may refuse some (it will want OWL_MEMORY_OVERCOMMIT once that exists); such refusals are
	# recorded as errors by kind, like any other.
	bench "$r-baseline-burst" baseline --mode burst -n "$BURST_N" --data "$BURST_DATA"
	bench "$r-owl-burst" burst -f "$BURST_FUNCTION" -n "$BURST_N" --data "$BURST_DATA"
	if ((round < ROUNDS)); then
		for _ in $(seq 1 30); do # the next round waits for the teardown (60 s at most)
			(($(busy) <= 20)) && break
			sleep 1
		done
	fi
done

log "results in $OUT"
echo
"$OWL" bench report "$OUT"/r[0-9]*-*.json $CHURN --json "$OUT/report.json" | tee "$OUT/report.txt"
if ((FAILED > 0)); then
	log "$FAILED benchmark(s) had failed invocations or did not run: see above"
	exit 1
fi
