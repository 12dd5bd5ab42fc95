#!/usr/bin/env bash
# Instructions per service invocation through two runtimes (the caller's
# and the callee's together), counted by callgrind (stable on a noisy
# machine, unlike wall clock). nginx is the app (a 1 KB answer); N
# keep-alive POSTs of 1 KB through the caller, for N = 200 and N = 1000;
# prints (total(1000) - total(200)) / 800 for each runtime and both.
#   scripts/callgrind-invoke.sh [path/to/mecha]   (default: the release build)
# Needs valgrind and nginx (Debian: apt-get install valgrind nginx-light).
set -euo pipefail
BIN=${1:-target/release/mecha}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
here=$(dirname "$0")
# shellcheck source=scripts/nginx-app.sh
source "$here/nginx-app.sh"
APP=36200
start_nginx "$WORK" "$APP"
PIDS+=("$(cat "$WORK/nginx.pid.outer")")
value=$(printf '"%s"' "$(head -c 1022 /dev/zero | tr '\0' b)")

# Prints the instructions of the caller and of the callee for n calls.
totals() {
  local n=$1 dir="$WORK/run.$1"
  mkdir -p "$dir"
  local -a pids=()
  for role in callee caller; do
    local port=36210
    local -a extra=()
    [ "$role" = callee ] && port=36220 && extra=(--app-port "$APP")
    port_free $port
    valgrind --tool=callgrind --callgrind-out-file="$dir/$role.cg" "$BIN" sidecar \
      --app-id "cg-$role" --dapr-http-port $port --dapr-grpc-port $((port + 1)) \
      --dapr-internal-grpc-port $((port + 2)) --metrics-port $((port + 3)) \
      --dapr-listen-addresses 127.0.0.1 --data-dir "$dir/data" --log-level error \
      "${extra[@]}" >"$dir/$role.log" 2>&1 &
    pids+=($!)
    wait_healthy $port $! "$dir/$role.log"
  done
  curl -sf -X POST -H 'content-type: application/json' -d "$value" \
    "http://127.0.0.1:36210/v1.0/invoke/cg-callee/method/echo?x=[1-$n]" >/dev/null
  for pid in "${pids[@]}"; do kill -TERM "$pid"; done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  echo "$(awk '/^summary:/ {print $2}' "$dir/caller.cg") $(awk '/^summary:/ {print $2}' "$dir/callee.cg")"
}
read -r small_caller small_callee < <(totals 200)
read -r large_caller large_callee < <(totals 1000)
caller=$(( (large_caller - small_caller) / 800 ))
callee=$(( (large_callee - small_callee) / 800 ))
echo "instructions per call: caller $caller, callee $callee, both $(( caller + callee ))"
