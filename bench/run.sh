#!/usr/bin/env bash
# bench/run.sh: Owl's benchmark record, measured beside its baselines in one run.
#
# Builds owl and examples/hello-go (CGO_ENABLED=0, as bootstrap), starts `owl serve` on a temp
# data dir and a free port, then for each round measures, baseline first and Owl right after:
#   warm latency at 1 and 32 connections     vs a bare Go net/http hello server (separate process)
#   throughput at 32 connections             vs the same bare server
#   cold start (first invoke of new versions) vs fork+exec+wait of /bin/true and of unshare
# and prints the comparison table (`owl bench report`), with ratios and PERF.md's targets.
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
#   OUT=bench/results/<UTC timestamp>                   where the JSON results go
#   QUIET_WAIT=0  seconds to wait for the machine to be idle (< 10% busy) before measuring
# Exit status: 0 when every benchmark ran without a single failed invocation, 1 otherwise.
set -euo pipefail

N=${N:-20000}
N32=${N32:-50000}
D=${D:-10s}
COLD_N=${COLD_N:-50}
EXEC_N=${EXEC_N:-200}
ROUNDS=${ROUNDS:-1}
QUIET_WAIT=${QUIET_WAIT:-0}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$REPO/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
FUNCTION=owl-bench-hello

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
mkdir -p "$TMP/hello"
CGO_ENABLED=0 go build -o "$TMP/hello/bootstrap" ./examples/hello-go

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

log "starting owl serve"
export OWL_DATA=$TMP/data
mkdir -p "$OWL_DATA"
"$OWL" serve --addr 127.0.0.1:0 --data "$OWL_DATA" --log-level info >"$TMP/serve.log" 2>&1 &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 300); do
	ADDR=$(sed -n 's/.*msg="owl serving" addr=\([^ ]*\).*/\1/p' "$TMP/serve.log" | head -1)
	[[ -n $ADDR ]] && break
	kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/serve.log" >&2; die "owl serve exited"; }
	sleep 0.1
done
[[ -n $ADDR ]] || { cat "$TMP/serve.log" >&2; die "owl serve did not start in 30s"; }
export OWL_ENDPOINT=http://$ADDR
log "owl serving at $OWL_ENDPOINT (data $OWL_DATA)"

FAILED=0
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
	bench "$r-owl-cold" cold -f "$FUNCTION" -n "$COLD_N"
done

log "results in $OUT"
echo
"$OWL" bench report "$OUT"/r[0-9]*-*.json --json "$OUT/report.json" | tee "$OUT/report.txt"
if ((FAILED > 0)); then
	log "$FAILED benchmark(s) had failed invocations or did not run: see above"
	exit 1
fi
