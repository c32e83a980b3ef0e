#!/usr/bin/env bash
# What the cluster routing costs one-to-one messages: chatload pairs against
# "off" (one node, cluster.enabled false), "on" (one node, cluster.enabled true:
# every recipient is local, found through the node's local view) and "three"
# (three nodes, cluster on; chatload -addr lists them and each account picks one
# by a hash of its name, so about two thirds of the pairs cross nodes through
# the recipients' node inboxes, Redis Streams, with an answer back). Each setup
# runs three cells: flat out with window 1 ("w1") and window 32 ("w32") with
# PAIRS pairs, and a fixed RATE with FIXED_PAIRS pairs ("fixed") for latency.
# RUNS rounds of every cell, interleaved (round 1 of every setup, then round
# 2...), each with fresh nodes, a fresh database and a fresh Redis key prefix.
#
# Before each run the script waits until the 1-minute load average is at most
# LOAD_MAX (other work may share the machine, and the previous run's own load
# decays), at most LOAD_WAIT seconds. Over the run it counts the CPU the whole
# machine was busy (/proc/stat) and what of it was ours: the nodes, chatload
# and its workers, Redis (INFO cpu: every client of that Redis) and MariaDB;
# the rest is other work that shared the cores. A run that started above
# LOAD_MAX, or where other work used more than OTHER_MAX CPU-seconds, is run
# again, up to RETRIES times. These figures and chatload's exit status go to
# OUT/<setup>-<cell>-<run>.meta; chatload's -json result to
# OUT/<setup>-<cell>-<run>.json. bench/routing_summary.py prints the
# median (min-max) table and the (on)/(off) ratios. Loopback only; needs Redis
# and MariaDB on 127.0.0.1. The database and the Redis keys are removed at the
# end, whatever happened.
#
#   bench/routing.sh [OUT] [RUNS]        e.g. bench/routing.sh /tmp/chat-routing 3
#   SETUPS="off on" CELLS=w1 bench/routing.sh /tmp/r 1
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/chat-routing}
runs=${2:-3}
setups=${SETUPS:-off on three}
cells=${CELLS:-w1 w32 fixed}
pairs=${PAIRS:-400}
fixed_pairs=${FIXED_PAIRS:-3000}
rate=${RATE:-10000}
duration=${DURATION:-10s}
load_max=${LOAD_MAX:-1.5}
load_wait=${LOAD_WAIT:-300}
other_max=${OTHER_MAX:-1}
retries=${RETRIES:-2}
ws_base=${WS_PORT_BASE:-9240} # node i listens on ws_base+i and api_base+i
api_base=${API_PORT_BASE:-9340}
redis=${REDIS_ADDR:-127.0.0.1:6379}
mysql=${MYSQL_ADDR:-127.0.0.1:3306}
run_id=$$$RANDOM
db=bench_routing_$run_id
# Many connections from one address at machine speed: lift the per-IP and
# per-connection limits, as bench/compare.sh does. The side API is only there
# for /readyz.
export CHAT_LIMITS_FRAMES_PER_SECOND=0 CHAT_LIMITS_CONNECTIONS_PER_IP=0
CHAT_API_SECRET=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export CHAT_API_SECRET
mkdir -p "$out/bin"
go build -o "$out/bin/chatserver" .
go build -o "$out/bin/chatload" ./cmd/chatload
ulimit -n 20000

sql() { mariadb -h"${mysql%:*}" -P"${mysql#*:}" -uroot -e "$1"; }
rcli() { redis-cli -h "${redis%:*}" -p "${redis#*:}" "$@"; }
pids=()
prefix=

# del_keys removes every Redis key under prefix $1 and prints how many are left.
del_keys() {
	rcli --scan --pattern "$1*" | xargs -r -n 500 redis-cli -h "${redis%:*}" -p "${redis#*:}" del >/dev/null
	rcli --scan --pattern "$1*" | wc -l
}

stop_nodes() {
	local p
	for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}

