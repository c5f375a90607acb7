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

# need_root: exits the script unless it runs as root (Owl's sandboxes need namespaces and cgroups).
need_root() {
	[[ $(id -u) == 0 ]] || { echo "bench/${0##*/}: run me as root" >&2; exit 1; }
}

# bench_workdir NAME: creates a temporary directory /tmp/NAME.XXXXXX and sets BENCH_TMP to it; on
# the script's exit, stops the server owl_serve started last (unless OWL_SERVE_PID was emptied
# since) and removes the directory.
bench_workdir() {
	BENCH_TMP=$(mktemp -d "/tmp/$1.XXXXXX")
	OWL_SERVE_PID=""
	trap 'stop_owl ${OWL_SERVE_PID:-}; rm -rf "$BENCH_TMP"' EXIT
}

# owl_build DIR: sets OWL_BIN to $BIN when it is set (another build to measure), else builds
# ./cmd/owl into DIR/owl. Run it from the repository's root.
owl_build() {
	OWL_BIN=${BIN:-}
	if [[ -z $OWL_BIN ]]; then
		OWL_BIN=$1/owl
		go build -o "$OWL_BIN" ./cmd/owl
	fi
}

# hello_build DIR: builds examples/hello-go as DIR/bootstrap (static: sandboxes see the host's
# libraries, but a custom runtime's bootstrap should not need them). Run it from the repository's
# root.
hello_build() {
	mkdir -p "$1"
	CGO_ENABLED=0 go build -o "$1/bootstrap" ./examples/hello-go
}
