# Source to point the realcloud test layer at the cloud setup.sh started.
BASE=${TCNP_REALCLOUD_DIR:-/var/tmp/tcnp-realcloud}
if [ -f "$BASE/env.sh" ]; then . "$BASE/env.sh"; fi
