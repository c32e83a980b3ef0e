#!/usr/bin/env bash
# Builds the release binaries: static (no cgo: the embedded SQLite is pure Go),
# for linux/amd64 and linux/arm64, paths trimmed, symbols stripped, with the
# version stamped in (chatserver -version prints it).
#
#   deploy/build-release.sh VERSION [OUT_DIR]
#
# writes OUT_DIR (default dist/) chatserver-VERSION-linux-amd64,
# chatserver-VERSION-linux-arm64 and SHA256SUMS. The commit is stamped by Go
# itself when it builds in a git checkout (vcs.revision in -version), unless
# GOFLAGS holds -buildvcs=false.
set -euo pipefail

usage() {
	echo "usage: $0 VERSION [OUT_DIR]   (e.g. $0 1.4.0 dist)" >&2
	exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
version=$1
out=${2:-dist}
case $version in
"" | *[!A-Za-z0-9._+-]*)
	echo "$0: version \"$version\": use letters, digits and . _ + - only" >&2
	exit 2
	;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"

for arch in amd64 arm64; do
	bin="$out/chatserver-$version-linux-$arch"
	printf 'building %s\n' "$bin" >&2
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch \
		go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$bin" .
done
(cd "$out" && sha256sum "chatserver-$version-linux-amd64" "chatserver-$version-linux-arm64" >SHA256SUMS)
printf 'wrote %s/SHA256SUMS\n' "$out" >&2
