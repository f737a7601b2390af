#!/bin/bash
# The whole test suite, on a fresh Debian 12 machine of this kind: installs its dependencies,
# builds, starts a real Keystone + Neutron + Nova (fake driver) on loopback, builds (once, cached in
# /var/cache/tcnp/k8s) a real Kubernetes control plane, and runs every layer the machine supports
# (unit, emulator, contract, netns, e2e, realcloud, kube). Root is needed for the netns/e2e layers,
# the real cloud and the control plane; without root those layers are skipped with a reason.
#   scripts/test.sh [--no-realcloud]
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
say() { echo "[test $(( $(date +%s) - t0 ))s] $*"; }

realcloud=1
[ "${1:-}" = "--no-realcloud" ] && realcloud=0
[ "$(id -u)" = 0 ] || realcloud=0

if [ "$(id -u)" = 0 ]; then
  if [ $realcloud = 1 ]; then scripts/setup-deps.sh; else scripts/setup-deps.sh --no-cloud; fi
else
  [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
fi

rc_pid=""
k8s_pid=""
cleanup() {
  if [ -n "$rc_pid" ]; then kill "$rc_pid" 2>/dev/null || true; fi
  if [ -n "$k8s_pid" ]; then kill "$k8s_pid" 2>/dev/null || true; fi
  if [ $realcloud = 1 ]; then scripts/realcloud/teardown.sh >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

if [ $realcloud = 1 ]; then
  say "starting the real cloud in the background (log: .tmp/realcloud-setup.log)"
  mkdir -p .tmp
  scripts/realcloud/setup.sh > .tmp/realcloud-setup.log 2>&1 &
  rc_pid=$!
fi

# The real Kubernetes control plane (kube-apiserver, kube-controller-manager from Debian's source):
# built once into /var/cache/tcnp/k8s, outside the work tree; later runs find it there at once.
if [ "$(id -u)" = 0 ]; then
  say "building the Kubernetes control plane, kube-proxy, e2e.test and the e2e images in the background if not cached (log: .tmp/k8s-build.log)"
  mkdir -p .tmp
  (scripts/k8s/build.sh && scripts/k8s/build-e2e.sh && scripts/k8s/e2e-images.sh) > .tmp/k8s-build.log 2>&1 &
  k8s_pid=$!
fi

# As root every layer is required: a missing prerequisite fails the run instead of skipping.
[ "$(id -u)" = 0 ] && export TCNP_TEST_REQUIRE_ALL=1

say "building"
npm run --silent build
scripts/build-cnicaller.sh >/dev/null
say "type-checking"
npx tsc --noEmit -p .
say "format, lint and layers (prettier, eslint, dependency-cruiser)"
npm run --silent lint

# Tests keep their state in their own directories: the machine's default ones (what a production node
# uses) must be as they were. A process that lost the test's environment (a runtime's helper) would
# write there.
host_state() { ls -d /var/lib/tcnp /run/tcnp/locks /var/log/tcnp 2>/dev/null || true; }
host_before=$(host_state)
check_host_state() {
  local now; now=$(host_state)
  if [ "$now" != "$host_before" ]; then
    echo "a test wrote to the machine's default tcnp state: before [$host_before], now [$now]"; exit 1
  fi
}

layers=()
for d in build/src build/test/unit build/test/emulator build/test/contract build/test/netns build/test/e2e; do
  [ -d "$d" ] && layers+=("$d")
done
say "unit, emulator, contract, netns and e2e layers: ${layers[*]}"
node --test "${layers[@]}"
check_host_state

if [ $realcloud = 1 ]; then
  say "waiting for the real cloud"
  if ! wait "$rc_pid"; then rc_pid=""; tail -30 .tmp/realcloud-setup.log; echo "real cloud failed to start"; exit 1; fi
  rc_pid=""
  say "realcloud layer"
  # shellcheck disable=SC1091
  . scripts/realcloud/env.sh
  node --test build/test/realcloud
else
  say "realcloud layer skipped (needs root)"
fi
if [ -n "$k8s_pid" ]; then
  say "waiting for the Kubernetes control plane build"
  if ! wait "$k8s_pid"; then k8s_pid=""; tail -30 .tmp/k8s-build.log; echo "the control plane build failed"; exit 1; fi
  k8s_pid=""
  say "kube layer (a real kube-apiserver + etcd; kubelets with containerd in lab VMs; Kubernetes' own e2e network tests on a two-node lab cluster)"
  node --test build/test/kube
else
  say "kube layer skipped (needs root)"
fi
check_host_state
say "all layers passed"
