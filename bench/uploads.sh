#!/usr/bin/env bash
# bench/uploads.sh: what large code uploads cost owl serve's memory. Starts `owl serve` (as root),
# then deploys N different 50 MB zips (the largest Lambda takes: ~70 MB of base64 in JSON) at once,
# twice, each time on a fresh server: with Owl's bearer token (the body's hash is not checked), then
# with boto3 (SigV4 over a body hash it does not declare, as the AWS CLI and aws-sdk-go-v2 sign
# Lambda calls: the server must read the whole body before it can authenticate it). Prints owl
# serve's RSS (MB) idle, its peak during the deploys (VmHWM), how many succeeded and how long they
# took. BIN=path/to/owl measures another build (e.g. an older commit's) in the same way.
#
#   bash bench/uploads.sh               # builds ./cmd/owl; N=4
#   N=8 BIN=/tmp/owl-old bash bench/uploads.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
n=${N:-4}
bench_workdir owl-uploads
work=$BENCH_TMP
owl_build "$work"
bin=$OWL_BIN
export OWL_ACCESS_KEY_ID=AKIAOWLBENCHKEY00001 OWL_SECRET_ACCESS_KEY=owl-bench-secret-0123456789abcdefghijklm
export OWL_TOKEN=owl_bench_token_0123456789abcdefghijklmn
for mode in bearer sigv4; do
	owl_serve "$bin" "$work/data-$mode" "$work/serve-$mode.log" --prewarm 0
	sleep 1
	python3 - "$OWL_SERVE_ENDPOINT" "$OWL_SERVE_PID" "$n" "$mode" <<'PY'
import base64, http.client, io, json, os, sys, threading, time, zipfile
import boto3, botocore.config
endpoint, pid, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
host = endpoint.removeprefix("http://")
def status(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
def bigzip():
    # One stored entry of random bytes: 50 MB zipped, Lambda's limit (52428800 bytes).
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("blob", os.urandom(52428800 - 200))
    assert len(buf.getvalue()) <= 52428800
    return buf.getvalue()
zips = [bigzip() for _ in range(n)]
print(f"{mode}: idle RSS {status('VmRSS')} MB; {n} zips of {len(zips[0])} bytes "
      f"(bodies of {len(base64.b64encode(zips[0])) >> 20} MB)")
def fn(name, z):
    return {"FunctionName": name, "Runtime": "provided.al2023", "Handler": "bootstrap",
            "Role": "arn:aws:iam::000000000000:role/owl", "Code": {"ZipFile": z}}
def bearer(i, results):
    body = json.dumps(fn(f"bearer-{i}", base64.b64encode(zips[i]).decode())).encode()
    c = http.client.HTTPConnection(host, timeout=600)
    c.request("POST", "/2015-03-31/functions", body,
              {"Authorization": "Bearer " + os.environ["OWL_TOKEN"], "Content-Type": "application/json"})
    r = c.getresponse()
    results[i] = f"{r.status} {r.read()[:120]!r}" if r.status != 201 else "201"
lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id=os.environ["OWL_ACCESS_KEY_ID"],
                   aws_secret_access_key=os.environ["OWL_SECRET_ACCESS_KEY"],
                   config=botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=600,
                                                 max_pool_connections=n))
def sigv4(i, results):
    try:
        lam.create_function(**fn(f"sigv4-{i}", zips[i]))
        results[i] = "201"
    except Exception as e:
        results[i] = str(e)[:160]
def phase(name, deploy):
    results = [None] * n
    start = time.time()
    threads = [threading.Thread(target=deploy, args=(i, results)) for i in range(n)]
    for t in threads: t.start()
    for t in threads: t.join()
    ok = sum(r == "201" for r in results)
    print(f"{name}: peak RSS {status('VmHWM')} MB, {ok}/{n} deployed in {time.time() - start:.1f} s")
    for r in sorted(set(r for r in results if r != "201")):
        print(f"  refused: {r}")
if mode == "bearer":
    phase(f"{n} concurrent 50 MB deploys, bearer token", bearer)
else:
    phase(f"{n} concurrent 50 MB deploys, boto3 (SigV4)", sigv4)
print(f"RSS after: {status('VmRSS')} MB")
PY
	stop_owl "$OWL_SERVE_PID"
	OWL_SERVE_PID=
done
