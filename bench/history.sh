#!/usr/bin/env bash
# What keeping history costs one-to-one messages: chatload pairs against one
# node with history.enabled false ("off") and true ("on"), on Redis + MariaDB,
# and with the embedded default ("eoff", "eon": SQLite, in-process map). Two
# cells each: flat out, PAIRS pairs with window 32 for DURATION ("flat"), and a
# sustained RATE msg/s with SUS_PAIRS pairs for SUS_DURATION ("sustained").
# RUNS rounds, interleaved (round 1 of every setup, then round 2...), each on a
# fresh node, a fresh database (or SQLite file) and a fresh Redis key prefix.
#
# With history on, every SAMPLE seconds over the run the script reads the
# messages the node has taken in (chat_frames_in_total{flag="msg"} from
# /metrics) and the newest row of the history table (MAX(id) of app_message):
# the difference is what waits for the history writer (there is no gauge of
# the writer's queue). When chatload ends it reads both again, then waits up to
# 30 s for the writer to catch up, and counts the rows. All of it goes to
# OUT/<setup>-<cell>-<run>.queue.
#
# As bench/routing.sh does: before each run it waits until the 1-minute load
# average is at most LOAD_MAX (at most LOAD_WAIT seconds), and over the run it
# counts the CPU the machine was busy and what of it was ours (the node,
# chatload, Redis, MariaDB); the rest is other work sharing the cores. A run
# that started above LOAD_MAX or where other work used more than OTHER_MAX
# CPU-seconds is run again, up to RETRIES times. bench/history_summary.py
# prints the median (min-max) table. Loopback only.
#
#   bench/history.sh [OUT] [RUNS]        e.g. bench/history.sh /tmp/chat-history 3
#   SETUPS="off on" CELLS=flat bench/history.sh /tmp/h 1
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/chat-history}
runs=${2:-3}
setups=${SETUPS:-off on eoff eon}
cells=${CELLS:-flat sustained}
pairs=${PAIRS:-400}
duration=${DURATION:-10s}
sus_pairs=${SUS_PAIRS:-3000}
rate=${RATE:-20000}
sus_duration=${SUS_DURATION:-60s}
sample=${SAMPLE:-5}
load_max=${LOAD_MAX:-1.5}
load_wait=${LOAD_WAIT:-300}
other_max=${OTHER_MAX:-1}
retries=${RETRIES:-2}
ws_port=${WS_PORT:-9250}
api_port=${API_PORT:-9350}
redis=${REDIS_ADDR:-127.0.0.1:6379}
mysql=${MYSQL_ADDR:-127.0.0.1:3306}
run_id=$$$RANDOM
db=bench_history_$run_id
export CHAT_LIMITS_FRAMES_PER_SECOND=0 CHAT_LIMITS_CONNECTIONS_PER_IP=0
CHAT_API_SECRET=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export CHAT_API_SECRET
mkdir -p "$out/bin"
go build -o "$out/bin/chatserver" .
go build -o "$out/bin/chatload" ./cmd/chatload
ulimit -n 20000

sql() { mariadb -h"${mysql%:*}" -P"${mysql#*:}" -uroot -N -e "$1"; }
rcli() { redis-cli -h "${redis%:*}" -p "${redis#*:}" "$@"; }
pid=
prefix=
sampler=

