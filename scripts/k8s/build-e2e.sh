#!/bin/bash
# What Kubernetes' own network e2e tests need, built offline from the same Debian 12 source tree as
# scripts/k8s/build.sh (run first: it fetches the tree and the etcd/kubectl .debs): kube-proxy,
# e2e.test (the upstream suite: test/e2e), ginkgo (the runner that splits the suite over parallel
# processes, from vendor/) and agnhost (the test image's binary, static). Cached in
# $TCNP_K8S_DIR/bin (default /var/cache/tcnp/k8s/bin): a second run only checks.
#   scripts/k8s/build-e2e.sh       prints the directory with bin/ when done
set -euo pipefail
K=${TCNP_K8S_DIR:-/var/cache/tcnp/k8s}
t0=$(date +%s)
say() { echo "[k8s-e2e-build $(( $(date +%s) - t0 ))s] $*" >&2; }
have_all() { for b in kube-proxy e2e.test ginkgo agnhost; do [ -x "$K/bin/$b" ] || return 1; done; }
if have_all; then echo "$K"; exit 0; fi
"$(dirname "$0")/build.sh" >/dev/null
export TMPDIR="$K/tmp" GOTMPDIR="$K/tmp"
export GOPROXY=off GOENV=off GOSUMDB=off GOMAXPROCS=2 CGO_ENABLED=0
export GOPATH="$K/gopath" GOCACHE="$K/gocache" GO111MODULE=off GOFLAGS=
ver=""
for p in k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version k8s.io/kubernetes/vendor/k8s.io/component-base/version; do
  ver+=" -X $p.gitVersion=v1.20.2 -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=archive"
done
cd "$K/gopath/src/k8s.io/kubernetes"
build() { # name, go command...
  local name=$1; shift
  [ -x "$K/bin/$name" ] && return 0
  say "building $name (cached in $K/gocache)"
  if ! nice -n 10 "$@" > "$K/logs/build-$name.log" 2>&1; then
    tail -30 "$K/logs/build-$name.log" >&2
    exit 1
  fi
  mv "$K/bin/$name.tmp" "$K/bin/$name"
}
build kube-proxy go build -p 1 -trimpath -tags selinux,notest -ldflags "-s -w -buildid= $ver" -o "$K/bin/kube-proxy.tmp" ./cmd/kube-proxy
build ginkgo go build -p 1 -trimpath -ldflags "-s -w -buildid=" -o "$K/bin/ginkgo.tmp" ./vendor/github.com/onsi/ginkgo/ginkgo
build agnhost go build -p 1 -trimpath -ldflags "-s -w -buildid=" -o "$K/bin/agnhost.tmp" ./test/images/agnhost
# The e2e suite embeds its manifests and fixtures (go-bindata, from vendor/), as hack/generate-bindata.sh does.
if [ ! -f test/e2e/generated/bindata.go ]; then
  say "generating test/e2e/generated/bindata.go"
  GOBIN="$K/gopath/bin" go install k8s.io/kubernetes/vendor/github.com/go-bindata/go-bindata/go-bindata
  "$K/gopath/bin/go-bindata" -nometadata -o test/e2e/generated/bindata.go.tmp -pkg generated \
    -ignore .jpg -ignore .png -ignore .md -ignore 'BUILD(\.bazel)?' \
    "test/conformance/testdata/..." "test/e2e/testing-manifests/..." "test/e2e_node/testing-manifests/..." \
    "test/images/..." "test/fixtures/..."
  mv test/e2e/generated/bindata.go.tmp test/e2e/generated/bindata.go
fi
build e2e.test go test -c -p 1 -trimpath -ldflags "-s -w -buildid= $ver" -o "$K/bin/e2e.test.tmp" ./test/e2e
say "done"
echo "$K"
