#!/usr/bin/env bash
# kafka-local.sh - a single-node Apache Kafka 4.x broker (KRaft, broker and controller in
# one JVM) on 127.0.0.1, from jars that Maven resolves out of Maven Central.
# Needs Java 17+ and Maven; uses pom.xml, server.properties and log4j2.properties beside it.
#
#   kafka/kafka-local.sh fetch           resolve the broker jars into the cache (once)
#   kafka/kafka-local.sh start [--fresh] start in the background, wait until ready, print
#                                        the bootstrap address 127.0.0.1:PORT on stdout;
#                                        keeps existing data unless --fresh
#   kafka/kafka-local.sh stop            SIGTERM, SIGKILL after KAFKA_STOP_TIMEOUT
#   kafka/kafka-local.sh status          print the address, exit 0 if running, else 1
#
# Environment (all optional):
#   COINSTREAM_CACHE       cache root                  [$HOME/.cache/coinstream]
#   KAFKA_RUN_DIR          config, data, log, PID file [$COINSTREAM_CACHE/kafka-run]
#   KAFKA_PORT             client port                 [19092]
#   KAFKA_CONTROLLER_PORT  KRaft controller port       [19093]
#   KAFKA_HEAP_OPTS        JVM heap flags              [-Xms128m -Xmx512m]
#   KAFKA_START_TIMEOUT    seconds to wait for ready   [90]
#   KAFKA_STOP_TIMEOUT     seconds before SIGKILL      [30]
#   JAVA                   java executable             [java]
# Messages go to stderr; stdout carries only the address (start, status).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${COINSTREAM_CACHE:-$HOME/.cache/coinstream}"
RUN="${KAFKA_RUN_DIR:-$CACHE/kafka-run}"
PORT="${KAFKA_PORT:-19092}"
CPORT="${KAFKA_CONTROLLER_PORT:-19093}"
HEAP="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
JAVA="${JAVA:-java}"

# pom.xml is the single place that names the Kafka version; the cache dir is per version
# so that bumping it never mixes jars of two releases on one classpath.
VERSION="$(sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "$HERE/pom.xml")"
[[ -n "$VERSION" ]] || { echo "kafka-local: no <kafka.version> in $HERE/pom.xml" >&2; exit 1; }
LIBS="$CACHE/kafka-libs-$VERSION"
CORE_JAR="$LIBS/kafka_2.13-$VERSION.jar"

PID_FILE="$RUN/broker.pid"
CONFIG="$RUN/server.properties"
DATA="$RUN/data"
LOG="$RUN/broker.log"

log() { echo "kafka-local: $*" >&2; }
die() { log "$*"; exit 1; }

# True if something accepts TCP connections on 127.0.0.1:$1 (bash's /dev/tcp, no tools).
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True while process $1 runs. Not 'kill -0': a broker that dies while this script is its
# parent stays a zombie until reaped, and kill -0 succeeds on zombies.
alive() { local st; st="$(ps -o stat= -p "$1" 2>/dev/null)" && [[ $st != Z* ]]; }

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

cmd_start() {
  local fresh=0
  case "${1:-}" in
    "") ;;
    --fresh) fresh=1 ;;
    *) die "unknown start option '$1' (only --fresh)" ;;
  esac

  local pid
  if pid="$(running_pid)"; then
    die "a broker is already running (pid $pid, $(running_addr), run dir $RUN); stop it with 'kafka/kafka-local.sh stop'"
  fi
  rm -f "$PID_FILE"    # stale: its process is gone
  local p
  for p in "$PORT" "$CPORT"; do
    port_open "$p" && die "port 127.0.0.1:$p is already in use by another process; set KAFKA_PORT / KAFKA_CONTROLLER_PORT to free ports"
  done

  cmd_fetch

  ((fresh)) && rm -rf "$DATA"
  # tmp/: the compression codecs (zstd-jni, snappy) unpack native libraries into
  # java.io.tmpdir when the broker validates compressed batches, which fails on a
  # noexec /tmp.
  mkdir -p "$DATA" "$RUN/tmp"
  sed -e "s#@KAFKA_PORT@#$PORT#g" -e "s#@KAFKA_CONTROLLER_PORT@#$CPORT#g" \
      -e "s#@DATA_DIR@#$DATA#g" "$HERE/server.properties" > "$CONFIG"

  # The class path is quoted: the JVM expands 'dir/*', the shell must not.
  local jvm_common=(-Djava.io.tmpdir="$RUN/tmp"
                    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -cp "$LIBS/*")
  # KRaft refuses to start on an unformatted dir; formatting again would fail (or, with
  # --ignore-formatted, still keep the old cluster id), so format only new dirs.
  if [[ ! -f "$DATA/meta.properties" ]]; then
    local out
    if ! out="$("$JAVA" -Xmx256m "${jvm_common[@]}" kafka.tools.StorageTool format \
                  --cluster-id "$(new_cluster_id)" --config "$CONFIG" 2>&1)"; then
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
  pid=$!
  echo "$pid" > "$PID_FILE"

  # Ready = the broker logged that start-up completed AND the client port accepts
  # connections (the log line alone would not prove the listener address).
  local t0=$SECONDS
  until grep -q "Kafka Server started" "$LOG" 2>/dev/null && port_open "$PORT"; do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      # A port taken after the check above (or bound without listening, which that
      # check cannot see): Kafka names the address in its bind error.
      local taken
      taken="$(sed -n 's/.*failed to bind to \([0-9.]*:[0-9]*\).*/\1/p' "$LOG" | head -n 1)"
      [[ -n "$taken" ]] && die "broker exited: $taken is already in use by another process (log: $LOG)"
      tail -n 40 "$LOG" >&2
      die "broker exited during start-up (log: $LOG)"
    fi
    if ((SECONDS - t0 >= START_TIMEOUT)); then
      tail -n 40 "$LOG" >&2
      cmd_stop
      die "broker not ready after ${START_TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.2
  done
  log "broker ready in $((SECONDS - t0))s (pid $pid, run dir $RUN)"
  echo "127.0.0.1:$PORT"
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "no broker running (run dir $RUN)"
    return 0
  fi
  # SIGTERM runs Kafka's shutdown hook: controlled shutdown, logs flushed and closed
  # cleanly, so the next start needs no log recovery.
  kill -TERM "$pid"
  local t0=$SECONDS
  while alive "$pid" && ((SECONDS - t0 < STOP_TIMEOUT)); do sleep 0.2; done
  if alive "$pid"; then
    log "broker did not stop within ${STOP_TIMEOUT}s; killing it"
    kill -KILL "$pid"
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  log "broker stopped (pid $pid)"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    log "running (pid $pid, run dir $RUN)"
    running_addr
  else
    log "not running (run dir $RUN)"
    return 1
  fi
}

case "${1:-}" in
  fetch)  cmd_fetch ;;
  start)  shift; cmd_start "$@" ;;
  stop)   cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 fetch | start [--fresh] | stop | status" >&2; exit 2 ;;
esac