del_keys() {
	rcli --scan --pattern "$1*" | xargs -r -n 500 redis-cli -h "${redis%:*}" -p "${redis#*:}" del >/dev/null
	rcli --scan --pattern "$1*" | wc -l
}
stop_node() {
	[ -z "$sampler" ] || { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; sampler=; }
	[ -z "$pid" ] || { kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; }
}
cleanup() {
	stop_node
	sql "DROP DATABASE IF EXISTS $db" || true
	[ -z "$prefix" ] || del_keys "$prefix" >/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_node EMBEDDED HISTORY: one node on a fresh store; sets pid.
start_node() {
	local embedded=$1 hist=$2 env=()
	rm -rf "${out:?}/node" && mkdir -p "$out/node"
	if [ "$embedded" = 1 ]; then
		env=(CHAT_EMBEDDED_PATH="$out/node/chat.db")
	else
		sql "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
		env=(CHAT_REDIS_ADDR="$redis" CHAT_REDIS_KEY_PREFIX="$prefix" CHAT_MYSQL_DSN="root@tcp($mysql)/$db"
			CHAT_OFFLINE_SPOOL_PATH="$out/node/spool.db")
	fi
	env "${env[@]}" CHAT_HISTORY_ENABLED="$hist" CHAT_SERVER_ADDR=127.0.0.1:$ws_port CHAT_API_ADDR=127.0.0.1:$api_port \
		CHAT_LOG_LEVEL=warn "$out/bin/chatserver" >"$out/node/node.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		curl -sf -o /dev/null -H "Authorization: Bearer $CHAT_API_SECRET" "http://127.0.0.1:$api_port/readyz" && return 0
		sleep 0.1
	done
	echo "node did not become ready; see $out/node/node.log" >&2
	return 1
}

# taken_in: messages the node has taken in; rows EMBEDDED: newest history row.
taken_in() {
	curl -sf -H "Authorization: Bearer $CHAT_API_SECRET" "http://127.0.0.1:$api_port/metrics" |
		awk '/^chat_frames_in_total\{flag="msg"\}/ { n = $2 } END { printf "%d", n }'
}
rows() {
	if [ "$1" = 1 ]; then
		sqlite3 -cmd '.timeout 2000' "$out/node/chat.db" 'SELECT COALESCE(MAX(id), 0) FROM app_message' 2>/dev/null || echo -1
	else
		sql "SELECT COALESCE(MAX(id), 0) FROM $db.app_message" 2>/dev/null || echo -1
	fi
}
count_rows() {
	if [ "$1" = 1 ]; then
		sqlite3 -cmd '.timeout 5000' "$out/node/chat.db" 'SELECT COUNT(*) FROM app_message'
	else
		sql "SELECT COUNT(*) FROM $db.app_message"
	fi
}

mariadb_pid=$(pidof mariadbd mysqld || true)
loadavg() { cut -d' ' -f1 /proc/loadavg; }
above() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
redis_cpu() { rcli info cpu | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.2f", s }'; }
machine_cpu() { awk '/^cpu / { printf "%.2f %.2f", ($2 + $3 + $4 + $7 + $8) / 100, $9 / 100 }' /proc/stat; }
proc_cpu() {
	local p s=0
	for p in "$@"; do
		s=$((s + $( (awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0) | tail -1)))
	done
	awk -v s="$s" 'BEGIN { printf "%.2f", s / 100 }'
}
wait_load() {
	local t=0 l
	l=$(loadavg)
	while above "$l" "$load_max" && [ "$t" -lt "$load_wait" ]; do
		sleep 5
		t=$((t + 5))
		l=$(loadavg)
	done
	echo "$l"
}

# once SETUP CELL RUN; 0 if it started at most at load_max and other work
# stayed under other_max.
once() {
	local setup=$1 cell=$2 n=$3 embedded=0 hist=false l0 rc=0 args
	case $setup in
	off) ;;
	on) hist=true ;;
	eoff) embedded=1 ;;
	eon) embedded=1 hist=true ;;
	*) echo "unknown setup $setup (off, on, eoff, eon)" >&2; exit 1 ;;
	esac
	case $cell in
	flat) args=(-pairs "$pairs" -window 32 -duration "$duration") ;;
	sustained) args=(-pairs "$sus_pairs" -rate "$rate" -duration "$sus_duration") ;;
	*) echo "unknown cell $cell (flat, sustained)" >&2; exit 1 ;;
	esac
	prefix="bench${run_id}h:"
	l0=$(wait_load)
	start_node "$embedded" "$hist" || exit 1
	local base="$out/$setup-$cell-$n"
	echo "== $setup $cell run $n: history $hist, load average $l0" >&2
	: >"$base.queue"
	if [ "$hist" = true ]; then
		(
			t0=$(date +%s)
			while sleep "$sample"; do echo "t=$(($(date +%s) - t0)) in=$(taken_in) rows=$(rows "$embedded")"; done
		) >>"$base.queue" &
		sampler=$!
	fi
	local m0 m1 n0 n1 d0 d1 r0 r1 ct
	# shellcheck disable=SC2086
	m0=$(machine_cpu) n0=$(proc_cpu "$pid") d0=$(proc_cpu $mariadb_pid) r0=$(redis_cpu)
	/usr/bin/time -o "$base.time" -f '%U %S' \
		"$out/bin/chatload" pairs "${args[@]}" -addr "127.0.0.1:$ws_port" -pid "$pid" -json \
		>"$base.json" 2>"$base.err" || rc=$?
	# shellcheck disable=SC2086
	m1=$(machine_cpu) n1=$(proc_cpu "$pid") d1=$(proc_cpu $mariadb_pid) r1=$(redis_cpu)
	ct=$(tail -1 "$base.time" | awk '{ printf "%.2f", $1 + $2 }')
	if [ "$hist" = true ]; then
		kill "$sampler" 2>/dev/null || true
		wait "$sampler" 2>/dev/null || true
		sampler=
		local in r t=0
		in=$(taken_in) r=$(rows "$embedded")
		echo "end in=$in rows=$r" >>"$base.queue"
		while [ "$r" -lt "$in" ] && [ "$t" -lt 300 ]; do
			sleep 0.1
			t=$((t + 1))
			r=$(rows "$embedded")
		done
		echo "caught_up_after_s=$(awk -v t="$t" 'BEGIN { printf "%.1f", t / 10 }') count=$(count_rows "$embedded") dropped_logged=$(grep -c 'history queue full' "$out/node/node.log" || true)" >>"$base.queue"
	fi
	stop_node
	cp "$out/node/node.log" "$base.node.log"
	[ "$embedded" = 1 ] || sql "DROP DATABASE IF EXISTS $db"
	awk -v m0="$m0" -v m1="$m1" -v n="$n0 $n1" -v d="$d0 $d1" -v r="$r0 $r1" -v c="$ct" -v l0="$l0" -v l1="$(loadavg)" \
		-v head="setup=$setup cell=$cell run=$n" -v tail="chatload_rc=$rc keys_left=$(del_keys "$prefix")" 'BEGIN {
		split(m0, a, " "); split(m1, b, " "); split(n, nn, " "); split(d, dd, " "); split(r, rr, " ")
		busy = b[1] - a[1]; node = nn[2] - nn[1]; db = dd[2] - dd[1]; redis = rr[2] - rr[1]
		printf "%s load_start=%s load_end=%s machine_busy_s=%.2f steal_s=%.2f nodes_cpu_s=%.2f chatload_cpu_s=%.2f redis_cpu_s=%.2f mariadb_cpu_s=%.2f other_cpu_s=%.2f %s\n",
			head, l0, l1, busy, b[2] - a[2], node, c, redis, db, busy - node - c - redis - db, tail
	}' >"$base.meta"
	cat "$base.meta" "$base.queue" >&2
	[ "$rc" = 0 ] || echo "chatload exit status $rc: see $base.err and $base.json" >&2
	sleep 2
	! above "$l0" "$load_max" && ! above "$(sed 's/.*other_cpu_s=\([^ ]*\).*/\1/' "$base.meta")" "$other_max"
}

for n in $(seq "$runs"); do
	for setup in $setups; do
		for cell in $cells; do
			for attempt in $(seq 0 "$retries"); do
				if once "$setup" "$cell" "$n"; then break; fi
				echo "started above load average $load_max, or other work used more than $other_max CPU-s: run again ($attempt of $retries)" >&2
			done
		done
	done
done
python3 bench/history_summary.py "$out"
