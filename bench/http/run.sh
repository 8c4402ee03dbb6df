#!/usr/bin/env bash
# bench/http/run.sh - the service benchmark of `make bench`: gexecd over
# HTTP on this machine, client and server sharing it.
#
#   bench/http/run.sh [BUILD_DIR]        (default: build)
#
# Figures (docs/bench.md says what each means):
#  - single-job POST /v1/jobs, durable (store.synchronous full), with wrk at
#    64 and 256 connections (2 threads, --latency), against the ceiling
#    server (http_ceiling: the same HTTP library configured as gexecd, which
#    reads and parses the same JSON body and answers a fixed 202), each
#    repetition running ceiling then gexecd; medians of requests/s, p50, p99;
#  - POST /v1/jobs:batch with 10,000 no-op jobs: accepted jobs / request
#    time (a job is accepted only once committed), median of the requests;
#  - end to end: one batch of 10,000 no-op jobs until the event stream has
#    reported all of them succeeded, median of the repetitions;
#  - restart: a store holding 1,000,000 queued jobs; time from exec of
#    gexecd to GET /readyz answering 200, median of the repetitions.
#
# Knobs: GX_HTTP_BENCH_SECONDS (wrk run length, default 6),
# GX_HTTP_BENCH_REPS (default 3), GX_HTTP_BENCH_RESTART_JOBS (1000000).
# Raw outputs go to BUILD_DIR/bench-http/. Needs wrk, curl and python3.
set -euo pipefail

BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${GX_HTTP_BENCH_SECONDS:-6}
REPS=${GX_HTTP_BENCH_REPS:-3}
RJOBS=${GX_HTTP_BENCH_RESTART_JOBS:-1000000}
RAW=$BUILD/bench-http
rm -rf "$RAW"
mkdir -p "$RAW"
for t in wrk curl python3; do
    command -v $t >/dev/null || { echo "bench/http: $t is missing (scripts/setup installs it)" >&2; exit 1; }
