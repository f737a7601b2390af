#!/bin/bash
# Stop what scripts/realcloud/setup.sh started: the PIDs in run/*.pid and their descendants, each
# only if its command line still is what we started. SIGTERM, then SIGKILL after 15 s.
# PURGE=1 also removes the state.
set -u
BASE=${TCNP_REALCLOUD_DIR:-/var/tmp/tcnp-realcloud}
RUN=$BASE/run
declare -A EXPECT=([mariadbd]=mariadbd [keystone]=uwsgi [neutron-server]=neutron-server [nova-api]=uwsgi [placement]=uwsgi
  [nova-conductor]=nova-conductor [nova-scheduler]=nova-scheduler [nova-compute]=nova.cmd.compute [glance-api]=glance-api
  [rabbitmq]=rabbitmq-server [epmd]=epmd)
descendants() { local k; for k in $(pgrep -P "$1" 2>/dev/null); do echo "$k"; descendants "$k"; done; }
alive() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo X); [ "$st" != X ] && [ "$st" != Z ]; }
for name in nova-compute nova-conductor nova-scheduler nova-api placement glance-api neutron-server keystone rabbitmq epmd mariadbd; do
  f=$RUN/$name.pid
  [ -f "$f" ] || continue
  pid=$(cat "$f"); rm -f "$f"
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || continue
  cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)
  [[ "$cmd" == *"${EXPECT[$name]}"* ]] || { echo "$name: pid $pid is no longer ours, left alone"; continue; }
  kids=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    any=0; for p in $pid $kids; do alive "$p" && any=1; done
    [ $any = 0 ] && break; sleep 0.25
  done
  for p in $pid $kids; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
  echo "$name: stopped"
done
[ "${PURGE:-0}" = 1 ] && rm -rf "$BASE/data" "$BASE/run" "$BASE/etc"
exit 0
