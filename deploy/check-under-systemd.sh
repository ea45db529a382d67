#!/usr/bin/env bash
# check-under-systemd.sh - prove deploy/coinstream.service under a real systemd, end to end.
#
# Boots a Debian bookworm container (debootstrap + systemd-nspawn, host network) with
# systemd as its PID 1, installs coinstream in it exactly as docs/operations.md
# "Running under systemd" says, and checks, printing PASS/FAIL (or WARN for a limit of this machine):
#   the unit starts and stays active; every enabled worker is RUNNING; records reach
#   Kafka; `supervisorctl restart kraken` as the coinstream user gives kraken a new pid
#   and a new run that delivers; User/WorkingDirectory/LimitNOFILE as shipped; a worker
#   runs as coinstream with the unit's open-files limit and umask; the hardening
#   (ProtectSystem, ProtectHome, PrivateTmp, NoNewPrivileges) leaves logs/, run/ and
#   spool/ writable; the supervisor socket is the coinstream user's only;
#   `systemctl stop` ends within TimeoutStopSec with every worker flushed (the records
#   on the topic equal the sum of the workers' final delivered= counters); and a
#   SIGKILL of supervisord is followed by Restart=on-failure.
#
# Outside the container, on this host's 127.0.0.1: the Kafka broker (kafka/kafka-local.sh;
# one already running is reused and left running) and the exchange simulator (one
# `python -m simulator` process for every enabled exchange). The container shares the
# host's network, so the workers reach both.
#
# Usage, as root on a Debian/Ubuntu host with apt, from the checkout:
#   deploy/check-under-systemd.sh
# Environment (all optional):
#   PROOF_DIR       work dir: rootfs (kept and reused), logs, site.yaml [/var/tmp/coinstream-systemd-proof]
#   REV             what to install: `git archive $REV` [HEAD]; REV=$(git stash create)
#                   tests uncommitted changes to tracked files
#   MIRROR          Debian mirror for debootstrap [http://deb.debian.org/debian]
#   KEEP_CONTAINER  1: leave the container (and simulator) running at the end
#   NICE            niceness of the heavy steps [19]
# Needs: debootstrap and systemd-nspawn (installed with apt-get if missing), Java and
# Maven on the host if no broker runs yet (kafka-local.sh fetches the broker's jars).
# Works where PID 1 is not systemd (containers, CI VMs): nspawn runs with --register=no
# --keep-unit, and commands enter the container with nsenter, not machinectl.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROOF_DIR="${PROOF_DIR:-/var/tmp/coinstream-systemd-proof}"
ROOTFS="$PROOF_DIR/rootfs"
REV="${REV:-HEAD}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
NICE="${NICE:-19}"
MACHINE=coinstream-proof
OPT=/opt/coinstream
CTL="sudo -u coinstream $OPT/.venv/bin/supervisorctl -c $OPT/supervisord.conf"
HOSTPY="$REPO/.venv/bin/python"
TAG="$(date +%s)"
TOPIC="systemdproof.$TAG.ticker"

FAILS=0
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; FAILS=$((FAILS + 1)); }
warn() { echo "WARN  $*"; }
step() { echo; echo "=== $*"; }
check() { local what="$1"; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
die() { fail "$*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

[[ $EUID -eq 0 ]] || { echo "run as root" >&2; exit 2; }
mkdir -p "$PROOF_DIR"
cd "$REPO"

# --- cleanup: only what this script started ---------------------------------------
NSPAWN_PID="" SIM_PID="" STARTED_BROKER=""
cleanup() {
  if [[ "${KEEP_CONTAINER:-}" == 1 ]]; then
    echo "KEEP_CONTAINER=1: container (nspawn pid $NSPAWN_PID) and simulator (pid $SIM_PID) left running"
    return
  fi
  if [[ -n "$NSPAWN_PID" ]] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    ct systemctl poweroff >/dev/null 2>&1 || kill -TERM "$NSPAWN_PID" 2>/dev/null
    for _ in $(seq 60); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 1; done
    kill -0 "$NSPAWN_PID" 2>/dev/null && kill -KILL "$NSPAWN_PID"
    echo "container powered off"
  fi
  [[ -n "$SIM_PID" ]] && kill -TERM "$SIM_PID" 2>/dev/null && echo "simulator stopped"
  [[ -n "$STARTED_BROKER" ]] && kafka/kafka-local.sh stop && echo "broker stopped"
}
trap cleanup EXIT

# Run a command inside the booted container (all of its PID 1's namespaces).
ct() { nsenter -t "$CT_PID1" -a "$@"; }

# Records ever written to a topic (sum of the partitions' high watermarks), and with
# "tally" also per exchange and per (exchange, run).
kafka_count() {
  "$HOSTPY" - "$BROKER" "$1" "${2:-}" <<'EOF'
import collections, json, sys
from confluent_kafka import Consumer, TopicPartition
bootstrap, topic, mode = sys.argv[1], sys.argv[2], sys.argv[3]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "coinstream-systemd-proof", "enable.auto.commit": False})
parts = c.list_topics(topic, timeout=10).topics[topic].partitions
ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts}
if mode != "tally":
    print(sum(hi for _, hi in ends.values()))
    sys.exit()
