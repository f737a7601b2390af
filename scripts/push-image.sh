#!/bin/bash
# Push the tcnp image to a registry, in one command and without a container daemon (skopeo):
#   scripts/push-image.sh REGISTRY/REPOSITORY[:TAG] [skopeo copy options, e.g. --dest-creds USER:PASS
#                         or --dest-authfile FILE; --dest-tls-verify=false for a registry without TLS]
# Builds the image first (scripts/image.sh) unless build/image (or $TCNP_IMAGE_DIR) holds this
# version. TAG defaults to the version. Prints the digest the registry stored and the lines for an
# overlay's `images:` (deploy/kubernetes/examples).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] && [ "${1#-}" = "$1" ] || { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
dest=$1; shift
command -v skopeo >/dev/null || { echo "push-image: skopeo is missing (scripts/setup-deps.sh)" >&2; exit 1; }
version=$(node -p 'require("./package.json").version')
# A TAG is what follows the last ':' after the last '/' (a registry's port is not one).
case "${dest##*/}" in *:*) ;; *) dest="$dest:$version" ;; esac
img=${TCNP_IMAGE_DIR:-build/image}
if ! skopeo inspect "oci:$img/oci:$version" >/dev/null 2>&1; then
  [ -x dist/tcnp ] || npm run --silent build
  bash scripts/image.sh "$img" >/dev/null
fi
digestfile=$(mktemp)
trap 'rm -f "$digestfile"' EXIT
skopeo copy -q --digestfile "$digestfile" "$@" "oci:$img/oci:$version" "docker://$dest"
digest=$(cat "$digestfile")
repo=${dest%:*}
echo "pushed $dest ($digest)"
echo "overlay (kustomization.yaml):"
echo "images:"
echo "  - name: localhost/tcnp"
echo "    newName: $repo"
echo "    digest: $digest"
