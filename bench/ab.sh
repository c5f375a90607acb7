#!/usr/bin/env bash
# bench/ab.sh: compare two owl binaries on the warm or cold path, paired and interleaved.
#
# On a shared 2-vCPU machine one timing is noise: other sessions' builds and tests come and go
# within seconds. This script starts both servers side by side (temp data dirs, free ports, the
# examples/hello-go function deployed on each), then runs short benchmarks in pairs, A then B in
# odd rounds and B then A in even ones, so both sides of a pair see the same machine. It prints,
# per metric, each side's median and the median of the paired relative changes, and how many
# pairs moved the same way. Besides owl bench's latency and throughput it records the CPU time
# of each `owl serve` process (server) and of its children, the function runtimes (functions),
# per invocation, from /proc/PID/stat around every run.
#
#   bench/ab.sh OLD_OWL NEW_OWL            # as root; binaries built with CGO_ENABLED=0
#   MODE=t32 ROUNDS=10 bench/ab.sh /tmp/owl-old /tmp/owl-new
#
# Settings (environment):
#   MODE=c1     c1: owl bench warm -c 1 -n N1 --warmup 100; t32: owl bench throughput -c 32 -d D;
#               cold: owl bench cold -n NC (each a cold start of a new version)
#   ROUNDS=16   pairs           N1=3000   invocations per c1 run        D=3s   t32 duration
#   NC=20       cold starts per cold run
#   OUT=$(mktemp -d)            where each run's JSON and CPU figures go (kept)
set -euo pipefail
# The Go release go.mod names (the machine's own go fetches it from the proxy).
export GOTOOLCHAIN=go1.27.3

[[ $# == 2 ]] || { echo "usage: bench/ab.sh OLD_OWL NEW_OWL" >&2; exit 2; }
A=$(realpath "$1")
B=$(realpath "$2")
MODE=${MODE:-c1}
ROUNDS=${ROUNDS:-16}
N1=${N1:-3000}
D=${D:-3s}
NC=${NC:-20}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
need_root
OUT=${OUT:-$(mktemp -d /tmp/owl-ab.XXXXXX)}
TMP=$(mktemp -d /tmp/owl-ab-run.XXXXXX)
declare -A PID ENDPOINT DATA

cleanup() {
	for side in a b; do
		if [[ -n ${PID[$side]:-} ]]; then
			kill -TERM "${PID[$side]}" 2>/dev/null || true
			wait "${PID[$side]}" 2>/dev/null || true
		fi
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/hello" "$OUT"
(cd "$REPO" && hello_build "$TMP/hello")

# start SIDE BINARY: owl serve on a fresh data dir, the hello function deployed.
start() {
	local side=$1 bin=$2
	DATA[$side]=$TMP/data-$side
	owl_serve "$bin" "${DATA[$side]}" "$TMP/serve-$side.log" --log-level info
	PID[$side]=$OWL_SERVE_PID
	ENDPOINT[$side]=$OWL_SERVE_ENDPOINT
	OWL_ENDPOINT=${ENDPOINT[$side]} OWL_DATA=${DATA[$side]} \
		"$bin" bench warm --deploy "$TMP/hello" -n 200 --warmup 0 >/dev/null
}
start a "$A"
start b "$B"

# ticks PID: "server children" CPU ticks (utime+stime) of PID and of its live children.
ticks() {
	python3 - "$1" <<'PY'
import os, sys
pid = sys.argv[1]
def stat(p):
    with open(f"/proc/{p}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()
server = children = 0
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        s = stat(p)
    except OSError:
        continue
    t = int(s[11]) + int(s[12])
    if p == pid:
        server = t
    elif s[1] == pid:
        children += t
print(server, children)
PY
}

# run SIDE ROUND: one benchmark against SIDE (always driven by B's owl bench: same generator).
run() {
	local side=$1 r=$2 before after
	before=$(ticks "${PID[$side]}")
	if [[ $MODE == c1 ]]; then
		OWL_ENDPOINT=${ENDPOINT[$side]} OWL_DATA=${DATA[$side]} \
			"$B" bench warm -c 1 -n "$N1" --warmup 100 --json "$OUT/$side-$r.json" >/dev/null
	elif [[ $MODE == cold ]]; then
		OWL_ENDPOINT=${ENDPOINT[$side]} OWL_DATA=${DATA[$side]} \
			"$B" bench cold -n "$NC" --json "$OUT/$side-$r.json" >/dev/null
	else
		OWL_ENDPOINT=${ENDPOINT[$side]} OWL_DATA=${DATA[$side]} \
			"$B" bench throughput -c 32 -d "$D" --json "$OUT/$side-$r.json" >/dev/null
	fi
	after=$(ticks "${PID[$side]}")
	echo "$before $after" >"$OUT/$side-$r.ticks"
}

echo "==> $MODE, $ROUNDS pairs: A=$A B=$B (results in $OUT)" >&2
for r in $(seq 1 "$ROUNDS"); do
	if ((r % 2)); then run a "$r"; run b "$r"; else run b "$r"; run a "$r"; fi
done

python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" <<'PY'
import json, statistics as st, sys
out, rounds, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(side):
    rows = []
    for r in range(1, rounds + 1):
        j = json.load(open(f"{out}/{side}-{r}.json"))
        s0, c0, s1, c1 = map(int, open(f"{out}/{side}-{r}.ticks").read().split())
        n = j["ok"] + (j.get("warmup") or 0)
        us = 1e6 / hz / n
        rows.append({"p50 µs": j["latency"]["p50_us"], "p99 µs": j["latency"]["p99_us"],
                     "invocations/s": j["throughput_per_s"],
                     "server CPU µs/inv": (s1 - s0) * us, "functions CPU µs/inv": (c1 - c0) * us})
    return rows
a, b = load("a"), load("b")
print(f"{'metric':22} {'A median':>10} {'B median':>10} {'B vs A (paired median)':>24}  pairs B lower")
for k in a[0]:
    va, vb = [x[k] for x in a], [x[k] for x in b]
    d = [(y - x) / x * 100 for x, y in zip(va, vb) if x]
    print(f"{k:22} {st.median(va):10.1f} {st.median(vb):10.1f} {st.median(d):+23.1f}%  {sum(x < 0 for x in d)}/{len(d)}")
PY
