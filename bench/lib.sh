# bench/lib.sh: what the bench scripts share. Source it; it defines functions only.

# owl_serve BIN DATA LOG [serve flags...]: starts `BIN serve` on a free loopback port with its data
# in DATA and its output in LOG, and returns once it serves. Sets OWL_SERVE_PID and
# OWL_SERVE_ENDPOINT; exits the script, showing LOG, if the server does not come up in 30 s.
owl_serve() {
	local bin=$1 data=$2 log=$3 addr=""
	shift 3
	mkdir -p "$data"
	"$bin" serve --addr 127.0.0.1:0 --data "$data" "$@" >"$log" 2>&1 &
	OWL_SERVE_PID=$!
	for _ in $(seq 1 300); do
		addr=$(sed -n 's/.*msg="owl serving" addr=\([^ ]*\).*/\1/p' "$log" | head -1)
		[[ -n $addr ]] && break
		kill -0 "$OWL_SERVE_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [[ -z $addr ]]; then
		cat "$log" >&2
		echo "${0##*/}: owl serve did not start (log above)" >&2
		exit 1
	fi
	OWL_SERVE_ENDPOINT=http://$addr
}

# stop_owl PID...: a graceful shutdown of each server (SIGTERM tears its sandboxes down), then
# waits for all of them.
stop_owl() {
	local p
	for p; do kill -TERM "$p" 2>/dev/null || true; done
	for p; do wait "$p" 2>/dev/null || true; done
}
