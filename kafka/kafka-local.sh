#!/usr/bin/env bash
# kafka-local.sh - Apache Kafka 4.x (KRaft) on 127.0.0.1, from jars that Maven resolves
# out of Maven Central: a single-node broker (the default, for `make run` and most tests),
# or a three-node cluster for failover tests. Every node is broker and controller in one
# JVM. Needs Java 17+ and Maven; uses pom.xml, server.properties and log4j2.properties
# beside it.
#
#   kafka/kafka-local.sh fetch           resolve the broker jars into the cache (once)
#   kafka/kafka-local.sh start [--fresh] start in the background, wait until ready, print
#                                        the bootstrap address 127.0.0.1:PORT on stdout;
#                                        keeps existing data unless --fresh
#   kafka/kafka-local.sh stop            SIGTERM, SIGKILL after KAFKA_STOP_TIMEOUT
#   kafka/kafka-local.sh status          print the address, exit 0 if running, else 1
#   kafka/kafka-local.sh configs ARGS... Kafka's kafka-configs tool against the broker, e.g.
#                                        configs --alter --entity-type clients --entity-default
#                                        --add-config producer_byte_rate=20000 (a quota)
#
#   kafka/kafka-local.sh cluster start [--fresh]  start the three nodes (those not running),
#                                        wait until each is ready, print the bootstrap
#                                        list 127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
#   kafka/kafka-local.sh cluster start N start node N (1-3) again, keeping its data
#   kafka/kafka-local.sh cluster stop [N]    SIGTERM (controlled shutdown) one node or all
#   kafka/kafka-local.sh cluster kill N      SIGKILL node N (its data stays)
#   kafka/kafka-local.sh cluster freeze N    SIGSTOP node N
#   kafka/kafka-local.sh cluster thaw N      SIGCONT node N
#   kafka/kafka-local.sh cluster controller  print the active KRaft controller's node number
#   kafka/kafka-local.sh cluster status [N]  one line per node on stderr, the bootstrap list
#                                        on stdout; exit 0 if every node named runs
#                                        (not frozen), else 1
#
# Environment (all optional):
#   COINSTREAM_CACHE       cache root                  [$HOME/.cache/coinstream]
#   KAFKA_RUN_DIR          config, data, log, PID file [$COINSTREAM_CACHE/kafka-run]
#   KAFKA_PORT             client port                 [19092]
#   KAFKA_CONTROLLER_PORT  KRaft controller port       [19093]
#   KAFKA_SASL_PORT        also a SASL_PLAINTEXT listener here (the single broker only),
#                          mechanism PLAIN, one user "coinstream" whose password is
#                          KAFKA_SASL_PASSWORD [none]
#   KAFKA_CLUSTER_DIR      the cluster's run dir, one node<N>/ each [$COINSTREAM_CACHE/kafka-cluster]
#   KAFKA_CLUSTER_PORTS    the nodes' client ports     [19192,19292,19392]
#   KAFKA_CLUSTER_CONTROLLER_PORTS  their KRaft ports  [19193,19293,19393]
#   KAFKA_HEAP_OPTS        JVM heap flags              [-Xms128m -Xmx512m; per cluster node -Xms64m -Xmx256m]
#   KAFKA_START_TIMEOUT    seconds to wait for ready   [90]
#   KAFKA_STOP_TIMEOUT     seconds before SIGKILL      [30]
#   JAVA                   java executable             [java]
# Messages go to stderr; stdout carries only addresses (start, status).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${COINSTREAM_CACHE:-$HOME/.cache/coinstream}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
JAVA="${JAVA:-java}"

# pom.xml is the single place that names the Kafka version; the cache dir is per version
# so that bumping it never mixes jars of two releases on one classpath.
VERSION="$(sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "$HERE/pom.xml")"
[[ -n "$VERSION" ]] || { echo "kafka-local: no <kafka.version> in $HERE/pom.xml" >&2; exit 1; }
LIBS="$CACHE/kafka-libs-$VERSION"
CORE_JAR="$LIBS/kafka_2.13-$VERSION.jar"

