#!/usr/bin/env bash
# bench/preauth.sh: what unauthenticated clients cost owl serve. Starts `owl serve` (as root) and
# measures its RSS idle, then while 64 clients without credentials each send headers promising a
# 6 MB invoke body and trickle it (1 KiB every 100 ms), and while 64 send whole 6 MB bodies at
# once. Prints RSS (MB) idle and the peak in each phase, and how many connections the server
# closed. BIN=path/to/owl compares another build (e.g. an older commit's) in the same way.
#
#   bash bench/preauth.sh            # builds ./cmd/owl
#   BIN=/tmp/owl-old bash bench/preauth.sh
set -euo pipefail
# The Go release go.mod names (the machine's own go fetches it from the proxy).
export GOTOOLCHAIN=go1.27.3
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_workdir owl-preauth
work=$BENCH_TMP
owl_build "$work"
bin=$OWL_BIN
owl_serve "$bin" "$work/data" "$work/serve.log" --prewarm 0
addr=${OWL_SERVE_ENDPOINT#http://}
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$OWL_SERVE_PID/status"; }
sleep 1
echo "idle RSS: $(rss) MB"
python3 - "$addr" "$OWL_SERVE_PID" <<'PY'
import socket, sys, threading, time
host, port = sys.argv[1].rsplit(":", 1)
pid = sys.argv[2]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
head = (f"POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: {sys.argv[1]}\r\n"
        "Content-Length: 6291556\r\n\r\n").encode()
def phase(name, send, seconds):
    closed = [0]
    def client():
        s = socket.create_connection((host, int(port)))
        try:
            s.sendall(head)
            send(s)
            s.settimeout(seconds)
            while s.recv(65536):
                pass
            closed[0] += 1
        except socket.timeout:
            pass  # still held by the server
        except OSError:
            closed[0] += 1  # reset: the server let go
        finally:
            s.close()
    threads = [threading.Thread(target=client) for _ in range(64)]
    for t in threads: t.start()
    peak, end = rss(), time.time() + seconds
    while time.time() < end and any(t.is_alive() for t in threads):
        peak = max(peak, rss()); time.sleep(0.05)
    for t in threads: t.join(seconds)
    print(f"{name}: peak RSS {peak} MB, {closed[0]}/64 connections closed by the server within {seconds} s")
def trickle(s):
    s.settimeout(0.2)
    for _ in range(300):
        try:
            s.sendall(b"a" * 1024)
        except OSError:
            return
        time.sleep(0.1)
def whole(s):
    try:
        s.sendall(b"a" * 6291556)
    except OSError:
        pass
phase("64 slow unauthenticated bodies", trickle, 30)
phase("64 whole 6 MB unauthenticated bodies", whole, 30)
PY
echo "RSS after: $(rss) MB"