done
for b in gexecd http_ceiling http_client http_fill; do
    [ -x "$BUILD/$b" ] || { echo "bench/http: $BUILD/$b is not built" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/gexec-httpbench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

freeport() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_ready URL [tries of 10 ms]: until GET URL answers 200
wait_ready() {
    local n=${2:-3000}
    for ((i = 0; i < n; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" = 200 ] && return 0
        sleep 0.01
    done
    echo "bench/http: $1 never answered 200" >&2
    return 1
}

# The admin key every request carries (gx_<16 hex>_<43 base64url>); the rate
# limit is lifted so that it measures the key check, not the limiter's refusals.
KEY=$(python3 -c 'import os,base64; print("gx_"+os.urandom(8).hex()+"_"+base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')
export GEXEC_API_KEY=$KEY

# start_gexecd DATA_DIR PORT LOG [AUTH]: starts it in the background (AUTH
# true (default) or false: auth.enabled); sets GPID
start_gexecd() {
    GEXEC_LISTEN=127.0.0.1:$2 GEXEC_DATA_DIR=$1 GEXEC_STORE_SYNCHRONOUS=full GEXEC_HTTP_THREADS=2 GEXEC_HTTP_MAX_CONNECTIONS_PER_CLIENT=0 \
        GEXEC_AUTH_ENABLED=${4:-true} GEXEC_ADMIN_KEY=$KEY GEXEC_AUTH_RATE=1000000000 GEXEC_AUTH_BURST=1000000000 \
        GEXEC_LOG_LEVEL=${GX_HTTP_BENCH_LOG:-warn} "$BUILD/gexecd" >>"$3" 2>&1 &
    GPID=$!
    PIDS+=("$GPID")
}

stop() { # stop PID [SIGNAL]
    kill -"${2:-TERM}" "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

cat >"$TMP/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"kernel":"spin"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
LUA

echo "bench/http: $(nproc) cores; wrk ${SECS}s x $REPS per point; raw output in $RAW"

# ---- single-job POST: ceiling vs gexecd (with keys) vs gexecd without auth ----
# "noauth" is a second gexecd with auth.enabled=false, measured in the same run
# (interleaved repetitions): the cost of authentication.
GDATA=$TMP/data
mkdir -p "$GDATA"
GPORT=$(freeport)
start_gexecd "$GDATA" "$GPORT" "$RAW/gexecd.log"
G=$GPID
NDATA=$TMP/data-noauth
mkdir -p "$NDATA"
NPORT=$(freeport)
start_gexecd "$NDATA" "$NPORT" "$RAW/gexecd-noauth.log" false
N=$GPID
CPORT=$(freeport)
"$BUILD/http_ceiling" "$CPORT" 2>>"$RAW/ceiling.log" &
C=$!
PIDS+=("$C")
wait_ready "http://127.0.0.1:$GPORT/readyz"
wait_ready "http://127.0.0.1:$NPORT/readyz"
wait_ready "http://127.0.0.1:$CPORT/"

for conns in 64 256; do
    for ((r = 1; r <= REPS; r++)); do
        for who in ceiling gexecd noauth; do
            port=$CPORT
            [ $who = gexecd ] && port=$GPORT
            [ $who = noauth ] && port=$NPORT
            out=$RAW/wrk-$who-c$conns-r$r.txt
            wrk -t2 -c"$conns" -d"${SECS}s" --timeout 10s --latency -s "$TMP/post.lua" \
                "http://127.0.0.1:$port/v1/jobs" >"$out" 2>&1
            sleep 1 # let gexecd finish the jobs it accepted
        done
    done
done
stop "$C"
stop "$N"

# ---- batches ------------------------------------------------------------------
# end to end first, on an idle daemon, then back-to-back batch requests
for ((r = 1; r <= REPS; r++)); do
    sleep 1
    "$BUILD/http_client" e2e "http://127.0.0.1:$GPORT" 10000 >"$RAW/e2e-r$r.txt"
done
sleep 1
"$BUILD/http_client" batch "http://127.0.0.1:$GPORT" 10000 $((REPS * 3)) >"$RAW/batch.txt"
stop "$G"

# ---- restart with queued jobs ----------------------------------------------------
RDATA=$TMP/restart
TEMPLATE=$TMP/restart-template
mkdir -p "$TEMPLATE"
t0=$(date +%s.%N)
"$BUILD/http_fill" "$TEMPLATE" "$RJOBS"
t1=$(date +%s.%N)
echo "filled $RJOBS queued jobs in $(python3 -c "print(round($t1-$t0,2))") s" >"$RAW/restart-fill.txt"
# the filler's rows must be those the daemon itself wrote for the same body
q="SELECT j.tenant, j.kernel, j.spec, j.priority, j.error_code, coalesce(j.idem_key, '-'),
   coalesce(j.labels, '-'), e.state, e.attempt FROM jobs j JOIN job_event_rows e ON e.job_id = j.id AND e.seq = 1
   ORDER BY j.id LIMIT 1"
if command -v sqlite3 >/dev/null; then
    a=$(sqlite3 "$TEMPLATE/gexec.db" "$q")
    b=$(sqlite3 "$GDATA/gexec.db" "$q")
    echo "filler row: $a; daemon row: $b" >>"$RAW/restart-fill.txt"
    [ "$a" = "$b" ] || { echo "bench/http: filler rows differ from the daemon's" >&2; exit 1; }
fi
for ((r = 1; r <= REPS; r++)); do
    rm -rf "$RDATA"
    cp -r "$TEMPLATE" "$RDATA"
    port=$(freeport)
    t0=$(date +%s.%N)
    start_gexecd "$RDATA" "$port" "$RAW/restart-r$r.log"
    wait_ready "http://127.0.0.1:$port/readyz" 6000
    t1=$(date +%s.%N)
    python3 -c "print($t1 - $t0)" >"$RAW/restart-r$r.txt"
    stop "$GPID" KILL
done

# ---- the table ---------------------------------------------------------------------
python3 - "$RAW" "$REPS" "$RJOBS" <<'PY'
import glob, os, re, statistics, sys
raw, reps, rjobs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
med = statistics.median

def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    x, u = float(m.group(1)), m.group(2)
    return x * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[u]

def wrk(who, c):
    rps, p50, p99, bad = [], [], [], 0
    for f in sorted(glob.glob(f"{raw}/wrk-{who}-c{c}-r*.txt")):
        t = open(f).read()
        rps.append(float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)))
        p50.append(ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1)))
        p99.append(ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1)))
        m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
        bad += int(m.group(1)) if m else 0
        m = re.search(r"Socket errors: (.*)", t)
        if m: bad += sum(int(x) for x in re.findall(r"\d+", m.group(1)))
    return med(rps), med(p50), med(p99), bad