CLUSTER_DIR="${KAFKA_CLUSTER_DIR:-$CACHE/kafka-cluster}"
IFS=, read -r -a CLUSTER_PORTS <<< "${KAFKA_CLUSTER_PORTS:-19192,19292,19392}"
IFS=, read -r -a CLUSTER_CPORTS <<< "${KAFKA_CLUSTER_CONTROLLER_PORTS:-19193,19293,19393}"
CLUSTER_NODES=3

log() { echo "kafka-local: $*" >&2; }
die() { log "$*"; exit 1; }

# The node the commands below act on: select_single or select_node N sets these.
NAME="" RUN="" PORT="" CPORT="" SASL_PORT="" NODE_ID="" VOTERS="" REPLICAS="" MIN_ISR="" HEAP=""
PID_FILE="" CONFIG="" DATA="" LOG="" CLUSTER_ID_FILE=""

set_run_dir() {
  RUN="$1"
  PID_FILE="$RUN/broker.pid"
  CONFIG="$RUN/server.properties"
  DATA="$RUN/data"
  LOG="$RUN/broker.log"
}

select_single() {
  NAME="broker"
  set_run_dir "${KAFKA_RUN_DIR:-$CACHE/kafka-run}"
  PORT="${KAFKA_PORT:-19092}"
  CPORT="${KAFKA_CONTROLLER_PORT:-19093}"
  SASL_PORT="${KAFKA_SASL_PORT:-}"
  NODE_ID=1 VOTERS="1@127.0.0.1:$CPORT" REPLICAS=1 MIN_ISR=1
  HEAP="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
  CLUSTER_ID_FILE=""  # a new id, for a new data dir
}

