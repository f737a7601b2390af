#!/bin/bash
# Start a real OpenStack on loopback from Debian 12's packages, for tcnp's contract tests:
# MariaDB (unix socket only), Keystone (uwsgi), Neutron (ML2, no agents), RabbitMQ, Glance,
# Placement and Nova with the fake virt driver. Everything lives under $TCNP_REALCLOUD_DIR
# (default /var/tmp/tcnp-realcloud); every daemon's PID is recorded in run/ and teardown.sh stops
# exactly those. Packages come from scripts/setup-deps.sh. Prints per-step timings.
#   Keystone  http://127.0.0.1:5000/v3   admin / secret, project admin, domain Default
#   Neutron   http://127.0.0.1:9696      Nova http://127.0.0.1:8774/v2.1
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${TCNP_REALCLOUD_DIR:-/var/tmp/tcnp-realcloud}
PW=secret
KS=http://127.0.0.1:5000
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin   # Debian's python3, not a pyenv one
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV || true
ETC=$BASE/etc DATA=$BASE/data RUN=$BASE/run LOGS=$BASE/logs SOCK=$BASE/run/mysqld.sock

T0=$(date +%s.%N)
stamp() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
step() { local s; s=$(date +%s.%N); "$@"; printf '[realcloud] %-26s %6ss\n' "$1" "$(stamp "$s")"; }
die() { echo "[realcloud] FATAL: $*" >&2; exit 1; }
start() { # start NAME cmd...: detached, PID recorded
  local name=$1; shift
  nohup "$@" > "$LOGS/$name.out" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
}
wait_http() { # wait_http URL SECONDS
  local i
  for i in $(seq 1 $(( $2 * 4 ))); do
    case "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true)" in 2*|3*|401) return 0 ;; esac
    sleep 0.25
  done
  return 1
}

for p in keystone neutron-server mariadb-server python3-nova nova-api placement-api glance-api rabbitmq-server; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || die "package $p is missing (run scripts/setup-deps.sh)"
done

"$HERE/teardown.sh" >/dev/null 2>&1 || true
rm -rf "$ETC" "$DATA" "$RUN" "$LOGS"
mkdir -p "$ETC"/{mysql,keystone,neutron,glance,placement,nova,rabbitmq} "$DATA"/{mysql,fernet,credential,neutron/lock,glance/images,nova/instances,nova/lock,rabbitmq} "$RUN" "$LOGS"
DB() { echo "mysql+pymysql://os:$PW@localhost/$1?unix_socket=$SOCK&charset=utf8"; }

mariadb_up() {
  cat > "$ETC/mysql/my.cnf" <<CNF
[mysqld]
user = root
datadir = $DATA/mysql
socket = $SOCK
pid-file = $RUN/mysqld.pid
log-error = $LOGS/mysqld.err
skip-networking
skip-name-resolve
skip-log-bin
character-set-server = utf8
collation-server = utf8_general_ci
innodb_buffer_pool_size = 256M
innodb_flush_log_at_trx_commit = 0
innodb_doublewrite = 0
max_connections = 500
[client]
socket = $SOCK
CNF
  mariadb-install-db --defaults-file="$ETC/mysql/my.cnf" --auth-root-authentication-method=normal --skip-test-db > "$LOGS/mariadb-install.log" 2>&1
  start mariadbd /usr/sbin/mariadbd --defaults-file="$ETC/mysql/my.cnf"
  local i
  for i in $(seq 1 120); do mariadb-admin --defaults-file="$ETC/mysql/my.cnf" -uroot ping >/dev/null 2>&1 && break; sleep 0.25; done
  {
    for d in keystone neutron nova nova_api nova_cell0 placement glance; do echo "CREATE DATABASE $d CHARACTER SET utf8;"; done
    echo "CREATE USER 'os'@'localhost' IDENTIFIED BY '$PW'; GRANT ALL PRIVILEGES ON *.* TO 'os'@'localhost'; FLUSH PRIVILEGES;"
  } | mariadb --defaults-file="$ETC/mysql/my.cnf" -uroot
}