cleanup() {
	stop_nodes
	sql "DROP DATABASE IF EXISTS $db" || true
	[ -z "$prefix" ] || del_keys "$prefix" >/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM # Ctrl-C: no further run, and the cleanup above

# start_nodes N ENABLED: N nodes on a fresh database and a fresh key prefix;
# sets pids.
start_nodes() {
	local n=$1 enabled=$2 i
	sql "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
	rm -rf "${out:?}/nodes" && mkdir -p "$out/nodes"
	for i in $(seq "$n"); do
		CHAT_NODE=route$i CHAT_CLUSTER_ENABLED=$enabled \
			CHAT_SERVER_ADDR=127.0.0.1:$((ws_base + i)) CHAT_API_ADDR=127.0.0.1:$((api_base + i)) \
			CHAT_REDIS_ADDR=$redis CHAT_REDIS_KEY_PREFIX=$prefix CHAT_MYSQL_DSN="root@tcp($mysql)/$db" \
			CHAT_OFFLINE_SPOOL_PATH="$out/nodes/spool$i.db" CHAT_LOG_LEVEL=warn \
			"$out/bin/chatserver" >"$out/nodes/node$i.log" 2>&1 &
		pids+=($!)
	done
	for i in $(seq "$n"); do # ready: SQL and Redis reachable
		local ok=
		for _ in $(seq 100); do
			if curl -sf -o /dev/null -H "Authorization: Bearer $CHAT_API_SECRET" "http://127.0.0.1:$((api_base + i))/readyz"; then
				ok=1
				break
			fi
			sleep 0.1
		done
		[ -n "$ok" ] || { echo "node $i did not become ready; see $out/nodes/node$i.log" >&2; return 1; }
	done
}

mariadb_pid=$(pidof mariadbd mysqld || true) # for its CPU; none if it runs elsewhere
loadavg() { cut -d' ' -f1 /proc/loadavg; }
above() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
redis_cpu() { rcli info cpu | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.2f", s }'; }
# machine_cpu: CPU-seconds busy and stolen (by the hypervisor) on every core.
machine_cpu() { awk '/^cpu / { printf "%.2f %.2f", ($2 + $3 + $4 + $7 + $8) / 100, $9 / 100 }' /proc/stat; }
# proc_cpu PID...: their CPU-seconds (utime+stime), 0 for one that is gone.
proc_cpu() {
	local p s=0
	for p in "$@"; do
		s=$((s + $( (awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0) | tail -1)))
	done
	awk -v s="$s" 'BEGIN { printf "%.2f", s / 100 }'
}

# wait_load: until the 1-minute load average is at most load_max, at most
# load_wait seconds; prints the load average it ends at.
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

# once SETUP CELL RUN: one chatload run on fresh nodes; 0 if it started at
# most at load_max.
once() {
	local setup=$1 cell=$2 n=$3 nodes=1 enabled=false i addrs="" pidlist l0 rc=0 args
	case $setup in
	off) ;;
	on) enabled=true ;;
	three) nodes=3 enabled=true ;;
	*) echo "unknown setup $setup (off, on, three)" >&2; exit 1 ;;
	esac
	case $cell in
	w1) args=(-pairs "$pairs" -window 1) ;;
	w32) args=(-pairs "$pairs" -window 32) ;;
	fixed) args=(-pairs "$fixed_pairs" -rate "$rate") ;;
	*) echo "unknown cell $cell (w1, w32, fixed)" >&2; exit 1 ;;
	esac
	prefix="bench${run_id}r:"
	l0=$(wait_load)
	start_nodes "$nodes" "$enabled" || exit 1 # (errexit is off in an "if once")
	for i in $(seq "$nodes"); do addrs+="${addrs:+,}127.0.0.1:$((ws_base + i))"; done
	pidlist=$(IFS=,; echo "${pids[*]}")
	local base="$out/$setup-$cell-$n"
	echo "== $setup $cell run $n: $nodes node(s), cluster $enabled, load average $l0" >&2
	# Everything the machine did over the run, and what of it was ours: the
	# rest ("other") is work that shared the cores with the run.
	local m0 m1 n0 n1 d0 d1 r0 r1 ct
	# shellcheck disable=SC2086 # no PID: no MariaDB here
	m0=$(machine_cpu) n0=$(proc_cpu "${pids[@]}") d0=$(proc_cpu $mariadb_pid) r0=$(redis_cpu)
	/usr/bin/time -o "$base.time" -f '%U %S' \
		"$out/bin/chatload" pairs "${args[@]}" -duration "$duration" -addr "$addrs" -pid "$pidlist" -json \
		>"$base.json" 2>"$base.err" || rc=$?
	# shellcheck disable=SC2086
	m1=$(machine_cpu) n1=$(proc_cpu "${pids[@]}") d1=$(proc_cpu $mariadb_pid) r1=$(redis_cpu)
	ct=$(tail -1 "$base.time" | awk '{ printf "%.2f", $1 + $2 }')
	stop_nodes
	sql "DROP DATABASE IF EXISTS $db"
	awk -v m0="$m0" -v m1="$m1" -v n="$n0 $n1" -v d="$d0 $d1" -v r="$r0 $r1" -v c="$ct" -v l0="$l0" -v l1="$(loadavg)" \
		-v head="setup=$setup cell=$cell run=$n nodes=$nodes" -v tail="chatload_rc=$rc keys_left=$(del_keys "$prefix")" 'BEGIN {
		split(m0, a, " "); split(m1, b, " "); split(n, nn, " "); split(d, dd, " "); split(r, rr, " ")
		busy = b[1] - a[1]; nodes = nn[2] - nn[1]; db = dd[2] - dd[1]; redis = rr[2] - rr[1]
		printf "%s load_start=%s load_end=%s machine_busy_s=%.2f steal_s=%.2f nodes_cpu_s=%.2f chatload_cpu_s=%.2f redis_cpu_s=%.2f mariadb_cpu_s=%.2f other_cpu_s=%.2f %s\n",
			head, l0, l1, busy, b[2] - a[2], nodes, c, redis, db, busy - nodes - c - redis - db, tail
	}' >"$base.meta"
	cat "$base.meta" >&2
	[ "$rc" = 0 ] || echo "chatload exit status $rc: see $base.err and $base.json" >&2
	for i in $(seq "$nodes"); do cp "$out/nodes/node$i.log" "$base.node$i.log"; done
	sleep 2 # let TIME_WAIT and the databases settle
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
python3 bench/routing_summary.py "$out"
