#!/bin/bash
# The main job on a fresh Debian 12 machine of this kind: installs what the lab needs (Debian and
# npm packages), builds dist/tcnp and the libcni caller when the sources changed, then runs
# `tcnp lab up` (a whole small cloud on this kernel, pods in both modes, the connectivity matrix).
# Needs root. Arguments go to `tcnp lab up` (--vms N, --dir DIR). Take it down: dist/tcnp lab down
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "scripts/lab.sh needs root (it creates network namespaces)" >&2; exit 2; fi
scripts/setup-deps.sh --no-cloud
if [ ! -x dist/tcnp ] || [ -n "$(find src native scripts/build.mjs package-lock.json -newer dist/tcnp -print -quit)" ]; then
  echo "[lab.sh] building dist/tcnp"
  npm run --silent build
fi
scripts/build-cnicaller.sh >/dev/null
exec dist/tcnp lab up "$@"
