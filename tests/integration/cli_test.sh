#!/usr/bin/env bash
# cli_test.sh - every `gexec` subcommand against a real gexecd: output,
# --json, and the exit codes scripts rely on (0 ok, 1 job not succeeded,
# 2 usage, 3 refused, 4 not found, 5 server/transport, 6 timeout).
#
# Programs: $GEXEC / $GEXECD if set, else $GX_BUILD_DIR/{gexec,gexecd}, else
# next to this script's build (build/). Exits 77 (skipped) without gexecd.
set -u

here=$(cd "$(dirname "$0")" && pwd)
build=${GX_BUILD_DIR:-$here/../../build}
GEXEC=${GEXEC:-$build/gexec}
GEXECD=${GEXECD:-$build/gexecd}
if [ ! -x "$GEXECD" ]; then
    echo "skipped: gexecd not built"
    exit 77
fi
if [ ! -x "$GEXEC" ]; then
    echo "gexec not built at $GEXEC" >&2
    exit 1
fi

tmp=$(mktemp -d /tmp/gexec-cli-test-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
unset GEXEC_API_KEY GEXEC_CONFIG
# an admin key in the gx_ format (gx_<16 hex>_<43 base64url>) for the daemon
# and every gexec call
GEXEC_API_KEY=$(python3 -c 'import os,base64; print("gx_"+os.urandom(8).hex()+"_"+base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')
env -u GEXEC_SERVER GEXEC_ADMIN_KEY="$GEXEC_API_KEY" GEXEC_LISTEN=127.0.0.1:$port GEXEC_DATA_DIR=$tmp/data "$GEXECD" >"$tmp/gexecd.log" 2>&1 &
export GEXEC_API_KEY
dpid=$!
export GEXEC_SERVER=http://127.0.0.1:$port

fails=0
checks=0
cleanup() {
    # what a failed check may have left: the second daemon, its streams
    for p in ${spid:-} ${jpid:-} ${apid:-} ${cpid:-}; do kill -TERM "$p" 2>/dev/null; done
    kill -TERM "$dpid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$dpid" 2>/dev/null
    wait "$dpid" 2>/dev/null
    if [ "$fails" -ne 0 ]; then
        echo "---- gexecd log ----"
        tail -n 50 "$tmp/gexecd.log"
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

up=0
for _ in $(seq 200); do
    if "$GEXEC" health >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$dpid" 2>/dev/null || break
    sleep 0.1
done
if [ $up -ne 1 ]; then
    echo "gexecd did not come up"
    cat "$tmp/gexecd.log"
    exit 1
fi

# run WANT_RC CMD...: run gexec, keep stdout in $out and stderr in $err.
run() {
    local want=$1
    shift
    checks=$((checks + 1))
    "$GEXEC" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL: gexec $* -> exit $rc, want $want"
        echo "  stdout: $out"
        echo "  stderr: $err"
        fails=$((fails + 1))
        return 1
    fi
    return 0
}

# expect WHAT PATTERN TEXT: TEXT must match the extended regex PATTERN.
expect() {
    checks=$((checks + 1))
    if ! grep -Eq -- "$2" <<<"$3"; then
        echo "FAIL: $1: '$3' does not match /$2/"
        fails=$((fails + 1))
    fi
}

# a Python with NumPy, for interop checks (skipped when there is none)
NPY=""
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import numpy' 2>/dev/null; then NPY=$p; break; fi
done

# same WHAT WANT GOT: GOT must be WANT exactly (lines compared as text).
same() {
    checks=$((checks + 1))
    if [ "$2" != "$3" ]; then
        echo "FAIL: $1:"
        diff <(echo "$2") <(echo "$3") | head -n 10
        fails=$((fails + 1))
    fi
}

json_get() { # json_get EXPR: evaluate a Python expression on j = JSON of stdin
    python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"
}

# ---- global -------------------------------------------------------------------
run 0 --version && expect version '^gexec [0-9]+\.[0-9]+' "$out"
run 0 --help && expect help 'exit codes' "$out"
run 0 help submit && expect "help submit" '--kernel NAME' "$out"
run 0 wait --help && expect "wait --help" 'usage: gexec wait' "$out"
run 2 && expect "no command" 'no command' "$err"
run 2 frobnicate && expect "unknown command" "^gexec: unknown command 'frobnicate'" "$err"
run 2 get && expect "missing operand" 'get needs ID' "$err"
run 2 get 1 --bogus
run 2 list --limit x && expect "bad int" 'limit' "$err"
run 5 --server http://127.0.0.1:1 health && expect "refused" 'cannot connect' "$err"
run 2 --server ftp://x health

# ---- service information ------------------------------------------------------------
run 0 health && expect health 'alive, ready' "$out"
run 0 --json health && expect "health json" '"ready"' "$out"
run 0 devices && expect devices 'cpu' "$out"
run 0 --json devices && expect "devices json" '^cpu$' "$(json_get 'j["devices"][0]["kind"]' <<<"$out")"
run 0 kernels && expect kernels 'saxpy' "$out"
run 0 kernels saxpy && expect "kernel saxpy" 'args:' "$out" && expect "kernel circuit" 'attempts by default: 1; circuit: closed' "$out"
run 0 --json kernels spin && expect "kernel json" '^spin$' "$(json_get 'j["name"]' <<<"$out")"
run 4 kernels no_such_kernel
run 0 kernels saxpy@1 && expect "kernel saxpy@1" '^saxpy@1 ' "$out"
run 0 --json kernels saxpy@1 && expect "kernel json saxpy@1" '^saxpy 1$' "$(json_get 'j["name"], j["version"]' <<<"$out" | tr -d "(),'")"
run 4 --json kernels saxpy@99

# ---- submit, wait, result -----------------------------------------------------------
run 0 submit -k saxpy -a a=2 -i x=@inline:f32:1,2,3 -i 'y=@inline:f32:1,1,1' --label suite=cli
id1=$out
expect "submit prints an id" '^[0-9]+$' "$id1"
run 0 wait "$id1" && expect "wait line" "^$id1 succeeded" "$out"
run 0 wait "$id1" --json && expect "wait --json" '^succeeded$' "$(json_get 'j["state"]' <<<"$out")"
run 0 result "$id1" && expect result '^y f32\[3\] \[3, 5, 7\]$' "$out"
run 0 result "$id1" -o "$tmp/res" && expect "result -o" "y f32\[3\] -> $tmp/res/y.npy" "$out"
if [ -n "$NPY" ]; then
    expect "numpy reads it" '^\[3\.0, 5\.0, 7\.0\]$' \
        "$("$NPY" -c "import numpy; print(numpy.load('$tmp/res/y.npy').tolist())")"
fi
run 2 result "$id1" -o '' && expect "result -o ''" "wants a directory" "$err"
run 2 result "$id1" -o "$tmp/res/y.npy" && expect "result -o FILE" "-o $tmp/res/y.npy: not a directory" "$err"
run 0 --json result "$id1" && expect "result json" '^y$' "$(json_get 'list(j["outputs"])[0]' <<<"$out")"
run 0 get "$id1" && expect get '^state: +succeeded' "$out"
# logs: the job's history; -f follows (at once over for a final job)
run 0 logs "$id1" && expect logs "^[0-9TZ:.-]+ $id1 queued attempt=0" "$(head -1 <<<"$out")" &&
    expect "logs end" "^[0-9TZ:.-]+ $id1 succeeded attempt=1" "$(tail -1 <<<"$out")"
run 0 logs -f "$id1" && expect "logs -f" " $id1 succeeded " "$out"
run 0 --json logs "$id1" && expect "logs json" '^succeeded$' "$(tail -1 <<<"$out" | json_get 'j["state"]')"
run 4 logs 999999
run 2 logs
# top: one snapshot of the daemon (rates over the interval), --json too
run 0 top --once --interval 200ms && expect "top devices" '^cpu +cpu +ok ' "$(grep '^cpu ' <<<"$out")" &&
    expect "top tenants" '^default +[0-9]+ +[0-9]+ +[0-9.]+$' "$(grep '^default ' <<<"$out")" &&
    expect "top jobs" '^jobs/s +submitted [0-9.]+ +finished [0-9.]+' "$out"
run 0 --json top --once --interval 200ms &&
    expect "top json" '^cpu default True$' "$(json_get 'j["devices"][0]["name"], [t["name"] for t in j["tenants"]][0], j["interval_seconds"] > 0.1' <<<"$out")"
run 2 top --interval 10ms && expect "top interval" 'at least 100ms' "$err"
run 0 --json get "$id1" && expect "get json" '^succeeded$' "$(json_get 'j["state"]' <<<"$out")"

# inputs from .npy files (uploaded as blobs), flags after a spec file
# x.npy: from NumPy when there is one, else the .npy that `result -o` wrote
if [ -n "$NPY" ]; then
    "$NPY" -c "import numpy; numpy.save('$tmp/x.npy', numpy.arange(5, dtype=numpy.float64))"
    want_x='\[0, 4, 8, 12, 16\]'
else
    cp "$tmp/res/y.npy" "$tmp/x.npy"
    want_x='\[12, 20, 28\]'
fi
cat >"$tmp/spec.json" <<'EOF'
{"kernel": "saxpy", "args": {"a": 1}, "labels": {"suite": "cli"}}
EOF
run 0 submit -f "$tmp/spec.json" -a a=3 -i x="$tmp/x.npy" -i y="$tmp/x.npy" --wait
expect "submit --wait" ' succeeded' "$out"
id2=$(head -n1 <<<"$out")
run 0 result "$id2" && expect "npy result" "$want_x" "$out"
run 0 --json submit -k spin -a us=1000 --priority 5 --device cpu --timeout 10s --max-attempts 2 \
    --idempotency-key cli-key-1 --label suite=cli
expect "submit json" '^[0-9]+$' "$(json_get 'j["id"]' <<<"$out")"
idk=$(json_get 'j["id"]' <<<"$out")
run 0 submit -k spin -a us=1000 --idempotency-key cli-key-1 && expect "idempotent" "^$idk$" "$out"
run 0 submit -k spin --device gpu --fallback cpu && idf=$out
run 0 wait "$idf"
run 0 --json get "$idf"   # on the CPU with the reason, or on a GPU where there is one
expect "fallback" '^(no healthy GPU: .*|cuda:[0-9]+)$' "$(json_get 'j["fallback"] or j["device"]' <<<"$out")"
run 0 get "$idf" && expect "get fallback" '^(fallback: +no healthy GPU|device: +cuda)' "$out"
# logs show a change's note (the fallback's reason, on its running line)
if grep -q '^fallback:' <<<"$out"; then
    run 0 logs "$idf" && expect "logs note" " $idf running attempt=1 note: fallback: no healthy GPU: " "$out"
fi
run 3 submit -k spin --device gpu --fallback tpu && expect "bad fallback" 'fallback' "$err"
# --memory: a declared need past every device is refused, naming it
run 3 submit -k spin --memory 1125899906842624 && expect "memory refused" 'memory_bytes.*largest device' "$err"
run 2 submit -k spin --memory lots && expect "memory usage" 'memory' "$err"
run 0 --json submit -k spin --memory 4096 --wait && expect "memory ok" '^succeeded$' "$(json_get 'j["state"]' <<<"$out")"
run 0 submit -k spin --dep "$id1" --dep "$idk" -q --wait && expect "quiet" '^$' "$out"
echo '[{"kernel":"spin"},{"kernel":"spin","depends_on":["@0"]}]' >"$tmp/batch.json"
run 0 submit -f "$tmp/batch.json" && expect batch '^[0-9]+
[0-9]+$' "$out"
echo '{"jobs":[{"kernel":"spin"},{"kernel":"no_such_kernel"}]}' >"$tmp/batch2.json"
run 3 submit -f "$tmp/batch2.json" && expect "batch refused" 'jobs\[1\] refused' "$err"
run 2 submit -f "$tmp/batch.json" -k spin && expect "batch + flags" 'takes no job flags' "$err"
echo '{"kernel":' >"$tmp/bad.json"
run 2 submit -f - <"$tmp/bad.json" && expect "bad spec" 'not valid JSON' "$err"

# values: integers decimal in and exact out (%.9g showed 2^53 + 2 as
# 9.00719925e+15; 010 was octal 8 and 08 refused); NaN and infinities come
# back from a small result, each itself (null made `result` fail, exit 5);
# f16 inline end to end (the server refused the dtype)
run 0 submit -k reduce_sum -i x=@inline:i64:9007199254740993,1
idv=$out
run 0 wait "$idv"
run 0 result "$idv" && expect "exact i64" '^sum i64\[1\] \[9007199254740994\]$' "$out"
run 0 submit -k reduce_sum -i x=@inline:i64:010,08
ido=$out
run 0 wait "$ido"
run 0 result "$ido" && expect "leading zero decimal" '^sum i64\[1\] \[18\]$' "$out"
run 2 submit -k reduce_sum -i x=@inline:i64:0x10 && expect "no hex" "bad value at '0x10'" "$err"
run 0 submit -k saxpy -a a=1 -i x=@inline:f64:inf,-inf,nan,1 -i y=@inline:f64:0,0,0,0.5
idn=$out
run 0 wait "$idn"
run 0 result "$idn" && expect "non-finite" '^y f64\[4\] \[inf, -inf, nan, 1\.5\]$' "$out"
run 0 --json result "$idn" && expect "non-finite json" '^\["Infinity", "-Infinity", "NaN", 1\.5\]$' \
    "$(json_get 'json.dumps(j["outputs"]["y"]["data"])' <<<"$out")"
run 0 submit -k sort -i keys=@inline:f64:3,1,2 -i values=@inline:f16:0.1,nan,-inf
idh=$out
run 0 wait "$idh"
run 0 result "$idh" && expect "f16 inline" '^values f16\[3\] \[nan, -inf, 0\.0999755859\]$' "$out"
run 2 submit -k sort -i keys=@inline:f64:1 -i values=@inline:f16:70000 && expect "f16 range" '70000 does not fit in f16' "$err"

# usage errors stay local: nothing reaches the server
run 2 submit && expect "no kernel" 'needs -k KERNEL' "$err"
run 2 submit -k saxpy -i x=@inline:f33:1 && expect "bad dtype" "unknown dtype 'f33'" "$err"
run 2 submit -k saxpy -i x=@inline:f32[2]:1 && expect "bad count" '1 values for a shape of 2' "$err"
run 2 submit -k saxpy -i x=/nonexistent.npy && expect "no file" 'cannot open /nonexistent.npy' "$err"
echo hello >"$tmp/not.npy"
run 2 submit -k saxpy -i x="$tmp/not.npy" && expect "not npy" 'not a usable .npy' "$err"
run 2 submit -k saxpy -a noequals && expect "bad -a" 'expected name=value' "$err"
run 2 submit -k saxpy -a a=1e999 -i x=@inline:f32:1 -i y=@inline:f32:1 && expect "-a beyond a double" '1e999 is out of the range of a double \(field args\.a\)' "$err"
run 2 submit -k spin -a us=99999999999999999999 && expect "-a beyond 64 bits" 'does not fit in a 64-bit integer \(field args\.us\)' "$err"
# a bad file after one that uploaded is still exit 2 (exit 5: the status of
# the first upload was taken for the answer, and a long path cut the
# message that was matched)
: >"$tmp/empty.npy"
head -c 60 "$tmp/x.npy" >"$tmp/short.npy"
mkdir -p "$tmp/dir.npy" "$tmp/$(printf 'long%.0s' $(seq 60))"
longnpy="$tmp/$(printf 'long%.0s' $(seq 60))/not.npy"
echo hello >"$longnpy"
run 2 submit -k saxpy -a a=1 -i x="$tmp/x.npy" -i y="$tmp/missing.npy" &&
    expect "second input missing" "^gexec: input y: cannot open $tmp/missing.npy: No such file" "$err"
run 2 submit -k saxpy -a a=1 -i x="$tmp/x.npy" -i y="$tmp/empty.npy" && expect "second input empty" 'not a usable .npy' "$err"
run 2 submit -k saxpy -a a=1 -i x="$tmp/x.npy" -i y="$tmp/short.npy" && expect "second input cut short" 'not a usable .npy' "$err"
run 2 submit -k saxpy -a a=1 -i x="$tmp/x.npy" -i y="$tmp/dir.npy" && expect "second input a folder" 'Is a directory' "$err"
run 2 submit -k saxpy -a a=1 -i x="$tmp/x.npy" -i y="$longnpy" && expect "second input, long path" '/not.npy is not a usable .npy' "$err"
run 2 submit -k spin --timeout 5parsecs && expect "bad duration" 'duration' "$err"
run 2 submit -k spin --timeout 0.0004 && expect "duration rounding to 0" 'under 1 ms' "$err"
run 0 submit --help && expect "--max-attempts help" 'max-attempts N +attempts allowed on transient faults, 1\.\.100' "$out"
run 2 --server https://127.0.0.1:1 --cacert "$tmp/no-ca.pem" health && expect "--cacert missing" "cannot read the CA bundle $tmp/no-ca.pem: No such file" "$err"
GEXEC_CACERT=$tmp run 2 --server https://127.0.0.1:1 health && expect "GEXEC_CACERT a folder" 'GEXEC_CACERT: .*Is a directory' "$err"
run 2 submit -f /nonexistent.json

# refusals by the server
run 3 submit -k no_such_kernel && expect "unknown kernel" '^gexec: .*\(field kernel\)$' "$err"
run 3 submit -k spin -a us=fast && expect "bad arg" '\(field args\.us\)' "$err"
run 3 submit -k spin --device cpu:99 && expect "no device" '\(field device\)' "$err"
run 4 get 999999999 && expect "not found" '^gexec: ' "$err"
run 4 wait 999999999
run 4 result 999999999
run 4 cancel 999999999

# ---- cancel, timeouts, failures ---------------------------------------------------------
run 0 submit -k spin -a us=60000000 --label suite=cli-long
long=$out
run 6 wait "$long" --timeout 300ms && expect "wait timeout" 'still (queued|scheduled|running)' "$err"
# not a terminal: one plain line per state seen, no progress bar
expect "wait progress lines" "^$long (queued|scheduled|running)$" "$out"
checks=$((checks + 1))
if grep -q '[[:cntrl:]]' <<<"$out"; then
    echo "FAIL: wait off a terminal wrote control characters: '$out'"
    fails=$((fails + 1))
fi
# on a terminal (script(1) gives it one): a redrawn progress line with a bar
if command -v script >/dev/null; then
    checks=$((checks + 1))
    script -qec "$GEXEC wait $long --timeout 700ms" /dev/null >"$tmp/tty" 2>&1
    if ! grep -aq $'\r'"$long running \[.*<=>.*\] [0-9.]*s" "$tmp/tty"; then
        echo "FAIL: wait on a terminal: no progress bar in '$(tr '\r\033' '|~' <"$tmp/tty")'"
        fails=$((fails + 1))
    fi
else
    echo "skipped: script(1) not available, progress bar not checked"
fi
run 3 result "$long" && expect "result too early" 'succeeded' "$err"
run 6 events --job "$long" --timeout 500ms
run 0 cancel "$long" && expect cancel "^$long cancelled" "$out"
run 1 wait "$long" && expect "wait cancelled" "^$long cancelled" "$out"
run 3 cancel "$long" && expect "cancel again" 'already' "$err"
run 1 result "$long" && expect "result of cancelled" "job $long cancelled" "$err"
run 1 submit -k spin -a us=20000000 --timeout 100ms --wait && expect "timed out" ' timed_out' "$out"
run 6 submit -k spin -a us=60000000 --wait --wait-timeout 200ms
slow=$(head -n1 <<<"$out")
run 0 --json cancel "$slow" && expect "cancel json" '^cancelled$' "$(json_get 'j["state"]' <<<"$out")"

# ---- requeue (dead letters) --------------------------------------------------------------
run 1 submit -k linreg_gd -a steps=20 -a lr=1e9 -i x=@inline:f64[2,1]:1,2 -i y=@inline:f64:1,2 --wait
bad=$(head -n1 <<<"$out")
run 0 requeue "$bad" && expect requeue "^$bad (queued|scheduled|running|failed)" "$out"
run 1 wait "$bad" && expect "requeued fails again" "^$bad failed" "$out"
run 3 requeue "$id1" && expect "requeue succeeded" 'only dead or failed' "$err"
run 4 requeue 999999999

# ---- list -------------------------------------------------------------------------------
run 0 list && expect list '^ID +STATE +KERNEL' "$out"
run 0 list --state succeeded --kernel saxpy --label suite=cli
expect "list filtered" "^$id1 +succeeded +saxpy" "$(grep "^$id1 " <<<"$out")"
run 0 list --limit 1 --label suite=cli && expect "list page" '^more: gexec list --label suite=cli --limit 1 --cursor [0-9]+ \(or --all\)$' "$err"
run 0 --json list --all --label suite=cli
expect "list --all" '^[3-9]$|^[1-9][0-9]+$' "$(json_get 'len(j["jobs"])' <<<"$out")"
expect "list --all cursor" '^None$' "$(json_get 'j["next_cursor"]' <<<"$out")"
run 2 list --label nolabel
run 3 list --state bogus
# newest first: the same jobs, the other way round, a page at a time and with --all
lids() { awk 'NR > 1 && $1 ~ /^[0-9]+$/ { print $1 }' <<<"$out"; } # the ID column
run 0 list --all --label suite=cli && asc_ids=$(lids)
run 0 list --all --label suite=cli --order desc && same "list --order desc --all" "$(sort -n -r <<<"$asc_ids")" "$(lids)"
run 0 list --all --label suite=cli -r --limit 1 && same "list -r --limit 1 --all" "$(sort -n -r <<<"$asc_ids")" "$(lids)"
run 0 list --label suite=cli --newest --limit 1
same "list --newest: the newest first" "$(sort -n -r <<<"$asc_ids" | head -n 1)" "$(lids)"
expect "list --newest: the next page's command" "^more: gexec list --label suite=cli --order desc --limit 1 --cursor $(lids) \\(or --all\\)\$" "$err"
run 0 list --label suite=cli --order desc --limit 1 --cursor "$(lids)"
same "list --order desc --cursor: the next newest" "$(sort -n -r <<<"$asc_ids" | sed -n 2p)" "$(lids)"
run 0 --json list --all --label suite=cli --order desc
same "list --json --order desc --all" "$(sort -n -r <<<"$asc_ids")" "$(json_get '"\n".join(x["id"] for x in j["jobs"])' <<<"$out")"
run 0 list --order asc --label suite=cli --all && same "list --order asc" "$asc_ids" "$(lids)"
run 2 list --order up && expect "list --order: asc or desc" "asc or desc" "$err"
# the next page's command keeps this one's filters, quoted for a shell (it
# said "gexec list --cursor C", which listed other jobs)
more_cmd() { sed -e 's/^more: gexec //' -e 's/ (or --all)$//' <<<"$err"; } # the command of the more: line
run 0 list --state timed_out,cancelled --all && tc_ids=$(lids)
run 0 list -s timed_out,cancelled -n 1 &&
    expect "more: the filters" '^more: gexec list --state timed_out,cancelled --limit 1 --cursor [0-9]+ \(or --all\)$' "$err"
eval "run 0 $(more_cmd)" && same "more: the next page" "$(sed -n 2p <<<"$tc_ids")" "$(lids)"
run 0 submit -k spin -a us=1000 -l "note=it's \$HOME & more" -l suite=cli-quote && q1=$out
run 0 submit -k spin -a us=1000 -l "note=it's \$HOME & more" -l suite=cli-quote
run 0 list -l "note=it's \$HOME & more" -l suite=cli-quote -k spin -r -n 1 &&
    expect "more: quoted" "^more: gexec list --kernel spin --label 'note=it'\\\\''s \\\$HOME & more' --label suite=cli-quote --order desc --limit 1 --cursor [0-9]+ \\(or --all\\)\$" "$err"
eval "run 0 $(more_cmd)" && same "more: quoted, the next page" "$q1" "$(lids)"
run 2 list --newest --order asc

# ---- events ----------------------------------------------------------------------------
run 0 events --job "$id1" && expect "history" "$id1 succeeded" "$out"
expect "history starts queued" "$id1 queued" "$(head -n1 <<<"$out")"
run 0 --json events "$id1" --history
expect "history json" '^succeeded$' "$(tail -n1 <<<"$out" | json_get 'j["state"]')"
run 0 events --timeout 300ms
run 2 events --history
run 2 events --job "$id1" "$id1" && expect "events: --job and an operand" "unexpected operand" "$err"
# follow a job that finishes while we listen
run 0 submit -k spin -a us=700000
fj=$out
run 0 events --job "$fj" --timeout 20s && expect "follow to the end" "$fj succeeded" "$(tail -n1 <<<"$out")"

# ---- keys, tenants, audit ---------------------------------------------------------------
run 0 tenants create --tenant cli-team --weight 2 --max-running 4 && expect "tenant create" '^cli-team weight 2' "$out"
run 0 tenants list && expect "tenant list" '^cli-team +2 +4' "$(grep '^cli-team ' <<<"$out")"
run 0 keys create --tenant cli-team --role viewer --label cli --expires-in 1h
vkey=$out
expect "key create" '^gx_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$' "$vkey"
vid=$(cut -d_ -f2 <<<"$vkey")
run 0 keys list --tenant cli-team && expect "key list" "^$vid +cli-team +viewer +active +cli" "$(grep "^$vid " <<<"$out")"
run 0 keys create --tenant cli-team --role viewer --label never --expires-in none
nid=$(cut -d_ -f2 <<<"$out") # never expires (-0.001 s was sent, and refused)
run 0 --json keys list --tenant cli-team && expect "--expires-in none: never" '^None$' "$(json_get '[k["expires_ns"] for k in j["keys"] if k["id"] == "'"$nid"'"][0]' <<<"$out")"
run 2 keys create --tenant cli-team --role viewer --expires-in 0
run 0 keys create --tenant cli-team --role viewer --label brief --expires-in 1s
bid=$(cut -d_ -f2 <<<"$out")
sleep 1.2
run 0 keys list --tenant cli-team && expect "expired key" "^$bid +cli-team +viewer +expired +brief" "$(grep "^$bid " <<<"$out")"
expect "key list has no secret" '^[^_]*$|^ID' "$(grep -c gx_ <<<"$out" || true)"
run 0 --api-key "$vkey" list && expect "viewer lists" '^ID' "$out"
# list --tenant: another tenant's jobs, for an admin (there was no flag)
run 0 keys create --tenant cli-list --role submitter --label cli-sub && skey=$out
run 0 --api-key "$skey" submit -k spin -a us=1000 --label suite=cli-tenant && tj=$out
run 0 list --tenant cli-list --label suite=cli-tenant && same "list --tenant" "$tj" "$(lids)"
run 0 list --label suite=cli-tenant && same "list: the key's tenant only" "" "$(lids)"
run 0 --json list --tenant cli-list --label suite=cli-tenant && expect "list --tenant --json" '^cli-list$' "$(json_get 'j["jobs"][0]["tenant"]' <<<"$out")"
run 4 --api-key "$vkey" list --tenant default
# events --tenant: another tenant's stream for a tenant's key is a 404 (the
# server ignored the filter: its own stream ran to the timeout, exit 0)
run 4 --api-key "$vkey" events --tenant default --timeout 2s
run 0 --api-key "$vkey" whoami && expect whoami "^key $vid, tenant cli-team, role viewer, expires 20[0-9-]+T" "$out"
run 0 --json --api-key "$vkey" whoami && expect "whoami json" "^viewer cli-team True$" "$(json_get 'j["role"], j["tenant"], j["auth"]' <<<"$out")"
run 3 --api-key gx_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA whoami
run 0 tenants create --tenant cli-team --max-queued 5 --max-memory 1000000 --device-seconds-per-hour 2.5
expect "tenant quotas" '^ +max_queued +5$' "$(grep max_queued <<<"$out")"
expect "tenant quotas keep max_running" '^cli-team weight 2 default_priority 0 max_running 4' "$out"
# a default priority: the tenant's jobs that set none take it (and keep it)
run 0 tenants create --tenant cli-team --default-priority 40 && expect "default priority" '^cli-team weight 2 default_priority 40 max_running 4' "$out"
run 2 tenants create --tenant cli-team --default-priority 101 && expect "default priority range" 'default-priority' "$err"
run 0 --api-key "$vkey" tenants usage cli-team && expect "tenant usage" '^max_queued +0 +5$' "$(grep '^max_queued' <<<"$out")"
expect "tenant usage seconds" '^device_seconds_per_hour +0 +2.5$' "$(grep '^device_seconds' <<<"$out")"
run 0 --json tenants usage cli-team && expect "tenant usage json" '^1000000$' "$(json_get 'j["quotas"]["max_device_memory_bytes"]["limit"]' <<<"$out")"
run 4 --api-key "$vkey" tenants usage default
run 2 tenants usage
run 2 tenants create --tenant cli-team --max-queued -1
# a weight that is not finite is refused here (inf was dropped from the
# body, and the tenant kept weight 1)
run 2 tenants create --tenant cli-t2 --weight inf && expect "--weight inf" 'within 1e-6\.\.1e6' "$err"
run 2 tenants create --tenant cli-t2 --weight 1e-9 && expect "--weight too small" 'within 1e-6\.\.1e6' "$err"
run 2 tenants create --tenant cli-t2 --weight nan
run 2 tenants create --tenant cli-t2 --weight 1e999
run 2 tenants create --tenant cli-t2 --device-seconds-per-hour inf
run 3 --api-key "$vkey" submit -k spin && expect "viewer may not submit" 'viewer' "$err"
run 3 --api-key "$vkey" keys list
run 3 --api-key "$vkey" top --once --interval 100ms && expect "top needs an operator" 'operator' "$err"
run 3 --api-key gx_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA list
# ---- devices drain / undrain (operator) -------------------------------------------------
run 3 --api-key "$vkey" devices drain cpu && expect "viewer may not drain" 'viewer' "$err"
run 0 devices drain cpu && expect "drain" '^cpu drained \(drained by an operator\)$' "$out"
run 0 devices && expect "devices shows drained" '^0 +cpu .* drained ' "$(grep '^0 ' <<<"$out")"
run 0 --json devices undrain 0 && expect "undrain json" '^False$' "$(json_get 'j["drained"]' <<<"$out")"
run 0 devices undrain cpu && expect "undrain twice" '^cpu undrained \(ok\)$' "$out"
run 4 devices drain cuda:9 && expect "unknown device" 'field id' "$err"
run 2 devices drain ../etc && expect "bad device name" 'field name' "$err"
run 2 devices drain
run 2 devices frob cpu
run 0 keys revoke "$vid" && expect "key revoke" "^$vid revoked" "$out"
run 3 --api-key "$vkey" list
run 4 keys revoke ffffffffffffffff
# a key id goes into the URL path: anything but 16 lowercase hex digits is
# refused before a request ("../jobs/N" was sent as it was and cancelled job N)
run 0 submit -k spin -a us=60000000 --label suite=cli-long && victim=$out
run 2 keys revoke "../jobs/$victim" && expect "keys revoke: not a key id" "'\.\./jobs/$victim' is not a key id" "$err"
run 0 --json get "$victim" && expect "keys revoke ../jobs/N left the job alone" '^(queued|scheduled|running)$' "$(json_get 'j["state"]' <<<"$out")"
run 0 cancel "$victim"
run 2 keys revoke FFFFFFFFFFFFFFFF
run 2 keys revoke 0123456789abcdef0
run 2 tenants usage .. && expect "tenants usage .." 'not \. or \.\.' "$err"
run 2 keys frob
run 2 keys create
# keys list follows the pages of GET /v1/keys (100 keys a page) to the end
many=()
for i in $(seq 230); do
    "$GEXEC" keys create --tenant cli-many --role viewer --label "many $i" >/dev/null 2>"$tmp/err" || break
    many+=("$(grep -o 'key [0-9a-f]\{16\}' "$tmp/err" | cut -d' ' -f2)")
done
same "230 keys made" 230 "${#many[@]}"
want=$(printf '%s\n' "${many[@]}")
ids() { awk 'NR > 1 { print $1 }' <<<"$out"; } # the ID column, without the header
run 0 keys list --tenant cli-many && same "keys list: every key once, oldest first" "$want" "$(ids)"
expect "keys list: no more" '^$' "$err"
run 0 keys list && expect "keys list: every tenant's" '^23[0-9]$' "$(grep -c -v '^ID ' <<<"$out")"
run 0 --json keys list --tenant cli-many && same "keys list --json: every key" "$want" "$(json_get '"\n".join(k["id"] for k in j["keys"])' <<<"$out")"
expect "keys list --json: the last page" '^None$' "$(json_get 'j["next_cursor"]' <<<"$out")"
run 0 keys list --tenant cli-many --limit 7 && same "keys list --limit: one page" "$(head -n 7 <<<"$want")" "$(ids)"
expect "keys list --limit: the next page's command" '^more: gexec keys list --tenant cli-many --limit 7 --cursor [0-9]+ \(or --all\)$' "$err"
cur=$(grep -o -- '--cursor [0-9]*' <<<"$err" | cut -d' ' -f2)
run 0 keys list --tenant cli-many --limit 7 --cursor "$cur" && same "keys list --cursor: the next page" "$(sed -n 8,14p <<<"$want")" "$(ids)"
run 0 --json keys list --tenant cli-many --limit 7 && expect "keys list --json --limit: the server's page" '^7 [0-9]+$' "$(json_get 'len(j["keys"]), j["next_cursor"]' <<<"$out" | tr -d "(),'")"
run 0 keys list --tenant cli-many --limit 7 --all && same "keys list --limit --all" "$want" "$(ids)"
run 0 keys revoke "${many[3]}"
run 0 keys list --tenant cli-many --state revoked && same "keys list --state revoked" "${many[3]}" "$(ids)"
run 0 keys list --state revoked --all && rv_ids=$(ids)
run 0 keys list --state revoked -n 1 &&
    expect "keys more: the filters" '^more: gexec keys list --state revoked --limit 1 --cursor [0-9]+ \(or --all\)$' "$err"
eval "run 0 $(more_cmd)" && same "keys more: the next page" "$(sed -n 2p <<<"$rv_ids")" "$(ids)"
run 0 keys list --tenant cli-many --state active && same "keys list --state active" "$(grep -v -x "${many[3]}" <<<"$want")" "$(ids)"
run 2 keys list --limit 0
run 2 keys list --limit 1001
run 2 keys list --state expired && expect "keys list --state" 'active or revoked' "$err"
run 3 keys list --cursor x && expect "keys list: a bad cursor" 'field cursor' "$err"
run 0 audit verify --file "$tmp/data/audit.log" && expect "audit intact" 'intact' "$out"
cp "$tmp/data/audit.log" "$tmp/audit-copy.log"
sed -i '2s/"ok"/"OK"/' "$tmp/audit-copy.log"
run 1 audit verify --file "$tmp/audit-copy.log" && expect "audit tampered" 'line 2' "$out"
run 2 audit verify --file "$tmp/no-such-audit.log"
checks=$((checks + 1))
[ "$(grep -o "no-such-audit.log" <<<"$err" | wc -l)" = 1 ] || { echo "FAIL: audit verify of a missing file: $err"; fails=$((fails + 1)); }

# ---- gexecd --check-config: the key and line of an error, exit 2 ---------------------
gexecd_rc() { # gexecd_rc WANT_RC [NAME=VALUE...] [ARG...]: gexecd ARG... in that environment
    local want=$1 vars=()
    shift
    while [ $# -gt 0 ] && [[ $1 == GEXEC_*=* ]]; do vars+=("$1"); shift; done
    checks=$((checks + 1))
    timeout 20 env -u GEXEC_CONFIG -u GEXEC_ADMIN_KEY GEXEC_DATA_DIR="$tmp/cfgdata" "${vars[@]}" "$GEXECD" "$@" \
        >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    out=$(cat "$tmp/out" "$tmp/err")
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL: ${vars[*]} gexecd $* -> exit $rc, want $want: $out"
        fails=$((fails + 1))
    fi
}
checkcfg() { # checkcfg WANT_RC FILE: run gexecd --check-config on FILE
    gexecd_rc "$1" --config "$2" --check-config
}
printf 'http:\n  threads: 2\n  max_connections: many\n' >"$tmp/bad.yaml"
checkcfg 2 "$tmp/bad.yaml" && expect "check-config bad value" 'line 3: http\.max_connections: .many. is not an integer' "$out"
printf 'store:\n  synchronous: full\nhttp:\n  bogus_key: 1\n' >"$tmp/bad2.yaml"
checkcfg 2 "$tmp/bad2.yaml" && expect "check-config unknown key" "line 4: unknown key 'http\.bogus_key'" "$out"
printf 'http:\n  threads: 2\n' >"$tmp/ok.yaml"
checkcfg 0 "$tmp/ok.yaml" && expect "check-config ok" 'is valid' "$out"
# a file that cannot be read (yet) exits 1, so that systemd tries again; it said exit 2
gexecd_rc 1 GEXEC_CONFIG="$tmp/not-mounted/gexec.yaml" &&
    expect "unreadable config" "cannot open .*not-mounted/gexec.yaml: No such file or directory \(the file GEXEC_CONFIG names\)" "$out"
gexecd_rc 1 --config "$tmp" --check-config && expect "config is a folder" "cannot read .*: Is a directory" "$out"
# GEXEC_CUDA_PLUGIN beats the file like every key's variable (the file won)
printf 'cuda:\n  plugin: /from/file.so\n' >"$tmp/plugin.yaml"
gexecd_rc 0 GEXEC_CUDA_PLUGIN=/from/env.so --config "$tmp/plugin.yaml" --print-config &&
    expect "GEXEC_CUDA_PLUGIN" 'plugin: "/from/env.so"' "$out"

# ---- gexecd: what the start would refuse, --check-config refuses (exit 2) -----------
printf 'auth:\n  enabled: true\n  admin_key: notakey-secret\n' >"$tmp/badkey.yaml"
gexecd_rc 2 --config "$tmp/badkey.yaml" --check-config &&
    expect "check-config admin key (file)" "badkey.yaml: line 3: auth\.admin_key: the value is not an admin key: it must look like gx_" "$out"
[[ $out == *notakey-secret* ]] && { echo "FAIL: --check-config shows the admin key: $out"; fails=$((fails + 1)); }
gexecd_rc 2 GEXEC_ADMIN_KEY=notakey --check-config &&
    expect "check-config admin key (GEXEC_ADMIN_KEY)" '^gexecd: GEXEC_ADMIN_KEY: auth\.admin_key: the value is not an admin key' "$out"
gexecd_rc 2 GEXEC_ADMIN_KEY=notakey &&  # the start refuses it the same way, before anything runs
    expect "start admin key" 'GEXEC_ADMIN_KEY: auth\.admin_key: the value is not an admin key' "$out"
gexecd_rc 0 GEXEC_ADMIN_KEY="$GEXEC_API_KEY" --check-config
gexecd_rc 0 GEXEC_ADMIN_KEY="$GEXEC_API_KEY" --print-config &&
    expect "print-config GEXEC_ADMIN_KEY set, hidden" '^  admin_key: "\(redacted\)"$' "$out"
[[ $out == *"$GEXEC_API_KEY"* ]] && { echo "FAIL: --print-config shows the admin key"; fails=$((fails + 1)); }
gexecd_rc 2 GEXEC_LISTEN=999.1.1.1:80 --check-config &&
    expect "check-config listen" "GEXEC_LISTEN: listen: '999\.1\.1\.1:80' has host 999\.1\.1\.1, which is not an IPv4 address" "$out"
gexecd_rc 2 GEXEC_STORE_BACKEND=postgres GEXEC_STORE_DSN=postgresql://db/g --check-config &&
    expect "check-config postgres" "store\.backend: 'postgres' is not available in this build" "$out"
gexecd_rc 2 GEXEC_DATA_DIR="$tmp/ok.yaml" --check-config &&
    expect "check-config data_dir a file" "^gexecd: GEXEC_DATA_DIR: data_dir: .*ok\.yaml is not a folder" "$out"
printf 'http:\n  threads: 2\nstore:\n  path: %s\n' "$tmp" >"$tmp/dd.yaml"  # the file's line, as for a bad value
gexecd_rc 2 --config "$tmp/dd.yaml" --check-config &&
    expect "check-config store.path a folder (line)" "^gexecd: $tmp/dd\.yaml: line 4: store\.path: .* is a folder, not a database file" "$out"
gexecd_rc 2 GEXEC_STORE_PATH="$tmp" --check-config &&
    expect "check-config store.path a folder" "store\.path: .* is a folder, not a database file" "$out"
gexecd_rc 2 GEXEC_DEFAULT_TENANT=.. --check-config &&
    expect "check-config default_tenant .." "GEXEC_DEFAULT_TENANT: default_tenant: '\.\.' is not a tenant name \(\[A-Za-z0-9_\.-\], 1 to 63 characters, not \. or \.\.\)" "$out"
gexecd_rc 0 GEXEC_DATA_DIR="$tmp/not/yet/there" --check-config  # the start creates it
[ -e "$tmp/not" ] && { echo "FAIL: --check-config created data_dir"; fails=$((fails + 1)); }
# options and GEXEC_CONFIG
gexecd_rc 2 --check-config --config && expect "--config without value" "option '--config' needs a value" "$out"
gexecd_rc 2 -c --check-config && expect "-c without value" "option '-c' needs a value" "$out"
gexecd_rc 2 --config= --check-config && expect "--config= empty" "option '--config' needs a value" "$out"
gexecd_rc 0 GEXEC_CONFIG= --check-config && expect "GEXEC_CONFIG empty is unset" 'configuration \(defaults and environment\) is valid' "$out"

# ---- the start refuses what --check-config refuses, with exit 2, before anything runs
# (faults.startup and the TLS files were checked only after the restore, which
# ran the restored jobs on every failed start of a restart loop)
gexecd_rc 2 GEXEC_FAULTS_ENABLED=true GEXEC_FAULTS_STARTUP=garbage --check-config &&
    expect "check-config faults.startup" "^gexecd: GEXEC_FAULTS_STARTUP: faults\.startup: unknown fault point in 'garbage'" "$out"
gexecd_rc 2 GEXEC_FAULTS_ENABLED=true GEXEC_FAULTS_STARTUP=garbage &&
    expect "start faults.startup" "^gexecd: GEXEC_FAULTS_STARTUP: faults\.startup: unknown fault point in 'garbage'" "$out"
# a misspelt variable is named, its value never shown (a secret maybe: it went
# into the journal at every start)
gexecd_rc 0 GEXEC_AUTH_ADMINKEY=gx_0123456789abcdef_SECRETSECRETSECRET --check-config &&
    expect "misspelt variable named" "warning: GEXEC_AUTH_ADMINKEY: names no configuration key \(did you mean GEXEC_AUTH_ADMIN_KEY\?\)" "$out"
case "$out" in *SECRETSECRET*) echo "FAIL: a misspelt variable's value was printed: $out"; fails=$((fails + 1)) ;; esac
# values out of the admin call's ranges (they passed --check-config, then
# stopped the start with exit 1, naming delay_us alone)
gexecd_rc 2 GEXEC_FAULTS_ENABLED=true GEXEC_FAULTS_STARTUP='store.slow:-1,delay_us=-5' --check-config &&
    expect "check-config faults.startup delay_us" "faults\.startup: delay_us must be within 0\.\.60000000 \(in 'store\.slow:-1,delay_us=-5'\)" "$out"
gexecd_rc 2 GEXEC_FAULTS_ENABLED=true GEXEC_FAULTS_STARTUP='store.slow:-1,delay_us=99999999999' &&
    expect "start faults.startup delay_us" "faults\.startup: .*out of range" "$out"
gexecd_rc 2 GEXEC_FAULTS_ENABLED=true GEXEC_FAULTS_STARTUP='store.commit:5000000000' --check-config &&
    expect "check-config faults.startup count" "faults\.startup: count must be -1 \(until cleared\) or 1\.\.1000000000" "$out"
gexecd_rc 2 GEXEC_TLS_CERT=/etc/hostname GEXEC_TLS_KEY=/etc/hostname &&
    expect "start tls.cert" "^gexecd: GEXEC_TLS_CERT: tls\.cert: '/etc/hostname' holds no PEM certificate" "$out"
# a startup fault on a device that does not exist fails the start (it was armed)
gexecd_rc 1 GEXEC_FAULTS_ENABLED=true GEXEC_FAULTS_STARTUP=device.launch:1,device=7 GEXEC_LISTEN=127.0.0.1:0 &&
    expect "startup fault device" "cannot start: faults\.startup: there is no device 7" "$out"
rm -rf "$tmp/cfgdata" # (that start got as far as the engine: the device count)
# a file that cannot be read may be there later (a volume not mounted yet):
# exit 1, which systemd restarts; --check-config says 2 all the same
gexecd_rc 1 GEXEC_TLS_CERT="$tmp/no-cert.pem" GEXEC_TLS_KEY="$tmp/no-key.pem" &&
    expect "start tls.cert missing" "^gexecd: GEXEC_TLS_CERT: tls\.cert: cannot read" "$out"
gexecd_rc 2 GEXEC_TLS_CERT="$tmp/no-cert.pem" GEXEC_TLS_KEY="$tmp/no-key.pem" --check-config
[ -e "$tmp/cfgdata" ] && { echo "FAIL: a refused start created data_dir"; fails=$((fails + 1)); }
# a store that takes no writes fails the start (it waited for them for ever)
gexecd_rc 1 GEXEC_INJECT_FAULT=store.commit:0:-1:selftest GEXEC_LISTEN=127.0.0.1:0 &&
    expect "store takes no writes" "cannot start: store\.path: .*gexec\.db takes no writes" "$out"
rm -rf "$tmp/cfgdata"

# start errors name the configuration's key and the file (they said "path:",
# "blob:", or named no file at all)
mkdir -p "$tmp/baddb" "$tmp/badauth"
echo garbage >"$tmp/baddb/gexec.db"
echo garbage >"$tmp/badauth/auth.db"
gexecd_rc 1 GEXEC_DATA_DIR="$tmp/baddb" GEXEC_LISTEN=127.0.0.1:0 &&
    expect "start on a garbage store" "cannot start: store\.path: $tmp/baddb/gexec\.db: sqlite: file is not a database" "$out"
gexecd_rc 1 GEXEC_DATA_DIR="$tmp/badauth" GEXEC_LISTEN=127.0.0.1:0 &&
    expect "start on a garbage key database" "cannot start: data_dir: $tmp/badauth/auth\.db: key database: file is not a database" "$out"

# an emptied store in a folder that has served is refused (it started with no jobs)
mkdir -p "$tmp/emptied" && : >"$tmp/emptied/gexec.db" && cp "$tmp/data/auth.db" "$tmp/emptied/auth.db"
gexecd_rc 1 GEXEC_DATA_DIR="$tmp/emptied" GEXEC_LISTEN=127.0.0.1:0 &&
    expect "start on an emptied store" "cannot start: store\.path: $tmp/emptied/gexec\.db is empty \(0 bytes\) but this data folder has served before" "$out"

# a self-test the engine refuses says why (it said "did not run")
checks=$((checks + 1))
out=$(timeout 3 env -u GEXEC_CONFIG GEXEC_ADMIN_KEY="$GEXEC_API_KEY" GEXEC_DATA_DIR="$tmp/smallmem" \
    GEXEC_LISTEN=127.0.0.1:0 GEXEC_ENGINE_CPU_MEM=4KiB "$GEXECD" 2>&1)
[[ $out == *"cpu: self-test refused: inputs: the job needs 8008 bytes of device memory"* ]] ||
    { echo "FAIL: self-test with 4 KiB of memory: $out"; fails=$((fails + 1)); }

# ---- a generated admin key: in its file before the key exists, never in the log --------
# A start that cannot write the file fails and makes no key; a stale file
# (its key gone with auth.db) is replaced by a working key.
gexecd_rc 1 GEXEC_DATA_DIR="$tmp/gen" GEXEC_AUTH_ADMIN_KEY_FILE="$tmp/no-such-folder/admin.key" &&
    expect "unwritable admin key file" "cannot start: auth\.admin_key_file: cannot write the generated admin key \(.*no-such-folder/admin\.key\.tmp: No such file or directory\)" "$out"
echo "gx_0000000000000000_stale" >"$tmp/gen/admin.key"
gport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# (its log in JSON at debug, one HTTP thread: every line must be a JSON
# object, the HTTP library's too, and bytes that are not UTF-8 escaped)
env -u GEXEC_ADMIN_KEY -u GEXEC_CONFIG GEXEC_LISTEN=127.0.0.1:$gport GEXEC_DATA_DIR="$tmp/gen" \
    GEXEC_LOG_FORMAT=json GEXEC_LOG_LEVEL=debug GEXEC_HTTP_THREADS=1 "$GEXECD" >"$tmp/gen.log" 2>&1 &
gpid=$!
for _ in $(seq 200); do
    GEXEC_SERVER=http://127.0.0.1:$gport "$GEXEC" health >/dev/null 2>&1 && break
    sleep 0.1
done
genkey=$(cat "$tmp/gen/admin.key")
checks=$((checks + 1))
[[ $genkey == gx_*_* && $genkey != *stale* && $(stat -c %a "$tmp/gen/admin.key") == 600 ]] ||
    { echo "FAIL: the stale admin key file was not replaced: $genkey"; fails=$((fails + 1)); }
GEXEC_SERVER=http://127.0.0.1:$gport GEXEC_API_KEY=$genkey run 0 devices
curl -s -o /dev/null -H "Authorization: Bearer $genkey" "http://127.0.0.1:$gport/v1/jobs/%ff%fe%c3%a9"
kill -TERM "$gpid"
wait "$gpid"
checks=$((checks + 1))
python3 -c 'import json,sys; [json.loads(l.decode("utf-8")) for l in open(sys.argv[1],"rb")]' "$tmp/gen.log" &&
    grep -q 'ffff\|\\ufffd' "$tmp/gen.log" ||
    { echo "FAIL: the JSON log has lines that are not JSON in UTF-8:"; cat "$tmp/gen.log"; fails=$((fails + 1)); }
checks=$((checks + 1))
grep -q "generated an admin key; it is in $tmp/gen/admin.key" "$tmp/gen.log" && ! grep -qF "$genkey" "$tmp/gen.log" ||
    { echo "FAIL: the generated key's log lines:"; cat "$tmp/gen.log"; fails=$((fails + 1)); }

# ---- gexec top against a server's hostile /metrics: no crash, sane output ------
fport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
top_of() { # top_of FILE [ARGS]: gexec top --once against a server answering FILE
    local f=$1
    shift
    python3 "$(dirname "$0")/fake_server.py" "$fport" "$f" >"$tmp/fake.out" 2>&1 &
    local fpid=$!
    for _ in $(seq 100); do grep -q ready "$tmp/fake.out" 2>/dev/null && break; sleep 0.05; done
    GEXEC_SERVER=http://127.0.0.1:$fport run 0 "$@" top --once --interval 100ms
    kill "$fpid"
    wait "$fpid" 2>/dev/null
}
# tenant names that are not UTF-8 (and tie at 0 queued): shown, '?' for the bad bytes
printf 'gexec_queue_depth{tenant="a\xff"} 0\ngexec_queue_depth{tenant="b\xfe"} 0\n' >"$tmp/m1.txt"
top_of "$tmp/m1.txt" && expect "top: bad UTF-8 names" '^a\? +0 +0 ' "$(grep '^a' <<<"$out")"
top_of "$tmp/m1.txt" --json && expect "top --json: bad UTF-8 names" "^\['a\?', 'b\?'\]$" "$(json_get '[t["name"] for t in j["tenants"]]' <<<"$out")"
# numbers out of any range, and lines that are not samples
printf 'gexec_uptime_seconds 1e300\ngexec_queue_depth{tenant="a"} +Inf\ngexec_queue_depth{tenant="b} 3\nnot a sample\n{x="y"} 1\ngexec_device_jobs_running NaN\n' >"$tmp/m2.txt"
top_of "$tmp/m2.txt" && expect "top: inf and nan" '^a +0 +0 ' "$(grep '^a ' <<<"$out")" &&
    expect "top: uptime out of range" 'up 0m00s' "$out"
# more tenants than a screen: --json lists every one (the busiest was dropped past 256)
{ echo "gexec_uptime_seconds 10"; for i in $(seq -w 0 299); do echo "gexec_queue_depth{tenant=\"t$i\"} $([ "$i" = 299 ] && echo 1000 || echo 0)"; done; } >"$tmp/m3.txt"
top_of "$tmp/m3.txt" --json && expect "top --json: 300 tenants" '^300 1000$' "$(json_get 'len(j["tenants"]), [t["queued"] for t in j["tenants"] if t["name"]=="t299"][0]' <<<"$out")"
# on a terminal (script's, 80 x 24 when its size is unknown): one screen, no
# line wider than it (the summary scrolled away past 14 tenants), and two
# long names that differ at the end still differ
{ cat "$tmp/m3.txt"; for s in eu us; do echo "gexec_queue_depth{tenant=\"analytics-batch-pipeline-for-the-quarterly-report-$s\"} 5"; done; } >"$tmp/m4.txt"
python3 "$(dirname "$0")/fake_server.py" "$fport" "$tmp/m4.txt" >"$tmp/fake.out" 2>&1 &
fpid=$!
for _ in $(seq 100); do grep -q ready "$tmp/fake.out" 2>/dev/null && break; sleep 0.05; done
GEXEC_SERVER=http://127.0.0.1:$fport script -qec "stty rows 24 cols 80 2>/dev/null; $GEXEC top --once --interval 100ms" /dev/null </dev/null >"$tmp/top-tty.out" 2>&1
kill "$fpid"
wait "$fpid" 2>/dev/null
tr -d '\r' <"$tmp/top-tty.out" >"$tmp/top-tty.txt"
checks=$((checks + 1))
if [ "$(wc -l <"$tmp/top-tty.txt")" -gt 23 ] || awk 'length > 80 { bad = 1 } END { exit !bad }' "$tmp/top-tty.txt" ||
    ! grep -q '^jobs/s' "$tmp/top-tty.txt"; then
    echo "FAIL: gexec top on an 80 x 24 terminal:"; cat "$tmp/top-tty.txt"; fails=$((fails + 1))
fi
expect "top: a long name cut in the middle (eu)" '^analytics-batch-pipeli~the-quarterly-report-eu +5 ' "$(cat "$tmp/top-tty.txt")"
expect "top: a long name cut in the middle (us)" '^analytics-batch-pipeli~the-quarterly-report-us +5 ' "$(cat "$tmp/top-tty.txt")"
expect "top: the tenants left over" '^\.\.\. [0-9]+ more tenants' "$(cat "$tmp/top-tty.txt")"

# ---- what gexec makes of a server that misbehaves ------------------------------------
fake_up() { # fake_up MODE: the fake server in that mode; its pid in $fpid
    python3 "$(dirname "$0")/fake_server.py" "$fport" "$tmp/m1.txt" "$1" >"$tmp/fake.out" 2>&1 &
    fpid=$!
    for _ in $(seq 100); do grep -q ready "$tmp/fake.out" 2>/dev/null && break; sleep 0.05; done
}
fake_down() { kill "$fpid"; wait "$fpid" 2>/dev/null; }
# a poll that never gets an answer: wait --timeout still ends on time (it
# waited out the client's 60 s request timeout, and exited 6 for it)
fake_up hang
t0=$(date +%s)
GEXEC_SERVER=http://127.0.0.1:$fport run 6 wait 1 --timeout 1s
checks=$((checks + 1))
[ $(($(date +%s) - t0)) -le 10 ] || { echo "FAIL: wait --timeout 1s on a server that never answers took $(($(date +%s) - t0)) s"; fails=$((fails + 1)); }
fake_down
# a listing whose cursor never moves: an error, not pages for ever
fake_up stuckcursor
GEXEC_SERVER=http://127.0.0.1:$fport run 5 list --all && expect "list --all, a stuck cursor" 'same cursor' "$err"
GEXEC_SERVER=http://127.0.0.1:$fport run 5 list --all --json
GEXEC_SERVER=http://127.0.0.1:$fport run 5 keys list --all
fake_down
# valid JSON of the wrong shape: a server error (exit 5), never empty output and 0
fake_up array
for c in "result 1" "whoami" "devices" "kernels" "kernels saxpy" "kernels saxpy --json" "devices --json" "tenants list"; do
    # shellcheck disable=SC2086
    GEXEC_SERVER=http://127.0.0.1:$fport run 5 $c
done
fake_down

# ---- a graceful stop ends event streams cleanly; gexec events outlives it -------------
# The daemon sends the stream's end (curl exits 0; 18 was a cut). gexec
# events then connects again, as cli.md says, until the job it follows is
# final (it exited 0 at the stop with the job still queued), and a stream
# without a job goes on after a restart (from the reset: another run).
sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
surl=http://127.0.0.1:$sport
start_s() { # the second daemon, on the same port and data each time; its pid in $spid
    env -u GEXEC_SERVER -u GEXEC_CONFIG GEXEC_ADMIN_KEY="$GEXEC_API_KEY" GEXEC_LISTEN=127.0.0.1:$sport \
        GEXEC_DATA_DIR=$tmp/sdata "$GEXECD" >>"$tmp/gexecd-s.log" 2>&1 &
    spid=$!
    for _ in $(seq 200); do GEXEC_SERVER=$surl "$GEXEC" health >/dev/null 2>&1 && break; sleep 0.1; done
}
start_s
GEXEC_SERVER=$surl run 0 devices drain cpu # the job stays queued: nothing runs into the stop
GEXEC_SERVER=$surl run 0 submit -k spin -a us=60000000 && sj=$out
curl -sN -H "Authorization: Bearer $GEXEC_API_KEY" "$surl/v1/events" >"$tmp/scurl.out" 2>&1 &
cpid=$!
GEXEC_SERVER=$surl timeout 60 "$GEXEC" events "$sj" >"$tmp/sjob.out" 2>"$tmp/sjob.err" &
jpid=$!
GEXEC_SERVER=$surl timeout 60 "$GEXEC" events >"$tmp/sall.out" 2>"$tmp/sall.err" &
apid=$!
# and top, which waits for a daemon that went away (it exited at the first
# failed look: on a restart, the moment an operator watches)
GEXEC_SERVER=$surl timeout 60 "$GEXEC" top --interval 200ms >"$tmp/stop.out" 2>"$tmp/stop.err" &
tpid=$!
sleep 1
kill -TERM "$spid"
wait "$spid"
wait "$cpid"
crc=$?
checks=$((checks + 1))
if [ "$crc" -ne 0 ]; then
    echo "FAIL: the event stream across a graceful stop: curl exit $crc (want 0: the stream's end, not a cut)"
    fails=$((fails + 1))
fi
sleep 0.5
checks=$((checks + 1))
if ! kill -0 "$jpid" 2>/dev/null; then
    wait "$jpid"
    echo "FAIL: gexec events $sj ended at a graceful stop (exit $?), its job not final: $(cat "$tmp/sjob.out" "$tmp/sjob.err")"
    fails=$((fails + 1))
fi
sleep 1 # top meets the daemon gone
start_s
before=$(grep -c '^gexecd ' "$tmp/stop.out")
for _ in $(seq 50); do [ "$(grep -c '^gexecd ' "$tmp/stop.out")" -gt "$before" ] && break; sleep 0.1; done
checks=$((checks + 1))
if ! kill -0 "$tpid" 2>/dev/null || [ "$(grep -c '^gexecd ' "$tmp/stop.out")" -le "$before" ]; then
    echo "FAIL: gexec top across a restart: $(cat "$tmp/stop.err")"; fails=$((fails + 1))
fi
expect "top says it waits" 'retrying for 30 s' "$(cat "$tmp/stop.err")"
kill -TERM "$tpid" 2>/dev/null
wait "$tpid" 2>/dev/null
for _ in $(seq 100); do grep -q 'event stream reset' "$tmp/sall.err" && break; sleep 0.1; done
expect "gexec events: the reset after the restart" '^gexec: event stream reset \(other_run\)' "$(cat "$tmp/sall.err")"
GEXEC_SERVER=$surl run 0 submit -k spin -a us=1000 && sk=$out
GEXEC_SERVER=$surl run 0 devices undrain cpu
GEXEC_SERVER=$surl run 0 wait "$sk"
for _ in $(seq 50); do grep -q " $sk succeeded " "$tmp/sall.out" && break; sleep 0.1; done
expect "gexec events: a job of the restarted daemon" " $sk succeeded attempt=1" "$(cat "$tmp/sall.out")"
kill -TERM "$apid"
wait "$apid"
GEXEC_SERVER=$surl run 0 cancel "$sj"
wait "$jpid"
jrc=$?
checks=$((checks + 1))
if [ "$jrc" -ne 0 ]; then
    echo "FAIL: gexec events $sj across a restart: exit $jrc (want 0 once cancelled): $(cat "$tmp/sjob.err")"
    fails=$((fails + 1))
fi
expect "gexec events: followed to its end across a restart" " $sj cancelled " "$(tail -n 1 "$tmp/sjob.out")"
kill -TERM "$spid"
wait "$spid"

echo "$checks checks, $fails failed"
[ "$fails" -eq 0 ]
