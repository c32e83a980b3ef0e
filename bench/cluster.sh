#!/usr/bin/env bash
# A site-wide announcement across several nodes, against the same load on one
# node. "cluster": NODES chat servers with cluster.enabled on one Redis and one
# MariaDB, NODES x CONNS_PER_NODE connections spread over them (chatload -addr
# a,b,c: each account picks a node by a hash of its name), and K announcements
# sent through the first node's side API (POST /api/broadcast): that node
# writes to its connections and publishes to the others through Redis.
# "single": one node, cluster off, CONNS_PER_NODE connections, the
# announcements through its API. Each prints chatload's fan-out (per round and
# per connection), missing and duplicated deliveries, and the CPU of every node
# summed per 1,000 deliveries; then the two side by side. Exit status: 0 every
# connection got every announcement once, 2 some were missing or duplicated
# (or connects failed), 1 a run failed. Loopback only; needs
# Redis and MariaDB on 127.0.0.1 (./scripts/test.sh starts them). The database
# and the Redis keys of the run are removed at the end, whatever happened.
#
#   bench/cluster.sh [OUT]      NODES=5 CONNS_PER_NODE=19000 K=20 MODES="single cluster"
#   NODES=5 CONNS_PER_NODE=500 K=5 bench/cluster.sh /tmp/chat-cluster-small
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/chat-cluster}
nodes=${NODES:-5}
per_node=${CONNS_PER_NODE:-19000}
k=${K:-20}
modes=${MODES:-single cluster}
ws_base=${WS_PORT_BASE:-9200}   # node i listens on ws_base+i and api_base+i
api_base=${API_PORT_BASE:-9300}
redis=${REDIS_ADDR:-127.0.0.1:6379}
mysql=${MYSQL_ADDR:-127.0.0.1:3306}
extra=${CHATLOAD_ARGS:-} # e.g. "-round-timeout 30s"
run_id=$$$RANDOM
db=bench_cluster_$run_id
# The load is many connections from few addresses at machine speed: lift the
# per-IP and per-connection limits, as bench/compare.sh does. The side API
# may always broadcast; chatload reads the same secret from the environment.
export CHAT_LIMITS_FRAMES_PER_SECOND=0 CHAT_LIMITS_CONNECTIONS_PER_IP=0
CHAT_API_SECRET=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export CHAT_API_SECRET
mkdir -p "$out/bin"
go build -o "$out/bin/chatserver" .
go build -o "$out/bin/chatload" ./cmd/chatload
ulimit -n 20000

sql() { mariadb -h"${mysql%:*}" -P"${mysql#*:}" -uroot -e "$1"; }
rcli() { redis-cli -h "${redis%:*}" -p "${redis#*:}" "$@"; }
prefixes=()
pids=()

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
	local p
	for p in "${prefixes[@]}"; do del_keys "$p" >/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM # Ctrl-C: no further mode, and the cleanup above

# start_nodes MODE N ENABLED: N nodes on a fresh database and a fresh key
# prefix; sets pids.
start_nodes() {
	local mode=$1 n=$2 enabled=$3 i
	prefix="bench$run_id$mode:"
	prefixes+=("$prefix")
	sql "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
	rm -rf "${out:?}/$mode" && mkdir -p "$out/$mode"
	for i in $(seq "$n"); do
		CHAT_NODE=bench$i CHAT_CLUSTER_ENABLED=$enabled \
			CHAT_SERVER_ADDR=127.0.0.1:$((ws_base + i)) CHAT_API_ADDR=127.0.0.1:$((api_base + i)) \
			CHAT_REDIS_ADDR=$redis CHAT_REDIS_KEY_PREFIX=$prefix CHAT_MYSQL_DSN="root@tcp($mysql)/$db" \
			CHAT_OFFLINE_SPOOL_PATH="$out/$mode/spool$i.db" CHAT_LOG_LEVEL=warn \
			"$out/bin/chatserver" >"$out/$mode/node$i.log" 2>&1 &
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
		[ -n "$ok" ] || { echo "node $i did not become ready; see $out/$mode/node$i.log" >&2; return 1; }
	done
}

# all_frames I: announcement frames node I wrote to its connections.
all_frames() {
	curl -sf -H "Authorization: Bearer $CHAT_API_SECRET" "http://127.0.0.1:$((api_base + $1))/metrics" |
		awk '/^chat_frames_out_total\{.*kind="all"/ { s += $NF } END { printf "%d", s }'
}