c.assign([TopicPartition(topic, p, lo) for p, (lo, hi) in ends.items() if hi > lo])
left = {p for p, (lo, hi) in ends.items() if hi > lo}
by_ex, runs = collections.Counter(), collections.Counter()
while left:
    m = c.poll(10)
    if m is None:
        break
    if m.error():
        continue
    v = json.loads(m.value())
    by_ex[v["exchange"]] += 1
    runs[v["exchange"] + ":" + str(v.get("run"))] += 1
    if m.offset() + 1 >= ends[m.partition()][1]:
        left.discard(m.partition())
print(json.dumps({"total": sum(by_ex.values()), "by_exchange": by_ex, "runs": runs}))
EOF
}

# --- host prerequisites --------------------------------------------------------------
step "host: tools, venv, broker, simulator"
if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap systemd-container >/dev/null
fi
check "debootstrap and systemd-nspawn present" sh -c "command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null"
[[ -x "$HOSTPY" ]] || nice -n "$NICE" make .venv/.installed >"$PROOF_DIR/host-venv.log" 2>&1 \
  || die "host venv (make .venv/.installed), see $PROOF_DIR/host-venv.log"

if BROKER="$(kafka/kafka-local.sh status 2>/dev/null)"; then
  pass "reusing the running broker at $BROKER (left running)"
else
  BROKER="$(nice -n "$NICE" kafka/kafka-local.sh start)" || die "kafka-local.sh start"
  STARTED_BROKER=1
  pass "started a broker at $BROKER (stopped at the end)"
fi