select_node() {
  local n="$1" i
  [[ "$n" =~ ^[1-3]$ ]] || die "no node '$n': the cluster's nodes are 1, 2 and 3"
  ((${#CLUSTER_PORTS[@]} == CLUSTER_NODES && ${#CLUSTER_CPORTS[@]} == CLUSTER_NODES)) ||
    die "KAFKA_CLUSTER_PORTS and KAFKA_CLUSTER_CONTROLLER_PORTS need $CLUSTER_NODES ports each, comma-separated"
  NAME="node $n"
  set_run_dir "$CLUSTER_DIR/node$n"
  PORT="${CLUSTER_PORTS[n - 1]}"
  CPORT="${CLUSTER_CPORTS[n - 1]}"
  NODE_ID="$n"
  VOTERS=""
  for ((i = 1; i <= CLUSTER_NODES; i++)); do
    VOTERS+="${VOTERS:+,}$i@127.0.0.1:${CLUSTER_CPORTS[i - 1]}"
  done
  REPLICAS=3 MIN_ISR=2
  # Three JVMs on a small machine: a quarter of the single broker's heap each.
  HEAP="${KAFKA_HEAP_OPTS:--Xms64m -Xmx256m}"
  # Every node is formatted with the same cluster id, kept beside the nodes' dirs.
  CLUSTER_ID_FILE="$CLUSTER_DIR/cluster.id"
}

# True if something accepts TCP connections on 127.0.0.1:$1 (bash's /dev/tcp, no tools).
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True while process $1 runs (or is frozen). Not 'kill -0': a broker that dies while
# this script is its parent stays a zombie until reaped, and kill -0 succeeds on zombies.
alive() { local st; st="$(ps -o stat= -p "$1" 2>/dev/null)" && [[ $st != Z* ]]; }

frozen() { local st; st="$(ps -o stat= -p "$1" 2>/dev/null)" && [[ $st == T* ]]; }

# PID of the broker started from this run dir, if it is still alive. The command line is
# checked so that a stale PID file, whose PID the system has since given to another
# process, does not count as a running broker.
running_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(<"$PID_FILE")"
  # -ww: without it ps cuts the command line to 80 columns when stdout is not a terminal.
  [[ "$(ps -ww -o args= -p "$pid" 2>/dev/null)" == *"kafka.Kafka $CONFIG"* ]] || return 1
  echo "$pid"
}

# Address of the running broker, from its rendered config (the current KAFKA_PORT may
# differ from the one it was started with).
running_addr() {
  sed -n 's#^listeners=PLAINTEXT://\([^,]*\).*#\1#p' "$CONFIG"
}

cmd_fetch() {
  [[ -f "$CORE_JAR" ]] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch the Kafka jars"
  # Resolve into a temporary dir and rename it at the end, so an interrupted fetch never
  # leaves a half-filled cache that the kafka_2.13 check above would take as complete.
  local tmp="$LIBS.tmp.$$" out
  rm -rf "$tmp"
  mkdir -p "$CACHE"
  log "fetching Kafka $VERSION jars with Maven into $LIBS"
  # mvn -q still prints colour codes on stdout; show its output only on failure.
  if ! out="$(mvn -B -q -f "$HERE/pom.xml" dependency:copy-dependencies \
                -Dkafka.libs.dir="$tmp" 2>&1)"; then
    rm -rf "$tmp"
    printf '%s\n' "$out" >&2
    die "mvn failed to resolve Kafka $VERSION"
  fi
  [[ -f "$tmp/kafka_2.13-$VERSION.jar" ]] || die "no kafka_2.13 jar in $tmp after mvn"
  # mv -T fails if a concurrent fetch already installed the dir; its copy is as good.
  mv -T "$tmp" "$LIBS" 2>/dev/null || rm -rf "$tmp"
  [[ -f "$CORE_JAR" ]] || die "could not install the jars into $LIBS"
  log "$(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) in $LIBS"
}

# Kafka Uuid string: URL-safe base64 of 16 random bytes without padding. It must not
# start with '-', or StorageTool's argument parser reads it as an option.
new_cluster_id() {
  local id
  while id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"; [[ $id == -* ]]; do
    :
  done
  echo "$id"
}

# The cluster id to format a new data dir with: the cluster's shared one, or a new one.
cluster_id() {
  [[ -n "$CLUSTER_ID_FILE" ]] || { new_cluster_id; return; }
  [[ -s "$CLUSTER_ID_FILE" ]] || new_cluster_id > "$CLUSTER_ID_FILE"
  cat "$CLUSTER_ID_FILE"
}

# A SASL_PLAINTEXT listener beside the PLAINTEXT one, for tests of authentication.
add_sasl_listener() {
  [[ -n "${KAFKA_SASL_PASSWORD:-}" ]] || die "KAFKA_SASL_PORT needs KAFKA_SASL_PASSWORD"
  local listener="SASL_PLAINTEXT://127.0.0.1:$SASL_PORT"
  sed -i -e "s#^listeners=.*#&,$listener#" -e "s#^advertised.listeners=.*#&,$listener#" \
      -e "s#^listener.security.protocol.map=.*#&,SASL_PLAINTEXT:SASL_PLAINTEXT#" "$CONFIG"
  printf '%s\n' "sasl.enabled.mechanisms=PLAIN" \
    "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"coinstream\" password=\"$KAFKA_SASL_PASSWORD\" user_coinstream=\"$KAFKA_SASL_PASSWORD\";" \
    >> "$CONFIG"
}

# The broker needs Java 17+ (Kafka 4): said in one line before anything is fetched or formatted.
need_java() {
  local banner major
  command -v "$JAVA" >/dev/null ||
    die "Java 17+ runs the broker, and there is no '$JAVA' on PATH: install a JDK or JRE 17+, or set JAVA=/path/to/java"
  # 'openjdk version "17.0.9" 2023-10-17', 'java version "1.8.0_392"' (major 1: Java 8).
  banner="$("$JAVA" -version 2>&1 | head -n 1)" || true
  major="$(sed -n 's/.* version "\([0-9]*\).*/\1/p' <<< "$banner")"
  [[ -z "$major" || "$major" -ge 17 ]] ||
    die "Java 17+ runs the broker, and '$(command -v "$JAVA")' is older ($banner): set JAVA=/path/to/java 17+"
}

# Launch the selected node's JVM in the background (formatting a new data dir first);
# prints its pid. `wait_ready` then waits for it.
launch() {
  local pid
  if pid="$(running_pid)"; then
    die "$NAME is already running (pid $pid, $(running_addr), run dir $RUN); stop it with 'kafka/kafka-local.sh ${CLUSTER_ID_FILE:+cluster }stop'"
  fi
  rm -f "$PID_FILE"    # stale: its process is gone
  local p
  for p in "$PORT" "$CPORT" $SASL_PORT; do
    port_open "$p" && die "port 127.0.0.1:$p is already in use by another process; choose free ports (see the environment in $0)"
  done

  # tmp/: the compression codecs (zstd-jni, snappy) unpack native libraries into
  # java.io.tmpdir when the broker validates compressed batches, which fails on a
  # noexec /tmp.
  mkdir -p "$DATA" "$RUN/tmp"
  sed -e "s#@KAFKA_PORT@#$PORT#g" -e "s#@KAFKA_CONTROLLER_PORT@#$CPORT#g" \
      -e "s#@DATA_DIR@#$DATA#g" -e "s#@NODE_ID@#$NODE_ID#g" -e "s#@VOTERS@#$VOTERS#g" \
      -e "s#@REPLICAS@#$REPLICAS#g" -e "s#@MIN_ISR@#$MIN_ISR#g" \
      "$HERE/server.properties" > "$CONFIG"
  if [[ -n "$SASL_PORT" ]]; then add_sasl_listener; fi

  # The class path is quoted: the JVM expands 'dir/*', the shell must not.
  local jvm_common=(-Djava.io.tmpdir="$RUN/tmp"
                    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -cp "$LIBS/*")
  # KRaft refuses to start on an unformatted dir; formatting again would fail (or, with
  # --ignore-formatted, still keep the old cluster id), so format only new dirs.
  if [[ ! -f "$DATA/meta.properties" ]]; then
    local out
    if ! out="$("$JAVA" -Xmx256m "${jvm_common[@]}" kafka.tools.StorageTool format \
                  --cluster-id "$(cluster_id)" --config "$CONFIG" 2>&1)"; then
      printf '%s\n' "$out" >&2
      die "formatting $DATA failed"
    fi
  fi

  # setsid: the broker gets its own session, so a Ctrl-C in the terminal that ran
  # 'start' (e.g. 'make run') does not reach it; it lives until 'stop'. The GC flags are
  # those of Kafka's kafka-run-class.sh.
  # shellcheck disable=SC2086  # HEAP is a list of flags
  setsid "$JAVA" $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true "${jvm_common[@]}" kafka.Kafka "$CONFIG" \
    > "$LOG" 2>&1 < /dev/null &
  echo $! > "$PID_FILE"
}

# Ready = the node logged that start-up completed AND the client port accepts
# connections (the log line alone would not prove the listener address). A cluster
# node gets there once a quorum of controllers is up.
wait_ready() {
  local pid t0=$SECONDS
  pid="$(<"$PID_FILE")"
  until grep -q "Kafka Server started" "$LOG" 2>/dev/null && port_open "$PORT"; do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      # A port taken after the check above (or bound without listening, which that
      # check cannot see): Kafka names the address in its bind error.
      local taken
      taken="$(sed -n 's/.*failed to bind to \([0-9.]*:[0-9]*\).*/\1/p' "$LOG" | head -n 1)"
      [[ -n "$taken" ]] && die "$NAME exited: $taken is already in use by another process (log: $LOG)"
      tail -n 40 "$LOG" >&2
      die "$NAME exited during start-up (log: $LOG)"
    fi
    if ((SECONDS - t0 >= START_TIMEOUT)); then
      tail -n 40 "$LOG" >&2
      stop_selected
      die "$NAME not ready after ${START_TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.2
  done
  log "$NAME ready in $((SECONDS - t0))s (pid $pid, run dir $RUN)"
}

# SIGTERM runs Kafka's shutdown hook: controlled shutdown (a cluster node hands its
# partitions' leadership over first), logs flushed and closed cleanly, so the next start
# needs no log recovery. SIGCONT after it: a frozen node must run to stop. Prints the
# pid signalled; fails when the node is not running.
signal_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "$NAME not running (run dir $RUN)"
    return 1
  fi
  kill -TERM "$pid"
  kill -CONT "$pid"
  echo "$pid"
}

# Wait for process $1 (the selected node, signalled by signal_stop) to exit; SIGKILL it
# after STOP_TIMEOUT seconds from $2 (SECONDS when the stop began).
await_stop() {
  local pid="$1" t0="$2"
  while alive "$pid" && ((SECONDS - t0 < STOP_TIMEOUT)); do sleep 0.2; done
  if alive "$pid"; then
    log "$NAME did not stop within ${STOP_TIMEOUT}s; killing it"
    kill -KILL "$pid"
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  log "$NAME stopped (pid $pid)"
}

stop_selected() {
  local pid t0=$SECONDS
  pid="$(signal_stop)" || return 0
  await_stop "$pid" "$t0"
}

# One line on stderr; true if the node runs and is not frozen.
report_selected() {
  local pid
  if ! pid="$(running_pid)"; then
    log "$NAME: not running (run dir $RUN)"
    return 1
  fi
  if frozen "$pid"; then
    log "$NAME: frozen (SIGSTOP; pid $pid, $(running_addr), run dir $RUN)"
    return 1
  fi
  log "$NAME: running (pid $pid, $(running_addr), run dir $RUN)"
}

cmd_start() {
  local fresh=0
  case "${1:-}" in
    "") ;;
    --fresh) fresh=1 ;;
    *) die "unknown start option '$1' (only --fresh)" ;;
  esac
  need_java
  cmd_fetch
  ((fresh)) && rm -rf "$DATA"
  launch
  wait_ready
  echo "127.0.0.1:$PORT"
}

