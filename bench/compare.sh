#!/usr/bin/env bash
# Runs the benchmark suite of docs/benchmarks.md: the baseline router, our
# server on Redis + MariaDB, and our server on the embedded default, one after
# the other, each scenario RUNS times with a fresh server per run. Results go to
# OUT/<target>-<scenario>-<run>.json; bench/summarize.py turns them into the
# tables of the doc. Loopback only; needs Redis and MariaDB on 127.0.0.1 for the
# "ours" targets (./scripts/test.sh starts them). "ours-tls" is "ours" with a
# wss:// listener (a throwaway certificate from openssl) and chatload -tls.
#
#   bench/compare.sh [OUT] [RUNS]        e.g. bench/compare.sh /tmp/bench-out 3
#   TARGETS="ours ours-tls" SCENARIOS="idle broadcast" bench/compare.sh /tmp/tls 3
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/chat-bench}
runs=${2:-3}
conns=${CONNS:-19000}
mysql_root=${MYSQL_ROOT_DSN:-root@tcp(127.0.0.1:3306)/}
targets=${TARGETS:-baseline ours embedded}
scenarios=${SCENARIOS:-idle broadcast pairs-flat pairs-50k pairs-20k offline}
mkdir -p "$out/bin"
# The load is many connections from few addresses at machine speed: lift the
# per-IP and per-connection limits, and let the tool's broadcaster broadcast.
export CHAT_LIMITS_FRAMES_PER_SECOND=0 CHAT_LIMITS_CONNECTIONS_PER_IP=0 CHAT_BROADCAST_ALLOWED=admin
go build -o "$out/bin/chatserver" .
go build -o "$out/bin/chatload" ./cmd/chatload
go build -o "$out/bin/baseline" ./bench/baseline
ulimit -n "$(ulimit -Hn)"

start_target() { # target -> sets pid, addr, tlsflags
	tlsflags=()
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
			tlsflags=(-tls -insecure)
			[ -f "$out/cert.pem" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
				-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null
			tlsenv=(CHAT_TLS_ADDR=$addr CHAT_TLS_CERT_FILE="$out/cert.pem" CHAT_TLS_KEY_FILE="$out/key.pem")
		fi
		mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS chatbench; CREATE DATABASE chatbench"
		env "${tlsenv[@]}" CHAT_SERVER_ADDR=127.0.0.1:9052 CHAT_REDIS_ADDR=127.0.0.1:6379 CHAT_REDIS_KEY_PREFIX="bench$RANDOM:" \
			CHAT_MYSQL_DSN="${mysql_root}chatbench" CHAT_LOG_LEVEL=warn \
			"$out/bin/chatserver" >"$out/server.log" 2>&1 &
		;;
	embedded)
		addr=127.0.0.1:9052
		rm -rf "$out/embedded" && mkdir -p "$out/embedded"
		CHAT_SERVER_ADDR=$addr CHAT_EMBEDDED_PATH="$out/embedded/chat.db" CHAT_LOG_LEVEL=warn \
			"$out/bin/chatserver" >"$out/server.log" 2>&1 &
		;;
	esac
	pid=$!
	for _ in $(seq 50); do (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null && return 0; sleep 0.1; done
	echo "target $1 did not start" >&2
	return 1
}

run() { # target scenario run args...
	local target=$1 scenario=$2 n=$3
	shift 3
	start_target "$target"
	echo "== $target $scenario run $n" >&2
	"$out/bin/chatload" "$@" "${tlsflags[@]}" -addr "$addr" -pid "$pid" -json >"$out/$target-$scenario-$n.json" 2>"$out/$target-$scenario-$n.err" || true
	kill -INT "$pid"
	wait "$pid" || true
	sleep 2 # let TIME_WAIT and the databases settle
}

has() { [[ " $scenarios " == *" $1 "* ]]; }
for n in $(seq "$runs"); do
	for target in $targets; do
		has idle && run "$target" idle "$n" idle -steps 5000,10000,$conns -gc-signal
		has broadcast && run "$target" broadcast "$n" broadcast -conns "$conns" -k 20
		has pairs-flat && run "$target" pairs-flat "$n" pairs -pairs $((conns / 2)) -duration 10s
		has pairs-50k && run "$target" pairs-50k "$n" pairs -pairs $((conns / 2)) -rate 50000 -duration 10s
		has pairs-20k && run "$target" pairs-20k "$n" pairs -pairs $((conns / 2)) -rate 20000 -duration 10s
		if has offline; then
			case $target in
			ours*) run "$target" offline "$n" offline -messages 100000 -accounts 1000 -mysql-dsn "${mysql_root}chatbench" ;;
			embedded) run "$target" offline "$n" offline -messages 100000 -accounts 1000 -offline-wait 5s ;;
			esac
		fi
	done
done
echo "results in $out; summary: python3 bench/summarize.py $out" >&2
