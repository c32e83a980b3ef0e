#!/usr/bin/env bash
# bench/handover.sh OUT: moves CONNS connections from one chatserver process to
# a new one on the same port (README "Upgrades") while PAIRS of them chat, and
# reports what chatload's handover scenario measures: the close and reconnect
# rates, how long the move takes, and acknowledged messages lost (must be 0).
#
#   bench/handover.sh /tmp/chat-handover                  # 19,000 connections, 1,000 pairs at 2,000 msg/s
#   CONNS=2000 PAIRS=200 bench/handover.sh /tmp/ho-small  # a small check
#   SIGNAL=TERM bench/handover.sh /tmp/chat-restart      # for comparison: SIGTERM, every connection at once
#
# Settings (environment): CONNS (19000), PAIRS (1000), RATE (2000 msg/s for all
# pairs), HANDOVER_RATE (server.handover_rate, 2000), SHUTDOWN_TIMEOUT (30s),
# BEFORE/AFTER (5s: chatting before SIGUSR2 and once all are back), PORT
# (9252; the side API on PORT+1), SIGNAL (USR2), PPROF (set: the new process's
# CPU profile over the handover in OUT/new.cpu.pprof, pprof on PORT+2). The embedded store by default; with
# MYSQL_DSN and REDIS_ADDR set, MySQL and Redis (the Redis keys under a
# random prefix).
set -euo pipefail
OUT=${1:?usage: bench/handover.sh OUT}
CONNS=${CONNS:-19000}
PAIRS=${PAIRS:-1000}
RATE=${RATE:-2000}
HANDOVER_RATE=${HANDOVER_RATE:-2000}
SHUTDOWN_TIMEOUT=${SHUTDOWN_TIMEOUT:-30s}
BEFORE=${BEFORE:-5s}
SIGNAL=${SIGNAL:-USR2}
AFTER=${AFTER:-5s}
PORT=${PORT:-9252}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

mkdir -p "$OUT/bin" "$OUT/data"
rm -f "$OUT"/data/*
(cd "$ROOT" && go build -o "$OUT/bin/chatserver" . && go build -o "$OUT/bin/chatload" ./cmd/chatload)
ulimit -n 20000

export CHAT_SERVER_ADDR=127.0.0.1:$PORT CHAT_API_ADDR=127.0.0.1:$((PORT + 1)) CHAT_API_SECRET=bench-handover \
  CHAT_SERVER_HANDOVER_RATE=$HANDOVER_RATE CHAT_SERVER_SHUTDOWN_TIMEOUT=$SHUTDOWN_TIMEOUT \
  CHAT_LIMITS_CONNECTIONS_PER_IP=0 CHAT_LOG_LEVEL=info CHAT_NODE=bench-handover
if [[ -n ${MYSQL_DSN:-} && -n ${REDIS_ADDR:-} ]]; then
  export CHAT_MYSQL_DSN=$MYSQL_DSN CHAT_REDIS_ADDR=$REDIS_ADDR CHAT_REDIS_KEY_PREFIX="bench$RANDOM:" \
    CHAT_OFFLINE_SPOOL_PATH=$OUT/data/spool.db
  store=mysql
else
  export CHAT_EMBEDDED_PATH=$OUT/data/chat.db
  store=embedded
fi
: > "$OUT/empty.yaml"

# start NAME [VAR=value...]: runs a chatserver, waits for its "listening" line,
# prints its PID.
start() {
  env "${@:2}" "$OUT/bin/chatserver" -config "$OUT/empty.yaml" >"$OUT/$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    grep -q '"message":"chat server listening"' "$OUT/$1.log" && { echo "$pid"; return; }
    kill -0 "$pid" 2>/dev/null || { echo "$1 did not start:" >&2; cat "$OUT/$1.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$1 did not start in 10 s" >&2
  exit 1
}

old=$(start old)
echo "old process $old ($store store) on $CHAT_SERVER_ADDR" >&2
# The new process starts once the clients are connected to the old one: the
# kernel would otherwise spread them over both.
(
  sleep 1
  while ! grep -q 'handover: chatting' "$OUT/chatload.log" 2>/dev/null; do sleep 0.2; done
  new=$(start new ${PPROF:+CHAT_DEBUG_PPROF_ADDR=127.0.0.1:$((PORT + 2))})
  echo "$new" >"$OUT/new.pid"
  echo "new process $new beside it" >&2
  if [[ -n ${PPROF:-} ]]; then # the new process's CPU profile over the handover
    while ! grep -q 'SIGUSR2 sent' "$OUT/chatload.log"; do sleep 0.1; done
    curl -s -o "$OUT/new.cpu.pprof" "http://127.0.0.1:$((PORT + 2))/debug/pprof/profile?seconds=10"
  fi
) &
starter=$!
status=0
"$OUT/bin/chatload" handover -addr "$CHAT_SERVER_ADDR" -conns "$CONNS" -pairs "$PAIRS" -rate "$RATE" \
  -handover-pid "$old" -handover-signal "$SIGNAL" -before "$BEFORE" -after "$AFTER" -json >"$OUT/result.json" 2>"$OUT/chatload.log" || status=$?
wait "$starter" || true
while kill -0 "$old" 2>/dev/null; do sleep 0.1; done # not our child: started in $(...)
if [[ -f $OUT/new.pid ]]; then
  new=$(cat "$OUT/new.pid")
  kill -TERM "$new" 2>/dev/null || true
  while kill -0 "$new" 2>/dev/null; do sleep 0.1; done
fi
tail -n 3 "$OUT/chatload.log" >&2
grep -E '"message":"(handing over|handover: connections closed|handed over)' "$OUT/old.log" >&2 || true
cat "$OUT/result.json"
exit "$status"