keystone_up() {
  cat > "$ETC/keystone/keystone.conf" <<CNF
[DEFAULT]
log_file = $LOGS/keystone.log
[database]
connection = $(DB keystone)
[token]
provider = fernet
expiration = 86400
[fernet_tokens]
key_repository = $DATA/fernet
[fernet_receipts]
key_repository = $DATA/fernet
[credential]
key_repository = $DATA/credential
[cache]
enabled = false
[identity]
password_hash_rounds = 4
CNF
  local km="keystone-manage --config-file $ETC/keystone/keystone.conf"
  { $km db_sync && $km fernet_setup --keystone-user root --keystone-group root && $km credential_setup --keystone-user root --keystone-group root &&
    $km bootstrap --bootstrap-password "$PW" --bootstrap-username admin --bootstrap-project-name admin --bootstrap-role-name admin \
      --bootstrap-service-name keystone --bootstrap-region-id RegionOne --bootstrap-admin-url $KS/v3/ --bootstrap-internal-url $KS/v3/ --bootstrap-public-url $KS/v3/
  } > "$LOGS/keystone-manage.log" 2>&1 || die "keystone-manage failed (see $LOGS/keystone-manage.log)"
  # Connection: close — keystonemiddleware's keep-alive sockets to uwsgi get reset otherwise.
  start keystone uwsgi --plugins python3 --http-socket 127.0.0.1:5000 --wsgi-file /usr/bin/keystone-wsgi-public \
    --env OS_KEYSTONE_CONFIG_FILES="$ETC/keystone/keystone.conf" --master --processes 2 --threads 4 --enable-threads \
    --die-on-term --no-orphans --lazy-apps --need-app --buffer-size 65535 --add-header "Connection: close" --logto "$LOGS/keystone-uwsgi.log"
  wait_http $KS/v3 120 || die "keystone did not answer"
}

