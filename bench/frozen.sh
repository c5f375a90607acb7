#!/usr/bin/env bash
# bench/frozen.sh: what an idle, frozen environment costs: Owl's own memory per environment and
# the CPU the environments use while frozen.
#
# Starts `owl serve` on a temp data dir, deploys examples/hello-go, reads owl serve's RSS, creates
# N environments at once (N concurrent invocations sleeping 300 ms), waits until every one is
# frozen (OWL_FREEZE_AFTER, 50 ms), reads the RSS again and samples the CPU time of the
# environments' cgroups over SAMPLE seconds.
#
#   bench/frozen.sh                # as root
#   N=200 SAMPLE=10 bench/frozen.sh
set -euo pipefail
# The Go release go.mod names (the machine's own go fetches it from the proxy).
export GOTOOLCHAIN=go1.27.3

N=${N:-100}
SAMPLE=${SAMPLE:-10}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FN=owl-bench-frozen

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
need_root
bench_workdir owl-frozen-bench
TMP=$BENCH_TMP

cd "$REPO"
CGO_ENABLED=0 owl_build "$TMP"
hello_build "$TMP/hello"
OWL=$OWL_BIN
export OWL_DATA=$TMP/data
owl_serve "$OWL" "$OWL_DATA" "$TMP/serve.log" --memory-overcommit 4
SERVER_PID=$OWL_SERVE_PID
export OWL_ENDPOINT=$OWL_SERVE_ENDPOINT
INST=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:8])' "$OWL_DATA")

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
cpu_ns() { # CPU time of every sandbox of this instance (v2 or v1 cpuacct)
	local total=0 f
	for f in /sys/fs/cgroup/owl/"$INST"/*/cpu.stat /sys/fs/cgroup/unified/owl/"$INST"/*/cpu.stat; do
		[[ -f $f ]] && total=$((total + $(awk '/^usage_usec/ {print $2}' "$f") * 1000))
	done
	for f in /sys/fs/cgroup/cpu,cpuacct/owl/"$INST"/*/cpuacct.usage /sys/fs/cgroup/cpuacct/owl/"$INST"/*/cpuacct.usage; do
		[[ -f $f ]] && total=$((total + $(cat "$f")))
	done
	echo "$total"
}

"$OWL" deploy "$TMP/hello" --name "$FN" --runtime provided.al2023 --timeout 30 >/dev/null
"$OWL" invoke "$FN" >/dev/null # the code is unpacked, the first environment warm
sleep 1
before=$(rss_kb)
"$OWL" bench burst -f "$FN" -n "$N" --fresh=false --data '{"sleep_ms":300}' >"$TMP/burst.txt" || { cat "$TMP/burst.txt"; exit 1; }
sleep 2 # every environment idle past OWL_FREEZE_AFTER
envs=$( (find /sys/fs/cgroup/freezer/owl/"$INST" /sys/fs/cgroup/owl/"$INST" -mindepth 1 -maxdepth 1 -type d ! -name "prewarm-*" 2>/dev/null || true) | wc -l)
frozen=$( (grep -l FROZEN /sys/fs/cgroup/freezer/owl/"$INST"/*/freezer.state 2>/dev/null || true; \
	grep -l '^frozen 1' /sys/fs/cgroup/owl/"$INST"/*/cgroup.events 2>/dev/null || true) | wc -l)
after=$(rss_kb)
c0=$(cpu_ns)
sleep "$SAMPLE"
c1=$(cpu_ns)
python3 - "$N" "$envs" "$frozen" "$before" "$after" "$c0" "$c1" "$SAMPLE" <<'PY'
import sys
n, envs, frozen, before, after, c0, c1, sample = (float(x) for x in sys.argv[1:])
print(f"environments: {int(envs)} ({int(frozen)} frozen) after a burst of {int(n)}")
print(f"owl serve RSS: {before/1024:.1f} MB before, {after/1024:.1f} MB after: {(after-before)/max(envs,1):.0f} kB per environment")
print(f"CPU of all environments over {int(sample)} s while frozen: {(c1-c0)/1e6:.3f} ms")
PY