rows = []
def row(metric, g, peer, ratio, target, met):
    rows.append((metric, g, peer, ratio, target, met))

for c in (64, 256):
    g, k = wrk("gexecd", c), wrk("ceiling", c)
    ratio = g[0] / k[0]
    row(f"POST /v1/jobs, {c} conns, req/s", f"{g[0]:,.0f}", f"{k[0]:,.0f}", f"{ratio:.2f}", ">= 0.50",
        "yes" if ratio >= 0.5 else "NO")
    row(f"  p50 latency, {c} conns", f"{g[1]:.2f} ms", f"{k[1]:.2f} ms", f"{g[1]/k[1]:.1f}x", "", "")
    row(f"  p99 latency, {c} conns", f"{g[2]:.2f} ms", f"{k[2]:.2f} ms", f"{g[2]/k[2]:.1f}x",
        "<= 10 ms" if c == 64 else "", ("yes" if g[2] <= 10 else "NO") if c == 64 else "")
    if g[3]:
        row(f"  errors/non-2xx, {c} conns", str(g[3]), "", "", "0", "NO")
    n = wrk("noauth", c)
    row(f"  auth cost: req/s with keys / without, {c} conns", f"{g[0]:,.0f}", f"{n[0]:,.0f} (no auth)",
        f"{g[0]/n[0]:.2f}", "", "")
    if n[3]:
        row(f"  errors/non-2xx without auth, {c} conns", str(n[3]), "", "", "0", "NO")
b = [l.split() for l in open(f"{raw}/batch.txt") if l.strip()]
rate = med([int(a) / float(s) for s, a in b])
row("POST /v1/jobs:batch (10,000), durable jobs/s", f"{rate:,.0f}", "", "", ">= 200,000",
    "yes" if rate >= 200000 else "NO")
e = [float(open(f).read().split()[0]) for f in sorted(glob.glob(f"{raw}/e2e-r*.txt"))]
row("10,000 no-op jobs end to end", f"{med(e):.3f} s", "", "", "<= 0.5 s", "yes" if med(e) <= 0.5 else "NO")
rs = [float(open(f).read()) for f in sorted(glob.glob(f"{raw}/restart-r*.txt"))]
row(f"restart with {rjobs:,} queued jobs, to ready", f"{med(rs):.2f} s", "", "", "<= 10 s",
    "yes" if med(rs) <= 10 else "NO")

hdr = ("metric", "gexec", "ceiling/peer", "ratio", "target", "met")
w = [max(len(r[i]) for r in rows + [hdr]) for i in range(6)]
fmt = lambda r: "| " + " | ".join(r[i].ljust(w[i]) for i in range(6)) + " |"
out = [f"gexecd HTTP service, median of {reps} (raw: {raw})", fmt(hdr),
       "|" + "|".join("-" * (x + 2) for x in w) + "|"] + [fmt(r) for r in rows]
detail = ["", "per repetition:"]
for c in (64, 256):
    for who in ("ceiling", "gexecd", "noauth"):
        fs = sorted(glob.glob(f"{raw}/wrk-{who}-c{c}-r*.txt"))
        v = [re.search(r"Requests/sec:\s+([\d.]+)", open(f).read()).group(1) for f in fs]
        detail.append(f"  {who} c{c} req/s: {' '.join(v)}")
detail.append(f"  batch s/request: {' '.join(s for s, a in b)}")
detail.append(f"  e2e s: {' '.join(f'{x:.3f}' for x in e)}")
detail.append(f"  restart s: {' '.join(f'{x:.2f}' for x in rs)}")
detail.append("  " + open(f"{raw}/restart-fill.txt").read().strip().replace("\n", "\n  "))
text = "\n".join(out + detail)
print(text)
open(f"{raw}/table.txt", "w").write(text + "\n")
PY
