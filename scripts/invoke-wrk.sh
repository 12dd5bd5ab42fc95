#!/usr/bin/env bash
# Service invocation through two runtimes against calling the app directly,
# with wrk and nginx as the app (issue 13's acceptance): a 1 KB POST and a
# 1 KB answer; latency with one connection (closed loop), throughput with
# 16. Each figure is the median of RUNS runs, direct and through the
# runtimes interleaved, and beside them the same through two nginx
# reverse proxies (keep-alive both ways; the same three loopback hops as
# through the runtimes): the cost of two proxy hops at its cheapest.
#   scripts/invoke-wrk.sh [path/to/mecha] [RUNS] [SECONDS]
# Defaults: the README's build (target/release/mecha), 3 runs, 5 s.
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light).
# WRK_CPUS and MECHA_CPUS (taskset lists, e.g. 1 and 0) pin wrk apart from
# nginx and the runtimes; unset, everything shares every core.
# KEEP=1 keeps the work directory (the runtimes' logs, wrk's output).
set -euo pipefail
BIN=${1:-target/release/mecha}
RUNS=${2:-3}
SECONDS_EACH=${3:-5}
WORK=$(mktemp -d)
PIDS=() PROXIES=()
cleanup() {
  for pid in "${PIDS[@]}" "${PROXIES[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
here=$(dirname "$0")
# shellcheck source=scripts/nginx-app.sh
source "$here/nginx-app.sh"

# Commands pinned to a CPU list (taskset execs them: the pid is theirs).
MECHA_CPUS=${MECHA_CPUS:-} WRK_CPUS=${WRK_CPUS:-}
ON_MECHA_CPUS=() ON_WRK_CPUS=()
[ -n "$MECHA_CPUS" ] && ON_MECHA_CPUS=(taskset -c "$MECHA_CPUS")
[ -n "$WRK_CPUS" ] && ON_WRK_CPUS=(taskset -c "$WRK_CPUS")

# Below the ephemeral range (32768 and up), where an outgoing connection
# may hold a port.
APP=26100 CALLER=26110 CALLEE=26120 PROXY_CALLEE=26130 PROXY_CALLER=26131
NGINX=("${ON_MECHA_CPUS[@]}" nginx)
start_nginx "$WORK" "$APP"
PIDS+=("$(cat "$WORK/nginx.pid.outer")")
runtime() {
  local name=$1 port=$2
  shift 2
  port_free "$port"
  "${ON_MECHA_CPUS[@]}" "$BIN" sidecar --app-id "$name" --dapr-http-port "$port" \
    --dapr-grpc-port $((port + 1)) --dapr-internal-grpc-port $((port + 2)) \
    --metrics-port $((port + 3)) --dapr-listen-addresses 127.0.0.1 \
    --data-dir "$WORK/data" --log-level warn "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  wait_healthy "$port" $! "$WORK/$name.log"
}
runtime nginx-app "$CALLEE" --app-port "$APP"
runtime caller "$CALLER"
start_nginx_proxy "$WORK" "$PROXY_CALLEE" "$APP"
PROXIES+=("$(cat "$WORK/proxy.$PROXY_CALLEE.pid.outer")")
start_nginx_proxy "$WORK" "$PROXY_CALLER" "$PROXY_CALLEE"
PROXIES+=("$(cat "$WORK/proxy.$PROXY_CALLER.pid.outer")")

cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '"$(head -c 1022 /dev/zero | tr '\0' b)"'
wrk.headers["Content-Type"] = "application/json"
LUA
DIRECT="http://127.0.0.1:$APP/echo"
VIA="http://127.0.0.1:$CALLER/v1.0/invoke/nginx-app/method/echo"
PROXIED="http://127.0.0.1:$PROXY_CALLER/echo"
curl -sf -X POST -d '{}' "$VIA" >/dev/null

# A wrk latency figure in µs.
micros() {
  awk -v want="$1" '$1 == want {
    v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
    if (u == "us") print v; else if (u == "ms") print v * 1000; else if (u == "s") print v * 1000000
  }'
}
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# Appends each runtime's RSS (kB) to $WORK/rss.<pid> every 100 ms until
# killed: the peak under load (VmHWM would include start-up).
sample_rss() {
  while true; do
    for pid in "${PIDS[@]:1}"; do
      awk '/^VmRSS/ {print $2}' /proc/"$pid"/status >>"$WORK/rss.$pid" 2>/dev/null || true
    done
    sleep 0.1
  done
}

for i in $(seq "$RUNS"); do
  for path in direct via nginx; do
    url=$DIRECT
    [ "$path" = via ] && url=$VIA
    [ "$path" = nginx ] && url=$PROXIED
    "${ON_WRK_CPUS[@]}" wrk -t1 -c1 -d"${SECONDS_EACH}s" --latency -s "$WORK/post.lua" "$url" >"$WORK/lat.$path.$i"
    sampler=
    if [ "$path" = via ]; then
      sample_rss &
      sampler=$!
    fi
    "${ON_WRK_CPUS[@]}" wrk -t2 -c16 -d"${SECONDS_EACH}s" -s "$WORK/post.lua" "$url" >"$WORK/tput.$path.$i"
    [ -z "$sampler" ] || kill "$sampler"
    grep -q "Non-2xx" "$WORK/lat.$path.$i" "$WORK/tput.$path.$i" && {
      echo "$path: answers that are not 2xx" >&2
      exit 1
    }
  done
done

for path in direct via nginx; do
  p50=$(cat "$WORK"/lat."$path".* | micros 50% | median)
  p99=$(cat "$WORK"/lat."$path".* | micros 99% | median)
  rps=$(cat "$WORK"/tput."$path".* | awk '/^Requests\/sec/ {print $2}' | median)
  printf '%s p50_us=%s p99_us=%s rps_16=%s\n' "$path" "$p50" "$p99" "$rps"
  eval "${path}_p50=$p50 ${path}_p99=$p99 ${path}_rps=$rps"
done
# shellcheck disable=SC2154
awk -v a="$direct_p50" -v b="$via_p50" -v c="$direct_p99" -v d="$via_p99" \
  -v e="$direct_rps" -v f="$via_rps" 'BEGIN {
    printf "added p50 %.0f us, added p99 %.0f us, throughput %.1f %% of direct\n", b - a, d - c, 100 * f / e
  }'
# shellcheck disable=SC2154
awk -v a="$direct_p50" -v b="$nginx_p50" -v c="$direct_p99" -v d="$nginx_p99" \
  -v e="$direct_rps" -v f="$nginx_rps" -v g="$via_rps" 'BEGIN {
    printf "two nginx hops: added p50 %.0f us, added p99 %.0f us, throughput %.1f %% of direct; through the runtimes: %.0f %% of their throughput\n", b - a, d - c, 100 * f / e, 100 * g / f
  }'
for pid in "${PIDS[@]:1}"; do
  printf 'runtime %s: RSS %s kB after the runs, peak under 16 connections %s kB (sampled every 100 ms)\n' "$pid" \
    "$(awk '/^VmRSS/ {print $2}' /proc/"$pid"/status)" "$(sort -n "$WORK/rss.$pid" | tail -1)"
done
