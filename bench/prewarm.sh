#!/usr/bin/env bash
# bench/prewarm.sh: cold starts of the Python, Node.js and Go (provided.al2023) hello examples
# with and without pre-warmed environments (OWL_PREWARM), measured in one run, interleaved, and
# a container's cold start (`runc run`, or without runc the `unshare` exec floor) in the same run.
#
# Builds owl, starts two `owl serve` on temp data dirs: "off" (OWL_PREWARM=0) and "on"
# (OWL_PREWARM=1, the default), deploys examples/hello-python (python3.11),
# examples/hello-node (nodejs20.x) and examples/hello-go (provided.al2023) on both, then ROUNDS
# times, for each function, runs `owl bench cold -f <fn> -n N` against off and then on. Prints
# each run's p50 and the median of the rounds, how many of "on"'s cold starts were served by a
# pre-warmed environment (its debug log line "specialized a pre-warmed environment") or fell back
# to a fresh start, and `owl bench baseline --mode runc -n 100` (or --mode exec -n 200).
#
#   bench/prewarm.sh                 ROUNDS=3 N=30 SETTLE=100ms ON_PREWARM=1 (OWL_PREWARM of "on")
#   FNS="hello-go"                   only these of hello-py hello-node hello-go
#   KEEP_LOG=file keeps the "on" server's log.
#   OLD=/path/to/owl                 "off" is that build with pre-warming on instead: two builds'
#                                    pre-warmed cold starts, interleaved (off = OLD, on = this one).
set -euo pipefail
# The Go release go.mod names (the machine's own go fetches it from the proxy).
export GOTOOLCHAIN=go1.27.3
ROUNDS=${ROUNDS:-3}
N=${N:-30}
SETTLE=${SETTLE:-100ms}
PY=${PY:-python3.11}
NODE=${NODE:-nodejs20.x}
FNS=${FNS:-hello-py hello-node hello-go}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
need_root
TMP=$(mktemp -d /tmp/owl-prewarm.XXXXXX)
PIDS=()
cleanup() {
	stop_owl "${PIDS[@]}"
	[[ -n ${KEEP_LOG:-} ]] && cp "$TMP/on.log" "$KEEP_LOG"
	rm -rf "$TMP"
}
trap cleanup EXIT
cd "$REPO"
go build -o "$TMP/owl" ./cmd/owl
OWL=$TMP/owl
hello_build "$TMP/hello-go"

start() { # name prewarm [binary]
	OWL_PREWARM=$2 owl_serve "${3:-$OWL}" "$TMP/$1" "$TMP/$1.log" --log-level debug
	PIDS+=("$OWL_SERVE_PID")
	echo "$OWL_SERVE_ENDPOINT" >"$TMP/$1.endpoint"
}
owlat() { # name args...
	local n=$1
	shift
	OWL_DATA=$TMP/$n OWL_ENDPOINT=$(cat "$TMP/$n.endpoint") "$OWL" "$@"
}
if [[ -n ${OLD:-} ]]; then
	start off "${ON_PREWARM:-1}" "$(realpath "$OLD")"
else
	start off 0
fi
start on "${ON_PREWARM:-1}"
for s in off on; do
	owlat $s deploy examples/hello-python --name hello-py --runtime "$PY" --handler app.handler >/dev/null
	owlat $s deploy examples/hello-node --name hello-node --runtime "$NODE" --handler index.handler >/dev/null
	owlat $s deploy "$TMP/hello-go" --name hello-go --runtime provided.al2023 --handler bootstrap >/dev/null
done
sleep 2 # the spares of "on" start
for r in $(seq 1 "$ROUNDS"); do
	for fn in $FNS; do
		for s in off on; do
			owlat $s bench cold -f $fn -n "$N" --settle "$SETTLE" --json "$TMP/$r-$fn-$s.json" >/dev/null
		done
	done
done
if command -v runc >/dev/null; then
	"$OWL" bench baseline --mode runc -n 100 --json "$TMP/baseline.json" >/dev/null
else
	echo "no runc here: the baseline is the unshare exec floor, not a container's cold start" >&2
	"$OWL" bench baseline --mode exec -n 200 --json "$TMP/baseline.json" >/dev/null
fi
"$PY" - "$TMP" "$ROUNDS" "$FNS" <<'PYEOF'
import json, statistics, sys
tmp, rounds, fns = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
base = json.load(open(tmp + "/baseline.json"))
base_p50 = base["latency"]["p50_us"] / 1000
print("%-11s %-4s %s" % ("function", "mode", "cold p50 per round (ms) -> median | Init Duration p50 median | / baseline p50"))
for fn in fns:
    for s in ("off", "on"):
        runs = [json.load(open("%s/%d-%s-%s.json" % (tmp, r, fn, s))) for r in range(1, rounds + 1)]
        p50 = [x["latency"]["p50_us"] / 1000 for x in runs]
        init = [x["init_duration"]["p50_us"] / 1000 for x in runs]
        errs = sum(x["errors"] for x in runs)
        print("%-11s %-4s %s -> %.2f ms | %.2f ms | %.2fx%s" % (fn, s, " ".join("%.2f" % v for v in p50),
              statistics.median(p50), statistics.median(init), statistics.median(p50) / base_p50,
              "  (%d errors)" % errs if errs else ""))
print("baseline %s %s: p50 %.2f ms (%d runs)" % (base["mode"], base.get("command", ""), base_p50, base["ok"]))
PYEOF
echo "on: $(grep -c 'specialized a pre-warmed environment' "$TMP/on.log") cold starts from a pre-warmed environment," \
	"$(grep -c 'no pre-warmed environment ready' "$TMP/on.log") without one ready"
