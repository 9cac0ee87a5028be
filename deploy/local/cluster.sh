#!/usr/bin/env bash
# A local Strata cluster in one command: 3 storage nodes (RF=3), 2 ingestors, 2 queriers.
#
#   deploy/local/cluster.sh up DIR       start it; data and logs under DIR
#   deploy/local/cluster.sh down DIR     stop it (SIGTERM, then SIGKILL after 30 s)
#   deploy/local/cluster.sh kill DIR N   SIGKILL storage node N (1-3)
#   deploy/local/cluster.sh start DIR N  start storage node N again
#   deploy/local/cluster.sh add DIR      start one more storage node (4, 5, ...: gRPC at
#                                        GRPC_PORT_BASE+N, HTTP at HTTP_PORT_BASE+N) that
#                                        joins the cluster and gets an id from it; replicas
#                                        then move to it until every node holds as many ±1
#   deploy/local/cluster.sh decommission DIR N   drain storage node N (its leaderships and
#                                        replicas move to the others), wait until it holds
#                                        nothing, then stop it
#   deploy/local/cluster.sh admin DIR ARGS...    run `strata admin ARGS` against the cluster
#                                        (e.g. status, pause, resume, recommission storage-4)
#   deploy/local/cluster.sh status DIR   list the processes and the ports they listen on
#   deploy/local/cluster.sh kill-ingestor DIR I / start-ingestor DIR I   the same for ingestor I (1-2)
#
# Endpoints (defaults; override with the variables below):
#   remote-write  http://127.0.0.1:8080/api/v1/write and :8081   (INGEST_PORTS)
#   Prometheus API and gRPC query API  http://127.0.0.1:9090 and :9091 (queriers; QUERY_PORTS)
#   storage gRPC  127.0.0.1:7001-7003                          (GRPC_PORT_BASE+N, or GRPC_PORTS;
#                 nodes added later: EXTRA_GRPC_PORTS, else GRPC_PORT_BASE+N)
#   storage HTTP (metrics, their own replicas)  127.0.0.1:9101-9103 (HTTP_PORT_BASE+N)
# Port 0 (HTTP_PORT_BASE=0, a 0 in INGEST_PORTS or QUERY_PORTS) lets the OS choose: `up`
# and `status` print the ports taken, read from /proc (a restarted process gets a new one).
# The storage gRPC ports cannot be 0: every node's --peers names them; neither can the
# ingestors' with SCRAPE_CONFIG (--scrape-peers names them).
# Cluster gRPC is mutual TLS: `up` makes a CA and a member certificate under DIR/certs
# (`strata certs`) that every process uses.
# Extra querier flags: QUERIER_FLAGS (e.g. "--pushdown false"); extra ingestor flags:
# INGESTOR_FLAGS (e.g. "--ha-tracker.enable").
# Every HTTP listener's security: WEB_FLAGS (e.g. "--web.config.file web.yml", docs/security.md);
# then `up` checks readiness at WEB_SCHEME (http or https) with curl's CURL_FLAGS (e.g.
# "--cacert ca.pem -u alice:secret").
# Scraping: SCRAPE_CONFIG=prometheus.yml makes the ingestors share its targets (--scrape-peers).
# The binary is $STRATA_BIN, else target/release/strata (built if missing).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,38p' "$0"; exit 2; }
here=$(cd "$(dirname "$0")/../.." && pwd)
GRPC_PORT_BASE=${GRPC_PORT_BASE:-7000}
GRPC_PORTS=${GRPC_PORTS:-"$((GRPC_PORT_BASE + 1)) $((GRPC_PORT_BASE + 2)) $((GRPC_PORT_BASE + 3))"}
EXTRA_GRPC_PORTS=${EXTRA_GRPC_PORTS:-}
HTTP_PORT_BASE=${HTTP_PORT_BASE:-9100}
INGEST_PORTS=${INGEST_PORTS:-"8080 8081"}
QUERY_PORTS=${QUERY_PORTS:-"9090 9091"}
QUERIER_FLAGS=${QUERIER_FLAGS:-}
INGESTOR_FLAGS=${INGESTOR_FLAGS:-}
WEB_FLAGS=${WEB_FLAGS:-}
WEB_SCHEME=${WEB_SCHEME:-http}
CURL_FLAGS=${CURL_FLAGS:-}
SCRAPE_CONFIG=${SCRAPE_CONFIG:-}
SHARDS=${SHARDS:-8}
NODES=3

