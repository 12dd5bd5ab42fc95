#!/usr/bin/env bash
# Instructions per HTTP state get+save pair, counted by callgrind (stable on
# a noisy machine, unlike wall clock). Runs the sidecar under valgrind on one
# state.in-memory store, N keep-alive GETs of a 1 KB value and N saves, for
# N = 500 and N = 2500, and prints (total(2500) - total(500)) / 2000.
#   scripts/callgrind-state.sh [path/to/mecha]   (default: the bench-release build)
set -euo pipefail
BIN=${1:-target/bench-release/mecha}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/res"
cat > "$WORK/res/mem.yaml" <<'YAML'
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: mem
spec:
  type: state.in-memory
  version: v1
YAML
PORT=35901
total() {
  local n=$1 out="$WORK/cg.$1"
  mkdir -p "$WORK/data.$n"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" sidecar --app-id cg \
    --dapr-http-port $PORT --dapr-grpc-port $((PORT + 1)) --resources-path "$WORK/res" \
    --data-dir "$WORK/data.$n" --log-level error >"$out.log" 2>&1 &
  local pid=$!
  until [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$PORT/v1.0/healthz)" = 204 ]; do
    kill -0 $pid 2>/dev/null || { cat "$out.log" >&2; exit 1; }
    sleep 0.2
  done
  local value
  value=$(head -c 1024 /dev/zero | tr '\0' a)
  curl -sf -X POST -H 'content-type: application/json' \
    -d "[{\"key\":\"k\",\"value\":\"$value\"}]" http://127.0.0.1:$PORT/v1.0/state/mem >/dev/null
  curl -sf "http://127.0.0.1:$PORT/v1.0/state/mem/k?x=[1-$n]" >/dev/null
  curl -sf -X POST -H 'content-type: application/json' -d '[{"key":"k2","value":"v"}]' \
    "http://127.0.0.1:$PORT/v1.0/state/mem?x=[1-$n]" >/dev/null
  kill -TERM $pid
  wait $pid || true
  awk '/^summary:/ {print $2}' "$out"
}
small=$(total 500)
large=$(total 2500)
echo "instructions per get+save pair: $(( (large - small) / 2000 ))"
