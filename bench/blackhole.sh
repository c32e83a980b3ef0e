#!/usr/bin/env bash
# Pings and live one-to-one messages while MySQL is black-holed (connections
# open, nothing answered), against the same load without the fault. Our server
# runs on Redis + MariaDB with its MySQL DSN through cmd/faultproxy; chatload
# pairs runs twice: once with the proxy passing, once with -fault-pid, so
# that the proxy black-holes MySQL exactly while the messages are sent. During
# the black-holed run, FRESH new connections send init (their backlog reads
# hang until offline.query_timeout). docs/benchmarks.md, "MySQL black-holed".
#
#   bench/blackhole.sh [OUT]     PAIRS=500 RATE=2000 DURATION=10s PINGS=50 FRESH=12
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/chat-blackhole}
pairs=${PAIRS:-500}
rate=${RATE:-2000}
duration=${DURATION:-10s}
pings=${PINGS:-50}
fresh=${FRESH:-12}
mysql=${MYSQL_ADDR:-127.0.0.1:3306}
proxy_addr=127.0.0.1:${PROXY_PORT:-3317}
addr=127.0.0.1:${PORT:-9057}
mkdir -p "$out/bin"
export CHAT_LIMITS_FRAMES_PER_SECOND=0 CHAT_LIMITS_CONNECTIONS_PER_IP=0
go build -o "$out/bin/chatserver" .
go build -o "$out/bin/chatload" ./cmd/chatload
go build -o "$out/bin/faultproxy" ./cmd/faultproxy
ulimit -n "$(ulimit -Hn)"

mariadb -h"${mysql%:*}" -P"${mysql#*:}" -uroot -e "DROP DATABASE IF EXISTS bench_bh; CREATE DATABASE bench_bh"
"$out/bin/faultproxy" -listen "$proxy_addr" -target "$mysql" 2>"$out/faultproxy.log" &
proxy=$!
rm -f "$out/spool.db"
CHAT_SERVER_ADDR=$addr CHAT_REDIS_ADDR=127.0.0.1:6379 CHAT_REDIS_KEY_PREFIX="benchbh$RANDOM:" \
	CHAT_MYSQL_DSN="root@tcp($proxy_addr)/bench_bh" CHAT_OFFLINE_SPOOL_PATH="$out/spool.db" \
	CHAT_DEBUG_PPROF_ADDR=${PPROF_ADDR:-127.0.0.1:9058} CHAT_LOG_LEVEL=warn \
	"$out/bin/chatserver" >"$out/server.log" 2>&1 &
server=$!
trap 'kill -INT $server 2>/dev/null; wait $server 2>/dev/null; kill $proxy 2>/dev/null; wait $proxy 2>/dev/null' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null && break; sleep 0.1; done

load=(pairs -addr "$addr" -pid "$server" -pairs "$pairs" -rate "$rate" -duration "$duration" -ping-conns "$pings" -ping-every 200ms)
echo "== MySQL passing" >&2
"$out/bin/chatload" "${load[@]}" >"$out/pass.txt" 2>"$out/pass.err" || true
sleep 2
echo "== MySQL black-holed while sending" >&2
"$out/bin/chatload" "${load[@]}" -fault-pid "$proxy" >"$out/blackhole.txt" 2>"$out/blackhole.err" &
load_pid=$!
until grep -q blackhole "$out/faultproxy.log"; do sleep 0.1; done
sleep 1
# Fresh connections init while the fault is on: their pong comes after the
# backlog read gives up (offline.query_timeout), with an "unavailable" error.
"$out/bin/chatload" idle -addr "$addr" -conns "$fresh" -src-ips off >"$out/fresh.txt" 2>"$out/fresh.err" || true
wait "$load_pid" || true
cat "$out/faultproxy.log"
for f in pass blackhole fresh; do
	echo "== $f"
	cat "$out/$f.txt"
done