binary() {
  if [ -n "${STRATA_BIN:-}" ]; then echo "$STRATA_BIN"; return; fi
  (cd "$here" && source scripts/env.sh >/dev/null && {
    [ -x "$CARGO_TARGET_DIR/release/strata" ] || { bash scripts/setup.sh >&2 && cargo build --release --locked -p strata >&2; }
    echo "$CARGO_TARGET_DIR/release/strata"; })
}

# the gRPC port of storage node $1 (a node added after the founders: the next of
# EXTRA_GRPC_PORTS, else GRPC_PORT_BASE+N)
grpc_port() {
  local ports=($GRPC_PORTS) extra=($EXTRA_GRPC_PORTS)
  if [ "$1" -le "${#ports[@]}" ]; then echo "${ports[$(($1 - 1))]}"
  elif [ "$(($1 - ${#ports[@]}))" -le "${#extra[@]}" ]; then echo "${extra[$(($1 - ${#ports[@]} - 1))]}"
  else echo $((GRPC_PORT_BASE + $1)); fi
}

# the HTTP port storage node $1 is started on (0: the OS chooses)
http_port() { if [ "$HTTP_PORT_BASE" = 0 ]; then echo 0; else echo $((HTTP_PORT_BASE + $1)); fi; }

peers() {
  local p="" i
  for i in $(seq 1 $NODES); do p="$p${p:+,}$i=127.0.0.1:$(grpc_port "$i")"; done
  echo "$p"
}

storage_addrs() {
  local s="" n
  for n in $(seq 1 $NODES); do s="$s${s:+,}127.0.0.1:$(grpc_port "$n")"; done
  echo "$s"
}