# Enabled workers (autostart=true), as tests/integration/test_supervisord.py reads them.
mapfile -t WORKERS < <("$HOSTPY" -c '
import configparser
p = configparser.RawConfigParser(); p.read("supervisord.conf")
for s in p.sections():
    if s.startswith("program:") and p.getboolean(s, "autostart", fallback=True):
        print(s.split(":", 1)[1])')
sim_args=(); for w in "${WORKERS[@]}"; do sim_args+=(--exchange "$w"); done
rm -f "$PROOF_DIR/sim.yaml"
nice -n "$NICE" "$HOSTPY" -m simulator "${sim_args[@]}" --rate 5 --markets 3 \
  --write-config "$PROOF_DIR/sim.yaml" >"$PROOF_DIR/sim.out" 2>"$PROOF_DIR/sim.log" &
SIM_PID=$!
for _ in $(seq 100); do [[ -s "$PROOF_DIR/sim.yaml" ]] && break; sleep 0.2; done
check "simulator for ${#WORKERS[@]} exchanges (${WORKERS[*]}), pid $SIM_PID" test -s "$PROOF_DIR/sim.yaml"

# --- the container ----------------------------------------------------------------------
step "container: debootstrap bookworm, boot systemd"
if [[ ! -x "$ROOTFS/lib/systemd/systemd" ]]; then
  # minbase + what the documented install needs (python3.11 + venv, make, sudo) + systemd.
  nice -n "$NICE" debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,python3.11,python3.11-venv,python3-venv,make,sudo,ca-certificates,procps,iproute2,util-linux \
    bookworm "$ROOTFS" "$MIRROR" >"$PROOF_DIR/debootstrap.log" 2>&1 || die "debootstrap, see $PROOF_DIR/debootstrap.log"
  # Local CAs (an egress proxy's), so pip in the container trusts what the host trusts.
  cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/" 2>/dev/null \
    && chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1
  echo "$MACHINE" >"$ROOTFS/etc/hostname"
  echo "127.0.1.1 $MACHINE" >>"$ROOTFS/etc/hosts"
  rm -f "$ROOTFS/etc/machine-id" && chroot "$ROOTFS" systemd-machine-id-setup >/dev/null 2>&1
fi
# A fresh install each run: no logs or runs of a previous one.
rm -rf "$ROOTFS$OPT" "$ROOTFS/etc/coinstream" "$ROOTFS/etc/systemd/system/coinstream.service" \
  "$ROOTFS/etc/systemd/system/multi-user.target.wants/coinstream.service"
chroot "$ROOTFS" userdel coinstream >/dev/null 2>&1

# No --private-network: the container uses the host's 127.0.0.1 (broker, simulator).
# --register=no --keep-unit: no machined / host systemd needed.
setsid nice -n "$NICE" systemd-nspawn -b -D "$ROOTFS" --machine="$MACHINE" --register=no --keep-unit \
  --console=passive >"$PROOF_DIR/nspawn.log" 2>&1 &
NSPAWN_PID=$!
CT_PID1=""
for _ in $(seq 60); do
  CT_PID1="$(pgrep -P "$NSPAWN_PID" | head -1)"
  [[ -n "$CT_PID1" ]] && state="$(ct systemctl is-system-running 2>/dev/null)" \
    && [[ $state == running || $state == degraded ]] && break
  sleep 1
done
check "container booted, PID 1 is $(ct cat /proc/1/comm 2>/dev/null), state ${state:-?}" \
  test "$(ct cat /proc/1/comm 2>/dev/null)" = systemd
[[ -n "$CT_PID1" ]] || die "no container (see $PROOF_DIR/nspawn.log)"

# --- install as docs/operations.md "Running under systemd" says -----------------------------
step "install per docs/operations.md (git archive $REV, useradd, venv, site.yaml, topics, unit)"
ct useradd --system --home-dir "$OPT" --shell /usr/sbin/nologin coinstream
ct mkdir -p "$OPT" /etc/coinstream
git archive "$REV" | ct tar -x -C "$OPT" && ct chown -R coinstream:coinstream "$OPT"
check "repo ($REV) in $OPT, owned by coinstream" test "$(ct stat -c %U "$OPT/supervisord.conf" "$OPT/deploy/coinstream.service" | sort -u)" = coinstream
# The unit runs no broker, so only the .venv (`make setup` would also fetch the broker's
# jars, which needs Java and Maven).
ct nice -n "$NICE" sudo -u coinstream -H make -C "$OPT" .venv/.installed >"$PROOF_DIR/ct-venv.log" 2>&1
check "make .venv/.installed as coinstream (log: $PROOF_DIR/ct-venv.log)" ct test -x "$OPT/.venv/bin/supervisord"

# site.yaml: the simulator's endpoints, the host's broker, no local broker, a topic of this run.
"$HOSTPY" - "$PROOF_DIR/sim.yaml" "$BROKER" "$TAG" >"$PROOF_DIR/site.yaml" <<'EOF'
import sys, yaml
sim, broker, tag = yaml.safe_load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
print(yaml.safe_dump({
    "kafka": {"producer": {"bootstrap.servers": broker}, "local_broker": False},
    "topics": {"ticker": f"systemdproof.{tag}.ticker", "dead_letter": f"systemdproof.{tag}.dead-letter",
               "partitions": 3},
    "exchanges": sim["exchanges"],
}, sort_keys=False), end="")
EOF
ct install -m 0640 -o root -g coinstream /dev/stdin /etc/coinstream/site.yaml <"$PROOF_DIR/site.yaml"
check "coinstream check as coinstream" ct sh -c "cd $OPT && sudo -u coinstream env COINSTREAM_CONFIG=/etc/coinstream/site.yaml .venv/bin/coinstream check >/dev/null"
check "coinstream topics as coinstream ($TOPIC)" ct sh -c "cd $OPT && sudo -u coinstream env COINSTREAM_CONFIG=/etc/coinstream/site.yaml .venv/bin/coinstream topics"
ct cp "$OPT/deploy/coinstream.service" /etc/systemd/system/
ct systemctl daemon-reload

# --- start --------------------------------------------------------------------------------
step "systemctl enable --now coinstream"
ct systemctl enable --now coinstream 2>&1
for _ in $(seq 30); do ct systemctl is-active --quiet coinstream && break; sleep 0.5; done
sleep 2
check "systemctl is-active coinstream: $(ct systemctl is-active coinstream)" ct systemctl is-active --quiet coinstream
ct systemctl status coinstream --no-pager -n 0 | sed -n '1,8p'

all_running() {
  local out; out="$(ct $CTL status 2>/dev/null)" || return 1
  for w in "${WORKERS[@]}"; do grep -Eq "^$w +RUNNING" <<<"$out" || return 1; done
}
for _ in $(seq 60); do all_running && break; sleep 1; done
ct $CTL status
check "supervisorctl status as coinstream: all ${#WORKERS[@]} enabled workers RUNNING" all_running

sleep 10
tally="$(kafka_count "$TOPIC" tally)"
echo "kafka: $tally"
check "records from every enabled exchange on $TOPIC" "$HOSTPY" -c "
import json, sys; t = json.loads(sys.argv[1]); sys.exit(not all(t['by_exchange'].get(w) for w in sys.argv[2:]))" "$tally" "${WORKERS[@]}"

# --- restart kraken as the coinstream user ---------------------------------------------------
step "supervisorctl restart kraken (as coinstream)"
pid_of() { ct $CTL status "$1" | sed -n 's/.*pid \([0-9]*\),.*/\1/p'; }
before_pid="$(pid_of kraken)"; before_count="$(kafka_count "$TOPIC")"
ct $CTL restart kraken
sleep 8
after_pid="$(pid_of kraken)"
echo "kraken pid $before_pid -> $after_pid"
check "kraken restarted with a new pid ($before_pid -> $after_pid), RUNNING" \
  test -n "$after_pid" -a "$after_pid" != "$before_pid"
tally="$(kafka_count "$TOPIC" tally)"
after_count="$("$HOSTPY" -c 'import json,sys; print(json.loads(sys.argv[1])["total"])' "$tally")"
kraken_runs="$("$HOSTPY" -c 'import json,sys; print(sorted((k, v) for k, v in json.loads(sys.argv[1])["runs"].items() if k.startswith("kraken:")))' "$tally")"
echo "records on $TOPIC: $before_count before the restart, $after_count after; kraken runs: $kraken_runs"
check "two kraken runs on the topic (before and after the restart)" test "$(grep -o "'kraken:" <<<"$kraken_runs" | wc -l)" -eq 2

# --- what the unit sets ---------------------------------------------------------------------------
step "unit properties and a worker's process"
ct systemctl show coinstream -p User,WorkingDirectory,LimitNOFILE,UMask,KillMode,TimeoutStopUSec,Restart
check "User=coinstream WorkingDirectory=$OPT LimitNOFILE=65536" test \
  "$(for p in User WorkingDirectory LimitNOFILE; do ct systemctl show coinstream -p $p --value; done | paste -sd,)" = "coinstream,$OPT,65536"
K="$(ct pgrep -u coinstream -f 'workers\.kraken')"
nofile="$(ct awk '/Max open files/ {print $4 "/" $5}' /proc/$K/limits)"
ct grep -E 'Max open files' /proc/$K/limits
ct grep -E '^(Uid|Umask|NoNewPrivs)' /proc/$K/status
check "kraken worker (pid $K) runs as coinstream, umask 0027, no_new_privs" ct sh -c \
  "[ \$(stat -c %U /proc/$K) = coinstream ] && grep -q 'Umask:.0027' /proc/$K/status && grep -q 'NoNewPrivs:.1' /proc/$K/status"
if [[ $nofile == 65536/65536 ]]; then
  pass "kraken worker: open files 65536 (soft/hard)"
else
  # systemd clamps LimitNOFILE to what it may set (setrlimit_closest): in a container whose
  # PID 1 has a lower hard limit and no CAP_SYS_RESOURCE, that lower limit.
  pid1="$(ct awk '/Max open files/ {print $5}' /proc/1/limits)"
  warn "kraken worker: open files $nofile, not 65536: the container's PID 1 has a hard limit of $pid1" \
       "and cannot raise it (this machine's limit, not the unit's)"
  # Show that systemd does apply the unit's LimitNOFILE when it can: a value under the ceiling.
  ct mkdir -p /run/systemd/system/coinstream.service.d
  printf '[Service]\nLimitNOFILE=%s\n' "$((pid1 / 2))" | ct tee /run/systemd/system/coinstream.service.d/probe.conf >/dev/null
  ct systemctl daemon-reload; ct systemctl restart coinstream; sleep 4
  K2="$(ct pgrep -u coinstream -f 'workers\.kraken')"
  check "probe: LimitNOFILE=$((pid1 / 2)) reaches a worker ($(ct awk '/Max open files/ {print $4 "/" $5}' /proc/$K2/limits))" \
    test "$(ct awk '/Max open files/ {print $4 "/" $5}' /proc/$K2/limits)" = "$((pid1 / 2))/$((pid1 / 2))"
  ct rm -r /run/systemd/system/coinstream.service.d; ct systemctl daemon-reload; ct systemctl restart coinstream
  for _ in $(seq 60); do all_running && break; sleep 1; done
  check "back on the shipped unit, all workers RUNNING" all_running
  K="$(ct pgrep -u coinstream -f 'workers\.kraken')"
fi

step "hardening: what the workers can and cannot write"
ct nsenter -t "$K" -m setpriv --reuid coinstream --regid coinstream --init-groups sh -c "
  touch $OPT/spool/.probe $OPT/logs/.probe $OPT/run/.probe && rm $OPT/spool/.probe $OPT/logs/.probe $OPT/run/.probe" \
  && pass "spool/, logs/, run/ writable in the service's namespace" || fail "spool/, logs/, run/ writable"
check "ProtectSystem=full: /etc and /usr read-only for the service" ct nsenter -t "$K" -m sh -c \
  "! touch /etc/.probe 2>/dev/null && ! touch /usr/.probe 2>/dev/null"
# (as root one could still list a mode-000 dir: check the mounts, and as coinstream)
check "ProtectHome=true: /root and /home inaccessible to the service" ct nsenter -t "$K" -m sh -c \
  "grep -q 'inaccessible.* /home ' /proc/self/mountinfo && grep -q 'inaccessible.* /root ' /proc/self/mountinfo \
   && ! setpriv --reuid coinstream --regid coinstream --init-groups ls /home >/dev/null 2>&1"
check "PrivateTmp=true: the service's /tmp is its own" ct nsenter -t "$K" -m sh -c \
  "grep -q 'systemd-private-.*coinstream.service.*/tmp /tmp ' /proc/self/mountinfo"
check "supervisor socket 0700 coinstream" test "$(ct stat -c '%a %U' "$OPT/run/supervisor.sock")" = "700 coinstream"
check "supervisorctl refused to another user (nobody)" ct sh -c "! sudo -u nobody $OPT/.venv/bin/supervisorctl -c $OPT/supervisord.conf status >/dev/null 2>&1"
check "make status as coinstream: every worker healthy" ct sh -c \
  "cd $OPT && sudo -u coinstream env COINSTREAM_CONFIG=/etc/coinstream/site.yaml .venv/bin/coinstream status --window 2"

# --- clean stop ------------------------------------------------------------------------------
step "systemctl stop coinstream"
t0="$(now)"; ct systemctl stop coinstream; t1="$(now)"
took="$(elapsed "$t0" "$t1")"
echo "stop took $took s; $(ct systemctl show coinstream -p Result,ExecMainStatus,ActiveState | paste -sd' ')"
check "stopped within TimeoutStopSec=45 ($took s), Result=success, exit 0" test \
  "$(awk -v t="$took" 'BEGIN { print (t < 45) }')$(ct systemctl show coinstream -p Result,ExecMainStatus --value | paste -sd,)" = "1success,0"
check "no coinstream process left" ct sh -c "! pgrep -u coinstream >/dev/null"
for w in "${WORKERS[@]}"; do ct tail -n 3 "$OPT/logs/$w.log" | sed "s/^/  /"; done | grep -E 'stopping|stopped' | head -4
flushed=0; for w in "${WORKERS[@]}"; do ct sh -c "tail -n 1 $OPT/logs/$w.log | grep -q ' $w stopped$'" && flushed=$((flushed + 1)); done
check "every worker's log ends with '<exchange> stopped' ($flushed/${#WORKERS[@]})" test "$flushed" -eq "${#WORKERS[@]}"
# Every run of every worker ended cleanly so far (restart and stop), so the last
# counters line of each run holds all it delivered: their sum must equal the topic.
delivered="$(for w in "${WORKERS[@]}"; do ct cat "$OPT/logs/$w.log"; done | awk '
    / run [0-9a-f]+: / { total += last; last = 0 }
    / counters / { for (i = 1; i <= NF; i++) if ($i ~ /^delivered=/) { split($i, a, "="); last = a[2] } }
    END { print total + last }')"
on_topic="$(kafka_count "$TOPIC")"
echo "sum of the workers' final delivered= counters: $delivered; records on $TOPIC: $on_topic"
check "every delivered record is on the topic, nothing more ($delivered = $on_topic)" test "$delivered" = "$on_topic"

# --- crash: Restart=on-failure ----------------------------------------------------------------------
step "SIGKILL supervisord: Restart=on-failure"
ct systemctl start coinstream
for _ in $(seq 60); do all_running && break; sleep 1; done
main1="$(ct systemctl show coinstream -p MainPID --value)"; n1="$(ct systemctl show coinstream -p NRestarts --value)"
crash_at="$(date +%s)"
t0="$(now)"
ct systemctl kill --kill-who=main -s SIGKILL coinstream
sleep 1
echo "after the kill: $(ct systemctl show coinstream -p ActiveState,SubState,Result | paste -sd' ')"
for _ in $(seq 30); do
  main2="$(ct systemctl show coinstream -p MainPID --value)"
  [[ "$main2" != 0 && "$main2" != "$main1" ]] && ct systemctl is-active --quiet coinstream && break
  sleep 0.5
done
t1="$(now)"; n2="$(ct systemctl show coinstream -p NRestarts --value)"
echo "supervisord pid $main1 -> $main2 after $(elapsed "$t0" "$t1") s; NRestarts $n1 -> $n2"
check "supervisord back (new MainPID, NRestarts+1, active)" test "$main2" != 0 -a "$main2" != "$main1" -a "$n2" -eq $((n1 + 1))
for _ in $(seq 60); do all_running && break; sleep 1; done
check "all workers RUNNING again" all_running
# The workers left behind get SIGTERM from systemd (KillMode=control-group) and flush, but
# their last log lines are lost: supervisord, which writes the log files, is gone. So the
# journal is the witness: systemd logs "Killing process N (python) with signal SIGKILL"
# for every process it kills that way (KillMode=mixed does so at once), but not the SIGTERM.
ct journalctl -u coinstream --since "@$crash_at" --no-pager -o cat | grep -E 'SIGKILL|SIGTERM' | head -5 | sed 's/^/  /'
check "no worker got SIGKILL after the crash: they got SIGTERM and exited (journal since the kill)" ct sh -c \
  "! journalctl -u coinstream --since @$crash_at --no-pager -o cat | grep -q 'Killing process .* with signal SIGKILL'"
c1="$(kafka_count "$TOPIC")"; sleep 5; c2="$(kafka_count "$TOPIC")"
check "records flow again ($c1 -> $c2)" test "$c2" -gt "$c1"
ct systemctl stop coinstream

echo
if ((FAILS == 0)); then echo "ALL PASSED"; else echo "$FAILS FAILED"; fi
exit $((FAILS > 0))
