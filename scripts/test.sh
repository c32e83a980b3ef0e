#!/usr/bin/env bash
# Runs every test of the repository, with the race detector, against real Redis
# and MariaDB on loopback. It makes sure both are up first: it starts them where
# they are installed and installs them with apt-get where they are not. With
# CHAT_TEST_REQUIRE_SERVICES=1 a test that cannot reach a service fails instead
# of skipping, so a green run always means the real engines were used.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
	for _ in $(seq 1 $(($3 * 10))); do
		port_open "$2" && return 0
		sleep 0.1
	done
	log "$1 did not come up on 127.0.0.1:$2"
	return 1
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
	log "installing $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_redis() {
	port_open 6379 && return 0
	command -v redis-server >/dev/null || apt_install redis-server
	log "starting redis-server on 127.0.0.1:6379"
	redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
	wait_port redis 6379 20
}

ensure_mariadb() {
	if ! port_open 3306; then
		[ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
		log "starting mariadbd on 127.0.0.1:3306"
		as_root mkdir -p /run/mysqld
		as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
		as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
		wait_port mariadb 3306 60
	fi
	# A fresh Debian install lets root in through the socket only: allow the
	# passwordless TCP login the tests use, on loopback, and make database test.
	if command -v mariadb >/dev/null && ! mariadb -h 127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1; then
		log "allowing root without password on 127.0.0.1 (test machine only)"
		as_root mariadb -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;"
	fi
	command -v mariadb >/dev/null && mariadb -h 127.0.0.1 -uroot -e 'CREATE DATABASE IF NOT EXISTS test' >/dev/null 2>&1 || true
}

# The browser test (browser_test.go) drives Debian's Chromium with playwright-core
# from web/test; a browser downloaded by npm would not run here.
ensure_browser() {
	[ -x /usr/bin/chromium ] || apt_install chromium
	if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
		log "the browser test needs Node.js 20 or newer (playwright-core 1.65); the machine image has it"
		command -v node >/dev/null || apt_install nodejs npm
	fi
	if [ ! -d web/test/node_modules ] || [ web/test/package-lock.json -nt web/test/node_modules ]; then
		log "npm ci in web/test"
		(cd web/test && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
		touch web/test/node_modules
	fi
}

# deploy/'s test verifies the systemd unit with systemd-analyze (package
# systemd; installing it does not make systemd the init of a container).
ensure_systemd_analyze() {
	command -v systemd-analyze >/dev/null || apt_install systemd
}

# The PHP client's PHPUnit suite (clients/php, run by e2e/php_client_test.go)
# uses Debian's PHP and PHPUnit: there is no Composer install to make.
ensure_php() {
	local missing=()
	command -v php >/dev/null || missing+=(php-cli)
	command -v php >/dev/null && php -r 'exit(extension_loaded("curl") ? 0 : 1);' || missing+=(php-curl)
	command -v phpunit >/dev/null || missing+=(phpunit)
	[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

ensure_redis
ensure_mariadb
ensure_browser
ensure_systemd_analyze
ensure_php

export CHAT_TEST_REQUIRE_SERVICES=1
log "go vet ./..."
go vet ./...
log "go test -race ./..."
go test -race -count=1 -timeout 20m ./... "$@"
