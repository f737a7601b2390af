#!/bin/bash
# A two-node Kubernetes cluster on the lab's small cloud (test/helpers/lab-cluster.ts), and
# Kubernetes' own e2e network tests on it. As root:
#   scripts/k8s/cluster.sh up [--mode mix|eni]   bring it up (in the background; prints how to reach it
#                                                 and the sample NetworkPolicy's connectivity matrix)
#   scripts/k8s/cluster.sh down                  take it down
#   scripts/k8s/cluster.sh e2e [--suite ci|policy|full] [--modes mix,eni] [--nodes N]
#                                                 a fresh cluster per mode, the suite (N parallel
#                                                 e2e.test processes, 4 by default), a table of results
# The first run builds kube-proxy, e2e.test and agnhost from Debian's source (cached in
# /var/cache/tcnp/k8s, outside the work tree) and the test images.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup-deps.sh >/dev/null
[ -x dist/tcnp ] || npm run --silent build
[ -f build/test/helpers/cluster-cli.js ] || npm run --silent build
scripts/k8s/build.sh >/dev/null
scripts/k8s/build-e2e.sh >/dev/null
# (not under /run or /var/lib: each node's containerd mounts its own there and would not see it)
dir=/tmp/tcnp-k8s-lab
prev=""
for a in "$@"; do
  case $a in --dir=*) dir=${a#--dir=} ;; esac
  [ "$prev" = --dir ] && dir=$a
  prev=$a
done
case "${1:-}" in
  up)
    mkdir -p "$dir"
    nohup node build/test/helpers/cluster-cli.js "$@" > "$dir/cluster.log" 2>&1 &
    pid=$!
    until [ -f "$dir/cluster.json" ]; do
      kill -0 $pid 2>/dev/null || { tail -40 "$dir/cluster.log" >&2; exit 1; }
      sleep 2
    done
    tail -3 "$dir/cluster.log"
    echo "the sample NetworkPolicy (deploy/kubernetes/examples/policy) in namespace tcnp-demo, before and after:"
    cat "$dir/policy-matrix.txt"
    ;;
  *) exec node build/test/helpers/cluster-cli.js "$@" ;;
esac
