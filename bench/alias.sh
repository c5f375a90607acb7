#!/usr/bin/env bash
# bench/alias.sh: what invoking through an alias costs, measured in one run.
#
# Starts `owl serve` on a temp data dir, deploys examples/hello-go, publishes versions 1 and 2,
# points alias "stable" at version 1 and alias "canary" at version 1 with 10 % on version 2, then
# measures warm latency at 1 connection ROUNDS times over: the unqualified name ($LATEST), the
# version (hello:1), the plain alias and the weighted alias, in turn. Prints p50/p99 per target
# and round; the JSON results stay in $OUT.
#
#   bench/alias.sh                 # as root
#   N=20000 ROUNDS=5 bench/alias.sh
set -euo pipefail
# The Go release go.mod names (the machine's own go fetches it from the proxy).
export GOTOOLCHAIN=go1.27.3

N=${N:-10000}
ROUNDS=${ROUNDS:-3}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$REPO/bench/results/alias-$(date -u +%Y%m%dT%H%M%SZ)}
FN=owl-bench-hello

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
need_root
bench_workdir owl-alias-bench
TMP=$BENCH_TMP

cd "$REPO"
mkdir -p "$OUT"
CGO_ENABLED=0 owl_build "$TMP"
hello_build "$TMP/hello"
OWL=$OWL_BIN

export OWL_DATA=$TMP/data
owl_serve "$OWL" "$OWL_DATA" "$TMP/serve.log"
export OWL_ENDPOINT=$OWL_SERVE_ENDPOINT

"$OWL" deploy "$TMP/hello" --name "$FN" --runtime provided.al2023 >/dev/null
"$OWL" publish "$FN" >/dev/null
"$OWL" deploy "$TMP/hello" --name "$FN" --runtime provided.al2023 --env GEN=2 >/dev/null
"$OWL" publish "$FN" >/dev/null
"$OWL" alias set "$FN" stable 1 >/dev/null
"$OWL" alias set "$FN" canary 1 --weight 2=0.1 >/dev/null

for r in $(seq 1 "$ROUNDS"); do
	for target in "$FN" "$FN:1" "$FN:stable" "$FN:canary"; do
		label=${target#"$FN"}
		label=${label#:}
		"$OWL" bench warm -f "$target" -n "$N" -c 1 --json "$OUT/warm-${label:-latest}-$r.json" >/dev/null
		python3 -c 'import json,sys; l=json.load(open(sys.argv[1]))["latency"]; print("round %s  %-24s p50 %7.1f µs  p99 %7.1f µs" % (sys.argv[3], sys.argv[2], l["p50_us"], l["p99_us"]))' \
			"$OUT/warm-${label:-latest}-$r.json" "$target" "$r"
	done
done
python3 - "$OUT" <<'PY'
import glob, json, statistics, sys
med = {}
for label in ["latest", "1", "stable", "canary"]:
    p50s = [json.load(open(f))["latency"]["p50_us"] for f in sorted(glob.glob(f"{sys.argv[1]}/warm-{label}-*.json"))]
    med[label] = statistics.median(p50s)
base = med["latest"]
print("median p50 over rounds (ratio to $LATEST in the same run):")
for label, v in med.items():
    print(f"  {label:<8} {v:7.1f} µs  {v / base:5.3f}×")
PY
echo "results: $OUT"