# the TCP ports process $1 listens on: its sockets (/proc/PID/fd) in state LISTEN (0A) in
# /proc/PID/net/tcp and tcp6
listen_ports() {
  local pid=$1 inodes hex
  inodes=$(find "/proc/$pid/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n' | sort -u | tr '\n' ' ')
  [ -n "$inodes" ] || return 0
  awk -v inodes="$inodes" 'BEGIN { n = split(inodes, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
    FNR > 1 && $4 == "0A" && ($10 in want) { split($2, h, ":"); print h[2] }' \
    "/proc/$pid/net/tcp" "/proc/$pid/net/tcp6" 2>/dev/null | while read -r hex; do echo $((16#$hex)); done | sort -nu
}

# the HTTP port of process NAME (its pid file under run/), waiting until it listens; for a
# storage node, the port that is not its gRPC port
wait_http_port() {
  local name=$1 deadline=$2 skip=${3:-} pid port
  pid=$(cat "$dir/run/$name.pid")
  while :; do
    port=$(listen_ports "$pid" | grep -vx "${skip:-none}" | head -1)
    [ -n "$port" ] && { echo "$port"; return; }
    kill -0 "$pid" 2>/dev/null || { echo "$name exited; see $dir/logs/$name.log" >&2; return 1; }
    [ $SECONDS -lt "$deadline" ] || { echo "$name did not listen; see $dir/logs/$name.log" >&2; return 1; }
    sleep 0.2
  done
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# the flags of every member for the cluster's mutual TLS (certificates made by `up`)
tls_flags() {
  echo --grpc-tls-cert-file "$dir/certs/member.pem" --grpc-tls-key-file "$dir/certs/member-key.pem" \
    --grpc-tls-ca-file "$dir/certs/ca.pem"
}

start_storage() {
  local n=$1 bin=$2 extra=()
  [ "$n" = 1 ] && extra+=(--bootstrap)
  # the founders have their ids; a node added later joins (its id is then on its disk)
  if [ "$n" -le $NODES ]; then extra+=(--node-id "$n")
  else extra+=(--advertise-addr "127.0.0.1:$(grpc_port "$n")"); fi
  mkdir -p "$dir/logs" "$dir/run"
  running "$dir/run/storage-$n.pid" && { echo "storage-$n already running"; return; }
  nohup "$bin" storage --data-dir "$dir/storage-$n" \
    --grpc-addr "127.0.0.1:$(grpc_port "$n")" --peers "$(peers)" --shards "$SHARDS" \
    --replication-factor 3 --http-addr "127.0.0.1:$(http_port "$n")" --node-name "storage-$n" \
    --web.enable-admin-api $(tls_flags) $WEB_FLAGS "${extra[@]}" \
    >>"$dir/logs/storage-$n.log" 2>&1 &
  echo $! >"$dir/run/storage-$n.pid"
}

start_ingestor() {
  local i=$1 port=$2 bin=$3 storage scrape=() p peers=""
  storage=$(storage_addrs)
  if [ -n "$SCRAPE_CONFIG" ]; then
    for p in $INGEST_PORTS; do
      [ "$p" != 0 ] || { echo "SCRAPE_CONFIG needs fixed INGEST_PORTS (--scrape-peers names them)" >&2; exit 1; }
      peers="$peers${peers:+,}127.0.0.1:$p"
    done
    scrape=(--scrape-config "$SCRAPE_CONFIG" --scrape-peers "$peers")
  fi
  running "$dir/run/ingestor-$i.pid" && { echo "ingestor-$i already running"; return; }
  # every ingestor takes 1/N of each tenant's rate
  local n=0
  for p in $INGEST_PORTS; do n=$((n + 1)); done
  # shellcheck disable=SC2046,SC2086
  nohup "$bin" ingestor --http-addr "127.0.0.1:$port" --storage "$storage" --ingest.ingestors "$n" \
    $(tls_flags) $INGESTOR_FLAGS $WEB_FLAGS "${scrape[@]}" \
    >>"$dir/logs/ingestor-$i.log" 2>&1 &
  echo $! >"$dir/run/ingestor-$i.pid"
}

start_querier() {
  local i=$1 port=$2 bin=$3 storage
  storage=$(storage_addrs)
  running "$dir/run/querier-$i.pid" && { echo "querier-$i already running"; return; }
  # shellcheck disable=SC2086
  nohup "$bin" querier --http-addr "127.0.0.1:$port" --storage "$storage" $(tls_flags) $QUERIER_FLAGS $WEB_FLAGS \
    >>"$dir/logs/querier-$i.log" 2>&1 &
  echo $! >"$dir/run/querier-$i.pid"
}

# every process's HTTP port (NAME PORT per line), waiting until each listens
http_ports() {
  local deadline=$1 n i port
  for n in $(seq 1 $NODES); do
    port=$(wait_http_port "storage-$n" "$deadline" "$(grpc_port "$n")") || return 1
    echo "storage-$n $port"
  done
  i=1
  for _ in $INGEST_PORTS; do
    port=$(wait_http_port "ingestor-$i" "$deadline") || return 1
    echo "ingestor-$i $port"; i=$((i + 1))
  done
  i=1
  for _ in $QUERY_PORTS; do
    port=$(wait_http_port "querier-$i" "$deadline") || return 1
    echo "querier-$i $port"; i=$((i + 1))
  done
}

wait_ready() {
  local deadline=$((SECONDS + 120)) n name port ports
  for n in $(seq 1 $NODES); do
    until grep -q "database opened" "$dir/logs/storage-$n.log" 2>/dev/null; do
      [ $SECONDS -lt $deadline ] || { echo "storage-$n did not join the cluster; see $dir/logs" >&2; exit 1; }
      sleep 0.2
    done
  done
  ports=$(http_ports "$deadline") || exit 1
  while read -r name port; do
    # shellcheck disable=SC2086
    until curl -fsS $CURL_FLAGS "$WEB_SCHEME://127.0.0.1:$port/-/ready" >/dev/null 2>&1; do
      [ $SECONDS -lt $deadline ] || { echo "$name (port $port) did not come up; see $dir/logs" >&2; exit 1; }
      sleep 0.2
    done
  done <<<"$ports"
  echo "$ports"
}

stop_pid() {
  local f=$1 sig=$2
  running "$f" && kill "-$sig" "$(cat "$f")" 2>/dev/null || true
}

case "$cmd" in
  up)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    bin=$(binary)
    "$bin" certs --out "$dir/certs" --hosts localhost,127.0.0.1
    for n in $(seq 1 $NODES); do start_storage "$n" "$bin"; done
    i=1
    for port in $INGEST_PORTS; do start_ingestor "$i" "$port" "$bin"; i=$((i + 1)); done
    i=1
    for port in $QUERY_PORTS; do start_querier "$i" "$port" "$bin"; i=$((i + 1)); done
    ports=$(wait_ready) || exit 1
    echo "cluster up: remote-write http://127.0.0.1:$(awk '$1 == "ingestor-1" { print $2 }' <<<"$ports")/api/v1/write, Prometheus API http://127.0.0.1:$(awk '$1 == "querier-1" { print $2 }' <<<"$ports"), logs in $dir/logs"
    ;;
  down)
    for f in "$dir"/run/*.pid; do [ -e "$f" ] && stop_pid "$f" TERM; done
    deadline=$((SECONDS + 30))
    for f in "$dir"/run/*.pid; do
      [ -e "$f" ] || continue
      while running "$f" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
      stop_pid "$f" KILL
      rm -f "$f"
    done
    echo "cluster down"
    ;;
  kill)
    n=${3:?node number}
    stop_pid "$dir/run/storage-$n.pid" KILL
    while running "$dir/run/storage-$n.pid"; do sleep 0.1; done
    rm -f "$dir/run/storage-$n.pid"
    ;;
  start)
    n=${3:?node number}
    dir=$(cd "$dir" && pwd)
    start_storage "$n" "$(binary)"
    ;;
  add)
    dir=$(cd "$dir" && pwd)
    n=$((NODES + 1))
    while [ -e "$dir/storage-$n" ] || running "$dir/run/storage-$n.pid"; do n=$((n + 1)); done
    start_storage "$n" "$(binary)"
    deadline=$((SECONDS + 60))
    until grep -q "joined the cluster" "$dir/logs/storage-$n.log" 2>/dev/null; do
      running "$dir/run/storage-$n.pid" || { echo "storage-$n exited; see $dir/logs/storage-$n.log" >&2; exit 1; }
      [ $SECONDS -lt $deadline ] || { echo "storage-$n did not join; see $dir/logs/storage-$n.log" >&2; exit 1; }
      sleep 0.2
    done
    id=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/logs/storage-$n.log" | grep -o 'joined the cluster.*' | grep -o 'node=[0-9]*' | head -1)
    echo "storage-$n joined (${id:-node id in its log}): gRPC 127.0.0.1:$(grpc_port "$n"), HTTP 127.0.0.1:$(http_port "$n")"
    ;;
  decommission)
    n=${3:?node number}
    # shellcheck disable=SC2046
    "$(binary)" admin --storage "$(storage_addrs)" $(tls_flags) decommission "storage-$n" --wait
    stop_pid "$dir/run/storage-$n.pid" TERM
    deadline=$((SECONDS + 30))
    while running "$dir/run/storage-$n.pid" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    stop_pid "$dir/run/storage-$n.pid" KILL
    rm -f "$dir/run/storage-$n.pid"
    echo "storage-$n decommissioned and stopped; its data directory $dir/storage-$n may be deleted"
    ;;
  admin)
    shift 2
    # shellcheck disable=SC2046
    "$(binary)" admin --storage "$(storage_addrs)" $(tls_flags) "$@"
    ;;
  kill-ingestor)
    i=${3:?ingestor number}
    stop_pid "$dir/run/ingestor-$i.pid" KILL
    while running "$dir/run/ingestor-$i.pid"; do sleep 0.1; done
    rm -f "$dir/run/ingestor-$i.pid"
    ;;
  start-ingestor)
    i=${3:?ingestor number}
    dir=$(cd "$dir" && pwd)
    set -- $INGEST_PORTS
    port=$(eval echo "\${$i}")
    start_ingestor "$i" "$port" "$(binary)"
    ;;
  status)
    for f in "$dir"/run/*.pid; do
      [ -e "$f" ] || continue
      if running "$f"; then
        echo "$(basename "$f" .pid) running (pid $(cat "$f"), listening on $(listen_ports "$(cat "$f")" | tr '\n' ' '))"
      else echo "$(basename "$f" .pid) stopped"; fi
    done
    ;;
  *) sed -n '2,34p' "$0"; exit 2 ;;
esac