# run MODE N ENABLED: one chatload broadcast; the result goes to OUT/MODE.json.
run() {
	local mode=$1 n=$2 enabled=$3 i addrs="" pidlist
	start_nodes "$mode" "$n" "$enabled"
	for i in $(seq "$n"); do addrs+="${addrs:+,}127.0.0.1:$((ws_base + i))"; done
	pidlist=$(IFS=,; echo "${pids[*]}")
	echo "== $mode: $n node(s), $((n * per_node)) connections, $k announcements through node 1's API" >&2
	local rc=0
	# shellcheck disable=SC2086 # CHATLOAD_ARGS is a list of flags
	"$out/bin/chatload" broadcast -addr "$addrs" -conns $((n * per_node)) -k "$k" \
		-broadcast-api "http://127.0.0.1:$((api_base + 1))/api/broadcast" -pid "$pidlist" -json $extra \
		>"$out/$mode.json" 2>"$out/$mode.err" || rc=$?
	{
		echo "$mode: chatload exit status $rc (0 every delivery once; 2 missing or duplicated; 1 the run failed: $out/$mode.err)"
		for i in $(seq "$n"); do
			local f
			f=$(all_frames "$i" || true)
			echo "node $i: $f announcement frames written = $((f / k)) connections per announcement"
		done
	} >"$out/$mode.nodes.txt"
	stop_nodes
	sql "DROP DATABASE IF EXISTS $db"
	echo "Redis keys left under \"$prefix\": $(del_keys "$prefix")" >>"$out/$mode.nodes.txt"
	cat "$out/$mode.nodes.txt" >&2
	case $rc in 0) ;; 2) [ "$status" = 1 ] || status=2 ;; *) status=1 ;; esac
	sleep 2 # let TIME_WAIT and the databases settle
}

status=0 # 1 if a chatload run failed, else 2 if one found a problem
for mode in $modes; do
	case $mode in
	single) run single 1 false ;;
	cluster) run cluster "$nodes" true ;;
	*) echo "unknown mode $mode (single, cluster)" >&2; exit 1 ;;
	esac
done

# Side by side, from the JSON results.
cols=()
for mode in $modes; do [ -s "$out/$mode.json" ] && cols+=("$mode"); done
[ ${#cols[@]} -gt 0 ] || { echo "no results in $out" >&2; exit 1; }
row() { # label jq-expression
	local m line
	line=$(printf '%-40s' "$1")
	for m in "${cols[@]}"; do
		line+=$(printf '%22s' "$(jq -r "def r1: . * 10 | round / 10; $2" "$out/$m.json" 2>/dev/null || echo '?')")
	done
	echo "$line"
}
head=$(printf '%-40s' "")
for m in "${cols[@]}"; do
	case $m in single) head+=$(printf '%22s' "1 node") ;; cluster) head+=$(printf '%22s' "cluster, $nodes nodes") ;; esac
done
echo "$head"
row "connections open / failed" '"\(.client.open // 0) / \(.connect.failed)"'
row "announcements (complete rounds)" '"\(.broadcast.rounds) (\(.broadcast.complete))"'
row "deliveries / missing / duplicated" '"\(.broadcast.delivered) / \(.broadcast.missing) / \(.broadcast.duplicates)"'
row "fan-out completion p50 / p99, ms" '"\(.broadcast.p50_ms | r1) / \(.broadcast.p99_ms | r1)"'
row "until the last connection (max), ms" '.broadcast.max_ms | r1'
row "per-connection latency p50 / p99, ms" '"\(.broadcast.conn_p50_ms | r1) / \(.broadcast.conn_p99_ms | r1)"'
row "deliveries/s during fan-out" '.broadcast.deliveries_per_sec | floor'
row "server CPU-s (all nodes)" '.cpu.seconds * 100 | round / 100'
row "server CPU-s per 1,000 deliveries" '.cpu.seconds_per_1000_delivered * 10000 | round / 10000'
row "client CPU-s, same phase" '.cpu.client_seconds * 100 | round / 100'
row "server errors / closed by server" '"\(.client.errors // {} | add // 0) / \(.client.closed)"'
echo "results: $out/{$(IFS=,; echo "${cols[*]}")}.json, per node: $out/*.nodes.txt, logs: $out/*/node*.log"
exit "$status"
