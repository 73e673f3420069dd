#!/usr/bin/env bash
# CPU instructions per cached GET /api/token, counted by callgrind: repeatable where req/s is not.
#   bench/instructions.sh          (needs valgrind and wrk; about three minutes)
# Three servers on the same Granian set-up: the bare floor, the floor that also reads the request
# (path, method, query string, Cookie header) as any correct token server must, and the service's
# own app with a warm cache (bench/fastpath.py --serve, no browser). Each is traced only while wrk
# sends a fixed load, after a warm-up, so start-up is not counted.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=.venv/bin/python
BODY=$(mktemp)
OUT=$(mktemp -d)
SERVER=""
trap '[[ -n "$SERVER" ]] && kill "$SERVER" 2>/dev/null; rm -rf "$BODY" "$OUT"' EXIT
printf '%s' '{"success":true,"accessToken":"BQ-bench","accessTokenExpirationTimestampMs":1795619526318,"clientId":"client","isAnonymous":true,"cached":true,"timestamp":1795615926320}' >"$BODY"

count() {  # count NAME PORT COMMAND...
    local name=$1 port=$2
    shift 2
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/$name.%p" "$@" \
        >/dev/null 2>"$OUT/$name.log" &
    local pid=$!
    SERVER=$pid
    for _ in $(seq 1 120); do
        curl -s -o /dev/null "http://127.0.0.1:$port/api/token" && break
        sleep 1
    done
    wrk -t1 -c8 -d3s "http://127.0.0.1:$port/api/token" >/dev/null
    callgrind_control -i on "$pid" >/dev/null 2>&1
    local requests
    requests=$(wrk -t1 -c8 -d8s "http://127.0.0.1:$port/api/token" | grep -oE '[0-9]+ requests in' | cut -d' ' -f1)
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    SERVER=""
    local total
    callgrind_annotate "$OUT/$name".*.1 >"$OUT/$name.txt"
    total=$(grep 'PROGRAM TOTALS' "$OUT/$name.txt" | grep -oE '^[0-9,]+' | tr -d ,)
    printf '| %s | %s | %s |\n' "$name" "$requests" "$((total / requests))"
}

echo "| server | requests traced | instructions per request |"
echo "| --- | ---: | ---: |"
count floor 8701 "$PYTHON" bench/floor.py --port 8701 --body "$BODY"
count floor-reads 8702 "$PYTHON" bench/floor.py --port 8702 --body "$BODY" --reads
count service 8703 "$PYTHON" bench/fastpath.py --serve 8703
