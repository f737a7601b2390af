#!/bin/bash
# The images Kubernetes' e2e network tests run, built offline and without a daemon (umoci +
# skopeo), under the names the 1.20 e2e framework uses, as docker archives for `ctr images import`:
#   agnhost  k8s.gcr.io/e2e-test-images/agnhost:2.21  agnhost (built from the source tree by
#            build-e2e.sh, static) with what the tests run in it: a shell and tools (Debian's
#            busybox-static), curl, nc (OpenBSD), ss; its certificates for porter; /uploads
#   busybox  docker.io/library/busybox:1.29            busybox-static
#   pause    k8s.gcr.io/pause:3.2                      busybox sleeping (the kubelet's sandbox image)
# Cached in $TCNP_K8S_DIR/images (default /var/cache/tcnp/k8s/images); a second run only checks.
#   scripts/k8s/e2e-images.sh      prints the directory when done
set -euo pipefail
K=${TCNP_K8S_DIR:-/var/cache/tcnp/k8s}
OUT=$K/images
declare -A REF=([agnhost]=k8s.gcr.io/e2e-test-images/agnhost:2.21 [busybox]=docker.io/library/busybox:1.29
  [pause]=k8s.gcr.io/pause:3.2)
# A change of this script makes the images again.
stamp=$(sha256sum "$0" | cut -c1-16)
done_all() {
  for n in agnhost busybox pause; do [ -s "$OUT/$n.tar" ] || return 1; done
  [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$stamp" ]
}
if done_all; then echo "$OUT"; exit 0; fi
for t in umoci skopeo busybox curl nc.openbsd ss; do
  command -v $t >/dev/null || { echo "e2e-images: $t is missing (scripts/setup-deps.sh)" >&2; exit 1; }
done
[ -x "$K/bin/agnhost" ] || "$(dirname "$0")/build-e2e.sh" >/dev/null
src=$(ls -d "$K"/src/kubernetes-1.20.*/ | head -1)
work=$(mktemp -d "$K/tmp/images.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

busybox_into() { # root: busybox and a link per applet in /bin
  mkdir -p "$1/bin" "$1/tmp" "$1/etc" && chmod 1777 "$1/tmp"
  cp /bin/busybox "$1/bin/busybox"
  for a in $(/bin/busybox --list); do [ -e "$1/bin/$a" ] || ln -s busybox "$1/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$1/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$1/etc/group"
}
with_libs() { # root, binary...: copy each binary's shared libraries (merged /usr layout)
  local root=$1; shift
  for l in $(for b in "$@"; do ldd "$b"; done | awk '/=>/ {print $3} /^\s*\/lib/ {print $1}' | sort -u); do
    [ -f "$l" ] || continue
    local d="$root/usr$(dirname "${l#/usr}")"
    mkdir -p "$d" && cp -L "$l" "$d/"
  done
  for d in lib lib64; do [ -e "$root/$d" ] || ln -s "usr/$d" "$root/$d"; done
}
pack() { # name, root, entrypoint (JSON-less: one word), cmd words...
  local name=$1 root=$2 entry=$3; shift 3
  local oci="$work/$name-oci"
  umoci init --layout "$oci"
  umoci new --image "$oci:img"
  umoci unpack --image "$oci:img" "$work/$name-bundle" >/dev/null
  cp -a "$root/." "$work/$name-bundle/rootfs/"
  umoci repack --image "$oci:img" "$work/$name-bundle"
  local args=(--config.workingdir / --config.env PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin)
  [ -z "$entry" ] || args+=(--config.entrypoint "$entry")
  for c in "$@"; do args+=(--config.cmd "$c"); done
  umoci config --image "$oci:img" "${args[@]}" --author tcnp
  rm -f "$OUT/$name.tar"
  skopeo copy -q "oci:$oci:img" "docker-archive:$OUT/$name.tar:${REF[$name]}"
  echo "image ${REF[$name]}: $OUT/$name.tar ($(du -h "$OUT/$name.tar" | cut -f1))" >&2
}

r="$work/agnhost-root"
busybox_into "$r"
mkdir -p "$r/usr/bin" "$r/uploads"
cp "$K/bin/agnhost" "$r/agnhost" && ln -s agnhost "$r/agnhost-2"
cp "$src/test/images/agnhost/porter/localhost.crt" "$src/test/images/agnhost/porter/localhost.key" "$r/"
cp "$(command -v curl)" "$r/usr/bin/curl"
cp "$(command -v nc.openbsd)" "$r/usr/bin/nc" && rm -f "$r/bin/nc"
# The shell is dash: Debian's busybox-static shell runs its own applets before PATH, so `nc -z` in a
# test's `sh -c` would be busybox's nc (no -z, no -u) whatever PATH says.
rm -f "$r/bin/sh" && cp /bin/dash "$r/bin/sh"
cp "$(command -v ss)" "$r/usr/bin/ss"
with_libs "$r" "$r/usr/bin/curl" "$r/usr/bin/nc" "$r/usr/bin/ss" "$r/bin/sh"
mkdir -p "$r/etc/ssl/certs" && cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
chroot "$r" /usr/bin/curl --version >/dev/null
chroot "$r" /agnhost --help >/dev/null
chroot "$r" /bin/sh -c 'nc -h 2>&1 | grep -q -- -z'
pack agnhost "$r" /agnhost pause

r="$work/busybox-root"
busybox_into "$r"
pack busybox "$r" "" sh

r="$work/pause-root"
busybox_into "$r"
pack pause "$r" /bin/sleep 2147483647
echo "$stamp" > "$OUT/stamp"
echo "$OUT"