cmd_configs() {
  "$JAVA" -Xmx128m -Dlog4j2.configurationFile="$HERE/log4j2.properties" -cp "$LIBS/*" \
    kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$PORT" "$@"
}

cmd_status() {
  report_selected || return 1
  running_addr
}

bootstrap_list() {
  local n list=""
  for ((n = 1; n <= CLUSTER_NODES; n++)); do
    list+="${list:+,}127.0.0.1:${CLUSTER_PORTS[n - 1]}"
  done
  echo "$list"
}

# The node named by $1, or every node when it is empty; dies (in this shell, not in a
# $(...) subshell) on a node that does not exist.
nodes() {
  if [[ -n "${1:-}" ]]; then
    echo "$1"
  else
    seq 1 "$CLUSTER_NODES"
  fi
}

check_node() { [[ -z "${1:-}" ]] || select_node "$1"; }

cluster_start() {
  local fresh=0 node="" n
  for arg in "$@"; do
    case "$arg" in
      --fresh) fresh=1 ;;
      [0-9]*) node="$arg" ;;
      *) die "unknown cluster start option '$arg' (--fresh, or a node number)" ;;
    esac
  done
  check_node "$node"
  ((fresh)) && [[ -n "$node" ]] &&
    die "--fresh is for the whole cluster: a node that lost its data would rejoin the quorum without the log it voted on"
  need_java
  cmd_fetch
  local started=()
  if ((fresh)); then
    for n in $(nodes); do
      select_node "$n"
      running_pid > /dev/null && die "$NAME is running: 'cluster stop' before 'cluster start --fresh'"
    done
    rm -rf "$CLUSTER_DIR"
  fi
  mkdir -p "$CLUSTER_DIR"
  # All JVMs first, then the waits: a node is ready only once a quorum of controllers is.
  for n in $(nodes "$node"); do
    select_node "$n"
    running_pid > /dev/null && { log "$NAME already running"; continue; }
    launch
    started+=("$n")
  done
  for n in "${started[@]}"; do
    select_node "$n"
    wait_ready
  done
  bootstrap_list
}