TOKEN=""
token() {
  curl -sf -i -X POST -H 'Content-Type: application/json' $KS/v3/auth/tokens -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"name":"Default"},"password":"'"$PW"'"}}},"scope":{"project":{"name":"admin","domain":{"name":"Default"}}}}}' \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="x-subject-token"{print $2}'
}
kpost() { curl -sf -X POST -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' "$KS/v3/$1" -d "$2"; }

identities() {
  TOKEN=$(token)
  [ -n "$TOKEN" ] || die "no admin token"
  local svc admin_role service_role
  svc=$(kpost projects '{"project":{"name":"service","domain_id":"default"}}' | jq -r .project.id)
  admin_role=$(curl -sf -H "X-Auth-Token: $TOKEN" "$KS/v3/roles?name=admin" | jq -r '.roles[0].id')
  service_role=$(kpost roles '{"role":{"name":"service"}}' | jq -r .role.id)
  for u in neutron nova placement glance; do
    local uid
    uid=$(kpost users '{"user":{"name":"'$u'","password":"'"$PW"'","domain_id":"default"}}' | jq -r .user.id)
    curl -sf -X PUT -H "X-Auth-Token: $TOKEN" "$KS/v3/projects/$svc/users/$uid/roles/$admin_role" >/dev/null
    curl -sf -X PUT -H "X-Auth-Token: $TOKEN" "$KS/v3/projects/$svc/users/$uid/roles/$service_role" >/dev/null
  done
  local svcdef
  for svcdef in "neutron network http://127.0.0.1:9696" "nova compute http://127.0.0.1:8774/v2.1" "placement placement http://127.0.0.1:8778" "glance image http://127.0.0.1:9292"; do
    set -- $svcdef
    local sid
    sid=$(kpost services '{"service":{"name":"'$1'","type":"'$2'","enabled":true}}' | jq -r .service.id)
    for i in public internal admin; do kpost endpoints '{"endpoint":{"service_id":"'$sid'","interface":"'$i'","url":"'$3'","region_id":"RegionOne"}}' >/dev/null; done
  done
}

authtoken() { # the [keystone_authtoken]-style block for a service user; $3: the service's type,
  # which keystonemiddleware needs to enforce application credentials' access rules
  printf '[%s]\nwww_authenticate_uri = %s\nauth_url = %s\nauth_type = password\nproject_domain_name = Default\nuser_domain_name = Default\nproject_name = service\nusername = %s\npassword = %s\nregion_name = RegionOne\n' "$1" "$KS" "$KS" "$2" "$PW"
  if [ -n "${3:-}" ]; then printf 'service_type = %s\n' "$3"; fi
}

neutron_up() {
  cp /etc/neutron/api-paste.ini "$ETC/neutron/"
  {
    cat <<CNF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 9696
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
api_paste_config = $ETC/neutron/api-paste.ini
state_path = $DATA/neutron
log_file = $LOGS/neutron-server.log
transport_url = fake:/
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
max_routes = 30
[database]
connection = $(DB neutron)
[oslo_concurrency]
lock_path = $DATA/neutron/lock
CNF
    authtoken keystone_authtoken neutron network
    authtoken nova nova
  } > "$ETC/neutron/neutron.conf"
  cat > "$ETC/neutron/ml2_conf.ini" <<CNF
[ml2]
type_drivers = flat,vlan,vxlan,local
tenant_network_types = vxlan
mechanism_drivers = tcnp_bindall
extension_drivers = port_security
[ml2_type_flat]
flat_networks = *
[ml2_type_vxlan]
vni_ranges = 1:1000
[securitygroup]
enable_security_group = true
CNF
  local conf="--config-file $ETC/neutron/neutron.conf --config-file $ETC/neutron/ml2_conf.ini"
  neutron-db-manage $conf upgrade heads > "$LOGS/neutron-db-manage.log" 2>&1 || die "neutron-db-manage failed"
  start neutron-server env PYTHONPATH="$HERE/pylib" /usr/bin/neutron-server $conf
  wait_http http://127.0.0.1:9696/ 180 || die "neutron-server did not answer (see $LOGS/neutron-server.log)"
}

rabbit_up() {
  echo '[].' > "$ETC/rabbitmq/enabled_plugins"
  : > "$ETC/rabbitmq/rabbitmq-env.conf"
  printf 'listeners.tcp.1 = 127.0.0.1:5672\nloopback_users.guest = true\nlog.console = false\n' > "$ETC/rabbitmq/rabbitmq.conf"
  RENV=(HOME="$DATA/rabbitmq" ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=4369 RABBITMQ_CONF_ENV_FILE="$ETC/rabbitmq/rabbitmq-env.conf"
    RABBITMQ_NODENAME=rabbit@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=5672 RABBITMQ_DIST_PORT=25672
    RABBITMQ_CONFIG_FILE="$ETC/rabbitmq/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$ETC/rabbitmq/enabled_plugins"
    RABBITMQ_MNESIA_BASE="$DATA/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$LOGS/rabbitmq" RABBITMQ_PID_FILE="$RUN/rabbitmq-beam.pid"
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}")
  start epmd env "${RENV[@]}" epmd -address 127.0.0.1 -port 4369
  sleep 0.3
  start rabbitmq env "${RENV[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server
  local i
  for i in $(seq 1 240); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && return 0; sleep 0.25; done
  die "rabbitmq did not start"
}

glance_up() {
  cp /etc/glance/glance-api-paste.ini "$ETC/glance/"
  {
    cat <<CNF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 9292
workers = 1
log_file = $LOGS/glance-api.log
enabled_backends = fs:file
[database]
connection = $(DB glance)
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $DATA/glance/images
[os_glance_staging_store]
filesystem_store_datadir = $DATA/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = $DATA/glance/tasks
[paste_deploy]
flavor = keystone
config_file = $ETC/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = $DATA/glance
CNF
    authtoken keystone_authtoken glance
  } > "$ETC/glance/glance-api.conf"
  glance-manage --config-file "$ETC/glance/glance-api.conf" db_sync > "$LOGS/glance-manage.log" 2>&1 || die "glance db_sync failed"
  start glance-api /usr/bin/glance-api --config-file "$ETC/glance/glance-api.conf"
  wait_http http://127.0.0.1:9292/ 120 || die "glance did not answer"
  TOKEN=$(token)
  local img="" i
  for i in 1 2 3 4 5; do
    img=$(curl -sf -X POST -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' http://127.0.0.1:9292/v2/images \
      -d '{"name":"tcnp-fake","disk_format":"raw","container_format":"bare","visibility":"public"}' | jq -r .id || true)
    [ -n "$img" ] && break
    sleep 1
  done
  [ -n "$img" ] || die "could not create an image"
  head -c 1048576 /dev/zero | curl -sf -X PUT -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/octet-stream' --data-binary @- "http://127.0.0.1:9292/v2/images/$img/file"
  echo "$img" > "$RUN/image-id"
}

placement_up() {
  { printf '[DEFAULT]\nlog_file = %s\n[api]\nauth_strategy = keystone\n[placement_database]\nconnection = %s\n' "$LOGS/placement.log" "$(DB placement)"; authtoken keystone_authtoken placement; } > "$ETC/placement/placement.conf"
  placement-manage --config-file "$ETC/placement/placement.conf" db sync > "$LOGS/placement-manage.log" 2>&1 || die "placement db sync failed"
  start placement uwsgi --plugins python3 --http-socket 127.0.0.1:8778 --wsgi-file /usr/bin/placement-api --env OS_PLACEMENT_CONFIG_DIR="$ETC/placement" \
    --master --processes 1 --threads 4 --enable-threads --die-on-term --no-orphans --lazy-apps --need-app --buffer-size 65535 --add-header "Connection: close" --logto "$LOGS/placement-uwsgi.log"
  wait_http http://127.0.0.1:8778/ 120 || die "placement did not answer"
}

nova_up() {
  cp /etc/nova/api-paste.ini "$ETC/nova/"
  {
    cat <<CNF
[DEFAULT]
host = fake-compute-1
my_ip = 127.0.0.1
state_path = $DATA/nova
instances_path = $DATA/nova/instances
log_file = $LOGS/nova-api.log
transport_url = rabbit://guest:guest@127.0.0.1:5672/
compute_driver = fake.FakeDriver
osapi_compute_listen = 127.0.0.1
enabled_apis = osapi_compute
vif_plugging_is_fatal = false
vif_plugging_timeout = 0
use_rootwrap_daemon = false
[api]
auth_strategy = keystone
[api_database]
connection = $(DB nova_api)
[database]
connection = $(DB nova)
[glance]
api_servers = http://127.0.0.1:9292
[scheduler]
discover_hosts_in_cells_interval = 2
[oslo_concurrency]
lock_path = $DATA/nova/lock
[oslo_messaging_notifications]
driver = noop
[wsgi]
api_paste_config = $ETC/nova/api-paste.ini
[vnc]
enabled = false
[spice]
enabled = false
CNF
    authtoken keystone_authtoken nova compute
    authtoken neutron neutron | sed 's/^\[neutron\]/[neutron]\nservice_metadata_proxy = false/'
    authtoken placement placement
  } > "$ETC/nova/nova.conf"
  local conf=(--config-file "$ETC/nova/nova.conf")
  { nova-manage "${conf[@]}" api_db sync && nova-manage "${conf[@]}" cell_v2 map_cell0 --database_connection "$(DB nova_cell0)" &&
    nova-manage "${conf[@]}" cell_v2 create_cell --name cell1 && nova-manage "${conf[@]}" db sync; } > "$LOGS/nova-manage.log" 2>&1 || die "nova-manage failed"
  # nova-api monkey-patches eventlet: more than one thread per process makes RPC calls hang.
  start nova-api uwsgi --plugins python3 --http-socket 127.0.0.1:8774 --wsgi-file /usr/bin/nova-api-wsgi --env OS_NOVA_CONFIG_DIR="$ETC/nova" \
    --master --processes 2 --threads 1 --enable-threads --die-on-term --no-orphans --lazy-apps --need-app --buffer-size 65535 --add-header "Connection: close" --logto "$LOGS/nova-api-uwsgi.log"
  start nova-conductor /usr/bin/nova-conductor "${conf[@]}" --log-file "$LOGS/nova-conductor.log"
  start nova-scheduler /usr/bin/nova-scheduler "${conf[@]}" --log-file "$LOGS/nova-scheduler.log"
  # No nova-compute binary without the nova-compute package (which pulls a hypervisor).
  start nova-compute /usr/bin/python3 -c 'import sys; sys.argv[0] = "nova-compute"; from nova.cmd.compute import main; sys.exit(main())' "${conf[@]}" --log-file "$LOGS/nova-compute.log"
  wait_http http://127.0.0.1:8774/ 180 || die "nova-api did not answer"
  TOKEN=$(token)
  local i up=""
  for i in $(seq 1 240); do
    up=$(curl -s -H "X-Auth-Token: $TOKEN" 'http://127.0.0.1:8774/v2.1/os-services?binary=nova-compute' | jq -r '.services[0].state // empty' 2>/dev/null || true)
    [ "$up" = up ] && break
    sleep 0.5
  done
  [ "$up" = up ] || die "nova-compute did not report up"
  for i in $(seq 1 120); do
    [ "$(curl -s -H "X-Auth-Token: $TOKEN" -H 'OpenStack-API-Version: placement 1.6' http://127.0.0.1:8778/resource_providers | jq '.resource_providers | length' 2>/dev/null || echo 0)" -ge 1 ] && break
    sleep 0.5
  done
  nova-manage "${conf[@]}" cell_v2 discover_hosts >> "$LOGS/nova-manage.log" 2>&1
  curl -sf -X POST -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' http://127.0.0.1:8774/v2.1/flavors \
    -d '{"flavor":{"name":"tcnp.fake","ram":64,"vcpus":1,"disk":1,"id":"tcnp-fake"}}' > /dev/null
}

step mariadb_up
step keystone_up
step identities
step neutron_up
step rabbit_up
step glance_up
step placement_up
step nova_up
cat > "$BASE/env.sh" <<ENV
# Written by scripts/realcloud/setup.sh: where the real cloud is, for the realcloud test layer.
export TCNP_REAL_AUTH_URL=$KS/v3
export TCNP_REAL_USER=admin TCNP_REAL_PASSWORD=$PW TCNP_REAL_PROJECT=admin TCNP_REAL_DOMAIN=Default
export TCNP_REAL_IMAGE=$(cat "$RUN/image-id") TCNP_REAL_FLAVOR=tcnp-fake
ENV
printf '[realcloud] %-26s %6ss\n' TOTAL "$(stamp "$T0")"
