#!/bin/bash
# The tcnp OCI image, built without a container daemon (umoci + skopeo): a root filesystem with
# only what the executable needs: tcnp (Node single executable) and tcnp-cni (static Go), the
# shared libraries they load, iptables (nft and legacy, for the masquerade chains) with its
# extensions, nft and nsenter (NetworkPolicy). Entrypoint /usr/local/bin/tcnp; the DaemonSet runs `install` and `agent`.
#   scripts/image.sh [OUT]     default OUT build/image; prints the size and the contents
# Result: OUT/tcnp-image.tar (docker-archive, for `ctr images import`), OUT/oci (OCI layout).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build/image}
for t in umoci skopeo; do command -v $t >/dev/null || { echo "image: $t is missing (scripts/setup-deps.sh)" >&2; exit 1; }; done
[ -x dist/tcnp ] && [ -x dist/tcnp-cni ] || { echo "image: dist/tcnp and dist/tcnp-cni first (npm run build)" >&2; exit 1; }
version=$(node -p 'require("./package.json").version')
ref="localhost/tcnp:${version}"
rm -rf "$OUT" && mkdir -p "$OUT"
root="$OUT/rootfs"
mkdir -p "$root"/{usr/local/bin,usr/sbin,etc,tmp,run,var/lib/tcnp,var/log/tcnp}
chmod 1777 "$root/tmp"

cp dist/tcnp dist/tcnp-cni "$root/usr/local/bin/"
# iptables: both backends; `iptables` is the nft one (Debian 12's default), as on the nodes.
for b in xtables-nft-multi xtables-legacy-multi; do cp "/usr/sbin/$b" "$root/usr/sbin/"; done
for n in iptables iptables-save iptables-restore; do
  ln -s xtables-nft-multi "$root/usr/sbin/$n"
  ln -s xtables-legacy-multi "$root/usr/sbin/$n-legacy"
  ln -s xtables-nft-multi "$root/usr/sbin/$n-nft"
done
# nft and nsenter: the agent's NetworkPolicy rules (on the node, and inside eni pods' namespaces).
mkdir -p "$root/usr/bin" && cp /usr/sbin/nft "$root/usr/sbin/" && cp /usr/bin/nsenter "$root/usr/bin/"
xt=/usr/lib/x86_64-linux-gnu/xtables
mkdir -p "$root$xt" && cp "$xt"/*.so "$root$xt/"
cp /etc/protocols /etc/services /etc/ethertypes "$root/etc/" 2>/dev/null || true
# The CA bundle, for a Keystone whose certificate a public CA signed (caCert names any other).
mkdir -p "$root/etc/ssl/certs" && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
# The shared libraries of everything above, with their symlinks resolved.
libs=$( (ldd dist/tcnp; ldd /usr/sbin/nft; ldd /usr/bin/nsenter; ldd /usr/sbin/xtables-nft-multi; ldd /usr/sbin/xtables-legacy-multi; for so in "$xt"/*.so; do ldd "$so"; done) \
  | awk '/=>/ {print $3} /^\s*\/lib/ {print $1}' | sort -u)
for l in $libs; do
  [ -f "$l" ] || continue
  mkdir -p "$root$(dirname "$l")"
  cp -L "$l" "$root$l"
done
# /lib64 and /lib are symlinks on Debian 12 (merged /usr): keep the same layout.
for d in lib lib64; do
  if [ -d "$root/$d" ]; then mkdir -p "$root/usr/$d" && cp -a "$root/$d/." "$root/usr/$d/" && rm -rf "${root:?}/$d"; fi
  ln -s "usr/$d" "$root/$d"
done
# The image runs: the Node executable starts, the native addons load, iptables answers.
chroot "$root" /usr/local/bin/tcnp version >/dev/null
chroot "$root" /usr/sbin/iptables-nft --version >/dev/null
chroot "$root" /usr/sbin/nft --version >/dev/null

umoci init --layout "$OUT/oci"
umoci new --image "$OUT/oci:$version"
umoci unpack --image "$OUT/oci:$version" "$OUT/bundle" >/dev/null
cp -a "$root/." "$OUT/bundle/rootfs/"
umoci repack --image "$OUT/oci:$version" "$OUT/bundle"
umoci config --image "$OUT/oci:$version" --config.entrypoint /usr/local/bin/tcnp --config.cmd agent \
  --config.workingdir / --config.env PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --author tcnp --clear=config.labels --config.label "org.opencontainers.image.version=$version"
umoci gc --layout "$OUT/oci"
skopeo copy -q "oci:$OUT/oci:$version" "docker-archive:$OUT/tcnp-image.tar:$ref"
rm -rf "$OUT/bundle"

echo "image $ref: $OUT/tcnp-image.tar ($(du -h "$OUT/tcnp-image.tar" | cut -f1), uncompressed root filesystem $(du -sh "$root" | cut -f1))"
echo "contents:"
(cd "$root" && find . -type f ! -path "./usr/lib/x86_64-linux-gnu/xtables/*" -printf '%p %s\n' | sort |
  awk '{printf "  %-52s %9.1f KiB\n", $1, $2/1024}')
echo "  + $(find "$root$xt" -type f | wc -l) iptables extensions in $xt ($(du -sh "$root$xt" | cut -f1))"
