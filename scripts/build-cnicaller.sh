#!/bin/bash
# Build tools/cnicaller offline from Debian's golang-go + golang-github-appc-cni-dev (GOPATH mode).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/bin/cnicaller}
gopath=$root/build/gopath
mkdir -p "$gopath/src" "$(dirname "$out")"
ln -sfn "$root/tools/cnicaller" "$gopath/src/cnicaller"
if [ ! -x "$out" ] || [ "$root/tools/cnicaller/main.go" -nt "$out" ]; then
  GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="$root/build/gocache" GOFLAGS=-mod=mod \
    go build -o "$out" cnicaller
fi
echo "$out"
