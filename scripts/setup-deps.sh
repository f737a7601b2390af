#!/bin/bash
# Install what tcnp's build, tests and lab need on a Debian 12 machine: Debian packages (only those
# missing) and npm packages (from package-lock.json). Safe to re-run.
#   scripts/setup-deps.sh            everything
#   scripts/setup-deps.sh --no-cloud skip the real-cloud packages (Keystone, Neutron, Nova, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

PKGS=(gcc make iproute2 iptables nftables iputils-ping netcat-openbsd socat curl jq
      containernetworking-plugins golang-go golang-github-appc-cni-dev containerd runc busybox-static
      umoci skopeo dpkg-dev podman conmon prometheus docker-registry)
CLOUD_PKGS=(keystone neutron-server mariadb-server python3-pymysql python3-nova nova-api nova-conductor
            nova-scheduler placement-api glance-api rabbitmq-server)
[ "${1:-}" = "--no-cloud" ] || PKGS+=("${CLOUD_PKGS[@]}")

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[deps] installing Debian packages: ${missing[*]}"
  # No package may start its daemon during installation (rabbitmq would listen on 0.0.0.0):
  # the Debian policy-rc.d protocol, only if the image does not already deny.
  cleanup_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; cleanup_policy=1
  fi
  apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null
  apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
  [ $cleanup_policy = 0 ] || rm -f /usr/sbin/policy-rc.d
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[deps] installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi
