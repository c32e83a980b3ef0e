#!/usr/bin/env bash
# Runs the benchmark suite of docs/benchmarks.md: the baseline router, our
# server on Redis + MariaDB, and our server on the embedded default, one after
# the other, each scenario RUNS times with a fresh server per run. Results go to
# OUT/<target>-<scenario>-<run>.json; bench/summarize.py turns them into the
# tables of the doc. Loopback only; needs Redis and MariaDB on 127.0.0.1 for the
# "ours" targets (./scripts/test.sh starts them). "ours-tls" is "ours" with a
# wss:// listener (a throwaway certificate from openssl) and chatload -tls.
#
# "centrifugo" is Centrifugo (CENTRIFUGO_VERSION, installed with go install
# from the Go module proxy into OUT/centrifugo-bin, nothing else downloaded) on
# its memory engine, driven by chatload -protocol centrifugo; "centrifugo-redis"
# is the same on its Redis engine, to set beside "ours" (Redis + MariaDB). Its
# config is OUT/centrifugo-<engine>.json: insecure clients (no token: for the
# benchmark only), an HTTP API key for the announcements, history and recovery
# off (its defaults), and its keepalive on: it pings every client every 25 s and
# chatload answers, as chatload pings ours every 25 s (-heartbeat), so both pay
# for keepalive inside the measured windows. Centrifugo has no SIGUSR1 handler,
# so when a centrifugo target is in TARGETS the idle runs of every target are
# sampled without -gc-signal (RSS as the runtime leaves it, settled). The
# offline scenario does not map to it and is skipped.
#
# Each run's OUT/<target>-<scenario>-<run>.meta records the 1-minute load
# average at its start and the CPU the machine spent over it: the server's,
# chatload's, and the rest ("other": work that shared the cores).
#
#   bench/compare.sh [OUT] [RUNS]        e.g. bench/compare.sh /tmp/bench-out 3
#   TARGETS="ours ours-tls" SCENARIOS="idle broadcast" bench/compare.sh /tmp/tls 3
#   TARGETS="embedded centrifugo" SCENARIOS="idle broadcast pairs-flat pairs-20k" CONNS=18000 bench/compare.sh /tmp/cf 3
#   TARGETS="ours centrifugo-redis" SCENARIOS="pairs-flat pairs-20k" CONNS=18000 bench/compare.sh /tmp/cf-redis 3
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/chat-bench}
runs=${2:-3}
conns=${CONNS:-19000}
mysql_root=${MYSQL_ROOT_DSN:-root@tcp(127.0.0.1:3306)/}
targets=${TARGETS:-baseline ours embedded}
scenarios=${SCENARIOS:-idle broadcast pairs-flat pairs-50k pairs-20k offline}
centrifugo_version=${CENTRIFUGO_VERSION:-v6.9.1}
centrifugo_key=bench-api-key
mkdir -p "$out/bin"
[[ $out = /* ]] || out="$(pwd -P)/$out"
# The load is many connections from few addresses at machine speed: lift the
# per-IP and per-connection limits, and let the tool's broadcaster broadcast.
export CHAT_LIMITS_FRAMES_PER_SECOND=0 CHAT_LIMITS_CONNECTIONS_PER_IP=0 CHAT_BROADCAST_ALLOWED=admin
go build -o "$out/bin/chatserver" .
go build -o "$out/bin/chatload" ./cmd/chatload
go build -o "$out/bin/baseline" ./bench/baseline
ulimit -n "$(ulimit -Hn)"
gcflag=(-gc-signal)
if [[ " $targets " == *" centrifugo"* ]]; then
	gcflag=()
	# (its "version" says v0.0.0 when built by go install: ask the module info)
	if ! go version -m "$out/centrifugo-bin/centrifugo" 2>/dev/null | grep -q "centrifugo/v6[[:space:]]*$centrifugo_version[[:space:]]"; then
		GOBIN="$out/centrifugo-bin" go install "github.com/centrifugal/centrifugo/v6@$centrifugo_version"
	fi
fi

# centrifugo_config ENGINE: its config file for the memory or redis engine.
centrifugo_config() {
	local f="$out/centrifugo-$1.json" engine='{"type": "memory"}'
	[ "$1" = redis ] && engine="{\"type\": \"redis\", \"redis\": {\"address\": [\"redis://127.0.0.1:6379\"], \"prefix\": \"bench$RANDOM\"}}"
	cat >"$f" <<-EOF
		{
		  "log": {"level": "error"},
		  "http_server": {"address": "127.0.0.1", "port": 9200},
		  "engine": $engine,
		  "client": {"insecure": true, "ping_interval": "25s", "pong_timeout": "8s"},
		  "http_api": {"key": "$centrifugo_key"},
		  "usage_stats": {"disabled": true}
		}
	EOF
	echo "$f"
}

start_target() { # target -> sets pid, addr, targetflags (chatload flags: TLS, protocol)
	targetflags=()
	case $1 in
	baseline)
		addr=127.0.0.1:9100
		"$out/bin/baseline" -addr "$addr" >"$out/server.log" 2>&1 &
		;;
	ours | ours-tls)
		addr=127.0.0.1:9052
		local tlsenv=()
		if [ "$1" = ours-tls ]; then
			addr=127.0.0.1:9443
			targetflags=(-tls -insecure)
			[ -f "$out/cert.pem" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
				-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null
			tlsenv=(CHAT_TLS_ADDR=$addr CHAT_TLS_CERT_FILE="$out/cert.pem" CHAT_TLS_KEY_FILE="$out/key.pem")
		fi
		mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS chatbench; CREATE DATABASE chatbench"
		env "${tlsenv[@]}" CHAT_SERVER_ADDR=127.0.0.1:9052 CHAT_REDIS_ADDR=127.0.0.1:6379 CHAT_REDIS_KEY_PREFIX="bench$RANDOM:" \
			CHAT_MYSQL_DSN="${mysql_root}chatbench" CHAT_LOG_LEVEL=warn \
			"$out/bin/chatserver" >"$out/server.log" 2>&1 &
		;;
	centrifugo | centrifugo-redis)
		local engine=memory
		[ "$1" = centrifugo-redis ] && engine=redis
		addr=127.0.0.1:9200
		targetflags=(-protocol centrifugo -path /connection/websocket -api-secret "$centrifugo_key")
		"$out/centrifugo-bin/centrifugo" -c "$(centrifugo_config "$engine")" >"$out/server.log" 2>&1 &
		;;
	embedded)
		addr=127.0.0.1:9052
		rm -rf "$out/embedded" && mkdir -p "$out/embedded"
		CHAT_SERVER_ADDR=$addr CHAT_EMBEDDED_PATH="$out/embedded/chat.db" CHAT_LOG_LEVEL=warn \
			"$out/bin/chatserver" >"$out/server.log" 2>&1 &
		;;
	esac
	pid=$!
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null && return 0; sleep 0.1; done
	echo "target $1 did not start" >&2
	return 1
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }
# machine_cpu: CPU-seconds busy on every core; proc_cpu PID...: theirs (utime+stime).
machine_cpu() { awk '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8) / 100 }' /proc/stat; }
proc_cpu() {
	local p s=0
	for p in "$@"; do
		s=$((s + $( (awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0) | tail -1)))
	done
	awk -v s="$s" 'BEGIN { printf "%.2f", s / 100 }'
}
# The databases' CPU is theirs, not other work's (MariaDB: none if it runs elsewhere).
db_pids=$(pidof redis-server mariadbd mysqld || true)

run() { # target scenario run args...
	local target=$1 scenario=$2 n=$3 l0 m0 m1 s0 s1 rc=0
	shift 3
	local base="$out/$target-$scenario-$n"
	start_target "$target"
	l0=$(loadavg)
	echo "== $target $scenario run $n (load average $l0)" >&2
	# shellcheck disable=SC2086 # a list of PIDs, or none
	m0=$(machine_cpu) s0=$(proc_cpu "$pid") d0=$(proc_cpu $db_pids)
	/usr/bin/time -o "$base.time" -f '%U %S' \
		"$out/bin/chatload" "$@" "${targetflags[@]}" -addr "$addr" -pid "$pid" -json >"$base.json" 2>"$base.err" || rc=$?
	# shellcheck disable=SC2086
	m1=$(machine_cpu) s1=$(proc_cpu "$pid") d1=$(proc_cpu $db_pids)
	awk -v l0="$l0" -v m="$m0 $m1" -v s="$s0 $s1" -v d="$d0 $d1" -v c="$(tail -1 "$base.time")" -v rc="$rc" \
		-v head="target=$target scenario=$scenario run=$n" 'BEGIN {
		split(m, mm, " "); split(s, ss, " "); split(d, dd, " "); split(c, cc, " ")
		busy = mm[2] - mm[1]; srv = ss[2] - ss[1]; db = dd[2] - dd[1]; cl = cc[1] + cc[2]
		printf "%s load_start=%s machine_busy_s=%.2f server_cpu_s=%.2f db_cpu_s=%.2f chatload_cpu_s=%.2f other_cpu_s=%.2f chatload_rc=%s\n",
			head, l0, busy, srv, db, cl, busy - srv - db - cl, rc
	}' >"$base.meta"
	cat "$base.meta" >&2
	kill -INT "$pid"
	wait "$pid" || true
	sleep 2 # let TIME_WAIT and the databases settle
}

steps=5000,10000,$conns
[ "$conns" -gt 10000 ] || steps=$((conns / 4)),$((conns / 2)),$conns # a small validation run
# cell TARGET SCENARIO RUN: one run of one scenario against one target.
cell() {
	local target=$1 n=$3
	case $2 in
	idle) run "$target" idle "$n" idle -steps "$steps" "${gcflag[@]}" ;;
	broadcast) run "$target" broadcast "$n" broadcast -conns "$conns" -k 20 ;;
	pairs-flat) run "$target" pairs-flat "$n" pairs -pairs $((conns / 2)) -duration 10s ;;
	pairs-50k) run "$target" pairs-50k "$n" pairs -pairs $((conns / 2)) -rate 50000 -duration 10s ;;
	pairs-20k) run "$target" pairs-20k "$n" pairs -pairs $((conns / 2)) -rate 20000 -duration 10s ;;
	pairs-5k) run "$target" pairs-5k "$n" pairs -pairs $((conns / 2)) -rate 5000 -duration 10s ;;
	offline)
		case $target in
		ours*) run "$target" offline "$n" offline -messages 100000 -accounts 1000 -mysql-dsn "${mysql_root}chatbench" ;;
		embedded) run "$target" offline "$n" offline -messages 100000 -accounts 1000 -offline-wait 5s ;;
		esac # nothing to compare it with on the baseline and Centrifugo
		;;
	esac
}

# Interleaved: each scenario runs against every target in turn, so a change in
# the machine's other load falls on all of them alike.
for n in $(seq "$runs"); do
	for scenario in $scenarios; do
		for target in $targets; do
			cell "$target" "$scenario" "$n"
		done
	done
done
echo "results in $out; summary: python3 bench/summarize.py $out" >&2