cluster_stop() {
  local n t0=$SECONDS pids=()
  check_node "${1:-}"
  # Every node signalled at once: stopped one by one, the last would wait for a quorum of
  # controllers that is gone.
  for n in $(nodes "${1:-}"); do
    select_node "$n"
    pids[n]="$(signal_stop)" || true
  done
  for n in $(nodes "${1:-}"); do
    select_node "$n"
    [[ -z "${pids[n]:-}" ]] || await_stop "${pids[n]}" "$t0"
  done
}

cluster_signal() {
  local signal="$1" node="${2:-}" pid
  [[ -n "$node" ]] || die "cluster ${signal,,}: which node? (1, 2 or 3)"
  select_node "$node"
  pid="$(running_pid)" || die "$NAME is not running"
  case "$signal" in
    KILL)
      kill -KILL "$pid"
      while alive "$pid"; do sleep 0.05; done
      rm -f "$PID_FILE"
      log "$NAME killed (SIGKILL, pid $pid); its data stays in $RUN" ;;
    STOP) kill -STOP "$pid"; log "$NAME frozen (SIGSTOP, pid $pid)" ;;
    CONT) kill -CONT "$pid"; log "$NAME thawed (SIGCONT, pid $pid)" ;;
  esac
}

# The active KRaft controller's node id: the leader of the highest epoch that a running
# node's last quorum transition names (log4j2.properties logs those transitions).
cluster_controller() {
  local n pid line epoch leader best_epoch=-1 best=""
  for n in $(nodes); do
    select_node "$n"
    pid="$(running_pid)" && ! frozen "$pid" || continue
    line="$(grep 'Completed transition to \(Leader\|FollowerState\)' "$LOG" | tail -n 1)" || continue
    epoch="$(sed -n 's/.*[( ]epoch=\([0-9]*\).*/\1/p' <<< "$line")"
    if [[ $line == *"transition to Leader"* ]]; then
      leader="$n"
    else
      leader="$(sed -n 's/.*, leader=\([0-9]*\).*/\1/p' <<< "$line")"
    fi
    if [[ -n "$epoch" && -n "$leader" ]] && ((epoch > best_epoch)); then
      best_epoch="$epoch" best="$leader"
    fi
  done
  [[ -n "$best" ]] || die "no running node names an active controller yet"
  echo "$best"
}

cluster_status() {
  local n healthy=0
  check_node "${1:-}"
  for n in $(nodes "${1:-}"); do
    select_node "$n"
    report_selected || healthy=1
  done
  bootstrap_list
  return "$healthy"
}

usage() {
  echo "usage: $0 fetch | start [--fresh] | stop | status | configs ARGS..." >&2
  echo "       $0 cluster start [--fresh | N] | stop [N] | status [N] | kill N | freeze N | thaw N | controller" >&2
  exit 2
}

case "${1:-}" in
  fetch)  cmd_fetch ;;
  start)  shift; select_single; cmd_start "$@" ;;
  stop)   select_single; stop_selected ;;
  status) select_single; cmd_status ;;
  configs) shift; select_single; cmd_configs "$@" ;;
  cluster)
    shift
    case "${1:-}" in
      start)  shift; cluster_start "$@" ;;
      stop)   shift; cluster_stop "$@" ;;
      status) shift; cluster_status "$@" ;;
      kill)   shift; cluster_signal KILL "$@" ;;
      freeze) shift; cluster_signal STOP "$@" ;;
      thaw)   shift; cluster_signal CONT "$@" ;;
      controller) cluster_controller ;;
      *) usage ;;
    esac ;;
  *) usage ;;
esac
