#!/bin/bash
# A real Kubernetes control plane for the tests, built offline from Debian 12's sources:
# kube-apiserver, kube-controller-manager, kube-scheduler and kubelet 1.20.2 (from src:kubernetes with the packaged Go),
# etcd and kubectl from Debian's .debs (unpacked, not installed). Everything is cached outside
# the work tree in $TCNP_K8S_DIR (default /var/cache/tcnp/k8s): a second run only checks.
#   scripts/k8s/build.sh            prints the directory with bin/ when done
# Needs golang-go, dpkg-dev, make (scripts/setup-deps.sh installs them); network only to the
# Debian archive named in /etc/apt.
set -euo pipefail
K=${TCNP_K8S_DIR:-/var/cache/tcnp/k8s}
SUITE=bookworm
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
t0=$(date +%s)
say() { echo "[k8s-build $(( $(date +%s) - t0 ))s] $*" >&2; }

have_all() {
  for c in "${COMPONENTS[@]}"; do [ -x "$K/bin/$c" ] || return 1; done
  [ -x "$K/debs/root/usr/bin/etcd" ] && [ -x "$K/debs/root/usr/bin/kubectl" ]
}
if have_all; then echo "$K"; exit 0; fi

mkdir -p "$K"/{apt/lists/partial,apt/cache/archives/partial,src,debs/root,gopath/src/k8s.io,gocache,bin,logs,tmp}
export TMPDIR="$K/tmp" GOTMPDIR="$K/tmp"

# 1. Sources and .debs through a private apt configuration (nothing under /etc/apt changes).
archive=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$archive" ] || archive=$(awk -v s=$SUITE '$1=="deb" && $3==s {print $2; exit}' /etc/apt/sources.list)
[ -n "$archive" ] || { echo "no Debian archive found in /etc/apt" >&2; exit 1; }
apt_opts=(-o Dir::Etc::SourceList="$K/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o Dir::State::Lists="$K/apt/lists" -o Dir::Cache="$K/apt/cache" -o DPkg::Lock::Timeout=900)
src=$(ls -d "$K"/src/kubernetes-1.20.*/ 2>/dev/null | head -1 || true)
if [ -z "$src" ] || [ ! -x "$K/debs/root/usr/bin/etcd" ]; then
  say "fetching src:kubernetes and the etcd/kubectl .debs from $archive"
  printf 'deb %s %s main\ndeb-src %s %s main\n' "$archive" $SUITE "$archive" $SUITE > "$K/apt/sources.list"
  apt-get "${apt_opts[@]}" -qq update
  (cd "$K/src" && apt-get "${apt_opts[@]}" -qq source --download-only kubernetes golang-github-modern-go-reflect2)
  (cd "$K/debs" && apt-get "${apt_opts[@]}" -qq download etcd-server etcd-client kubernetes-client)
  for d in "$K"/debs/*.deb; do dpkg-deb -x "$d" "$K/debs/root"; done
  (cd "$K/src" && dpkg-source -x kubernetes_*.dsc >/dev/null)
  mkdir -p "$K/src/reflect2"
  tar xzf "$K"/src/golang-github-modern-go-reflect2_1.0.2.orig.tar.gz -C "$K/src/reflect2" --strip-components=1
  src=$(ls -d "$K"/src/kubernetes-1.20.*/ | head -1)
fi
src=${src%/}

# 2. Two fixes the tree needs with Go 1.19: the vendored reflect2 1.0.1 crashes map encoding
#    (kube-apiserver dies on YAML/pretty output), 1.0.2 is API-compatible; and the generated
#    OpenAPI definitions are not in the tarball.
r2="$src/vendor/github.com/modern-go/reflect2"
if [ ! -f "$r2/go_above_118.go" ]; then
  find "$r2" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
  cp "$K"/src/reflect2/*.go "$K"/src/reflect2/*.s "$r2/"
  sed -i 's#^\(\# github.com/modern-go/reflect2\) v1.0.1 => github.com/modern-go/reflect2 v1.0.1#\1 v1.0.2 => github.com/modern-go/reflect2 v1.0.2#' "$src/vendor/modules.txt"
fi
export GOPROXY=off GOENV=off GOSUMDB=off GOMAXPROCS=2 CGO_ENABLED=0
if [ ! -f "$src/pkg/generated/openapi/zz_generated.openapi.go" ]; then
  say "generating the OpenAPI definitions"
  (cd "$src" && GOFLAGS= nice -n 10 make gen_openapi > "$K/logs/gen_openapi.log" 2>&1)
fi

# 3. Build in GOPATH mode, as the 1.20 tree's own scripts do (module mode wants go.mod updates).
ln -sfn "$src" "$K/gopath/src/k8s.io/kubernetes"
export GOPATH="$K/gopath" GOCACHE="$K/gocache" GO111MODULE=off GOFLAGS=
ver=""
for p in k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version k8s.io/kubernetes/vendor/k8s.io/component-base/version; do
  ver+=" -X $p.gitVersion=v1.20.2 -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=archive"
done
cd "$K/gopath/src/k8s.io/kubernetes"
for c in "${COMPONENTS[@]}"; do
  [ -x "$K/bin/$c" ] && continue
  say "building $c (go build, cached in $K/gocache)"
  if ! nice -n 10 go build -p 1 -trimpath -tags selinux,notest -ldflags "-s -w -buildid= $ver" \
    -o "$K/bin/$c.tmp" "./cmd/$c" > "$K/logs/build-$c.log" 2>&1; then
    tail -20 "$K/logs/build-$c.log" >&2
    exit 1
  fi
  mv "$K/bin/$c.tmp" "$K/bin/$c"
done
say "done"
echo "$K"
