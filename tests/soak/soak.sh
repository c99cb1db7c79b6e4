#!/usr/bin/env bash
# soak.sh: three ipc-nodes on namespaced hosts carry confirmed traffic and
# publications through SOAK_SECONDS (default 60) of chaos; at the end every
# message is accounted for.
#
# Hosts h1 h2 h3 as in tests/hosts/test_mdns.sh: each its own network,
# mount and UTS namespaces on a bridge (198.18.0.0/24 only), its own
# dbus-daemon and avahi-daemon; the nodes find each other by mDNS alone.
# On each host (tests/soak/soak_traffic):
#   receivers rx.H.0, rx.H.1   each holds its name, subscribes to soak.*,
#                              records every copy it reads
#   senders   H.s0, H.s1       send numbered, checksummed messages with
#                              IPCNET_CONFIRM to the four receivers of the
#                              other hosts in turn (SOAK_RATE a second each,
#                              up to 2 KiB), and every 4th time publish on
#                              soak.ID; ledger lines before and after each
#                              send (they survive the sender's SIGKILL)
#   a monitor                  records names and peers coming and going
# All clients connect with IPCNET_RECONNECT.
#
# The chaos (tests/soak/chaos.sh), one action at a time, each followed by
# a settle (mesh and names back): SIGKILL a node and start it again,
# SIGSTOP a node for 2.5 s (twice the liveness window), restart
# avahi-daemon, drop everything with nft for 3 s, drop 5% at random with
# nft (numgen random mod 100 < 5), ip link set down for 3 s, a tc tbf of
# 1mbit for 5 s, SIGKILL senders, SIGKILL receivers, stop receivers
# cleanly (SIGTERM). Then everything is healed, the hosts settle, and a
# calm phase of 6 s follows before the senders and receivers stop cleanly.
#
# What counts as right (tests/soak/account.py has the rules):
# - every message is delivered (confirmed, read exactly once, checksum
#   right, by the name it was sent to, in order per sender in each
#   receiver), or reported failed to its sender with a reason. A definite
#   failure (ENOENT, ENOTCONN, ECONNRESET from the receiver's node...) is
#   never read. EHOSTUNREACH ("not acknowledged"), ECONNRESET of the
#   sender's own node going away mid-send, and a sender SIGKILLed between
#   its two ledger lines are outcomes the API leaves open: read or not,
#   both are right, and how many were read is printed.
# - A receiver SIGKILLed loses what its node had written to its socket
#   (and what its library had read but it had not recorded): the API says
#   a confirmed message may die with its receiver unread. Those messages
#   are a category of their own, "confirmed, then lost in a SIGKILLed
#   receiver", allowed only for a send begun before a SIGKILL of its
#   receiver and confirmed at most 2 s before it. A receiver stopped
#   cleanly (SIGTERM: unbind, read until 1 s of quiet) must lose nothing,
#   and neither must a receiver whose node is killed (what is in its
#   socket is still read).
# - unaccounted = 0, duplicates = 0, out of order = 0, corrupt = 0.
# - publications are not confirmed (a subscriber away misses them and
#   nothing says so): never duplicated, never out of order, never corrupt;
#   in the calm phase, every subscriber gets every one.
# - in the calm phase every send is confirmed and read.
# - false peer losses = 0: a loss in a node's log is expected only while
#   the lost node, or the one losing it, was killed, stopped, cut off
#   (nft drop-all, link down) or within 3 s after; a loss during an
#   avahi restart, 5% random drops, the tbf, or client kills is false.
# It also prints the longest time a name took to be seen again on the
# other hosts after its node came back (restarted and answering, SIGCONT,
# link healed).
#
# SOAK_SECONDS (60), SOAK_RATE (25 a second a sender), SOAK_SEED (random;
# printed, to replay the same choice of hosts), SOAK_CHAOS (the actions, in
# turn: "tbf stop" to chase one), CHAOS_TBF_RATE (1mbit), CHAOS_STOP_S
# (2.5). HOSTS_KEEP=1 keeps the logs and records. Needs root; skipped
# (exit 77) otherwise.

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/hosts/lib.sh
. "$HERE/../hosts/lib.sh"
# shellcheck source=tests/lib.sh
. "$HERE/../lib.sh"
# shellcheck source=tests/soak/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/soak/chaos.sh
. "$HERE/chaos.sh"

skip() {
    echo "SKIP: soak: $*"
    exit 77
}

if [ -z "${IPC_NODE:-}" ] || [ "$IPC_NODE" = ipc-node ]; then
    IPC_NODE=${TOP_BUILDDIR:-.}/ipc-node
fi
IPC_NODE=$(readlink -f "$IPC_NODE" 2>/dev/null || echo "$IPC_NODE")
[ -x "$IPC_NODE" ] || skip "no ipc-node binary at $IPC_NODE"
traffic_find || skip "no soak_traffic binary (make check builds tests/soak/soak_traffic)"
reason=$(hosts_skip_reason)
[ -z "$reason" ] || skip "$reason"
for t in nft tc python3; do
    command -v $t >/dev/null 2>&1 || skip "$t not found (packages: nftables iproute2 python3)"
done

SOAK_SECONDS=${SOAK_SECONDS:-60}
SOAK_RATE=${SOAK_RATE:-25}
SOAK_SEED=${SOAK_SEED:-$((($$ * 7919 + $(date +%s)) % 32768))}
[[ $SOAK_SECONDS =~ ^[0-9]+$ ]] && ((SOAK_SECONDS <= 86400)) || skip "bad SOAK_SECONDS"
RANDOM=$SOAK_SEED
HOSTS=(h1 h2 h3)
NODE_ARGS=()

bail() {
    not_ok "$1" "${@:2}"
    echo "# bailing out: the remaining steps need this"
    echo "$passed passed, $failed failed"
    exit 1
}

log_tail() {
    tail -n "${2:-8}" "$1" 2>/dev/null
}

mesh_up() {
    local h o others
    for h in "${HOSTS[@]}"; do
        others=()
        for o in "${HOSTS[@]}"; do
            [ "$o" = "$h" ] || others+=("$o")
        done
        peers_up_all "$h" "${others[@]}" || return 1
    done
}

RX_NAMES=()
names_everywhere() {
    local h
    for h in "${HOSTS[@]}"; do
        services_all "$h" "${RX_NAMES[@]}" || return 1
    done
}

settled() {
    mesh_up && names_everywhere
}

# After each action: until the mesh and every name are back (15 s at
# most), then a second more.
settle() {
    wait_until 15000 settled || echo "# chaos: not settled after 15 s; going on"
    sleep 1
}

soak_cleanup() {
    local rc=$?
    chaos_heal_all
    (exit $rc)
    hosts_cleanup
}

# --- setup ------------------------------------------------------------------------------

echo "# ipc-node: $IPC_NODE"
echo "# soak_traffic: $SOAK_TRAFFIC"
echo "# SOAK_SECONDS=$SOAK_SECONDS SOAK_RATE=$SOAK_RATE SOAK_SEED=$SOAK_SEED"
hosts_init || bail "setup: bridge namespace"
trap soak_cleanup EXIT
TRAFFIC_DIR=$HOSTS_DIR/traffic
mkdir -p "$TRAFFIC_DIR"
CHAOS_LOG=$TRAFFIC_DIR/chaos.log
: >"$CHAOS_LOG"
for h in "${HOSTS[@]}"; do
    host_create "$h" || bail "setup: host $h"
    host_dbus_start "$h" || bail "setup: dbus-daemon in $h"
    host_avahi_start "$h" nowait
done
for h in "${HOSTS[@]}"; do
    host_avahi_wait "$h" || bail "setup: avahi-daemon in $h"
    node_launch "$h" main "${NODE_ARGS[@]}" --name "$h"
done
for h in "${HOSTS[@]}"; do
    node_wait "$h" main || bail "setup: node on $h" "$(log_tail "$HOSTS_DIR/$h.main.log")"
done
wait_until 15000 mesh_up
check "setup: h1 h2 h3 find each other by mDNS and list each other up" $? \
    "$(node_cli h1 main 3 --peers 2>&1)"
for h in "${HOSTS[@]}"; do
    mon_start "$h" || bail "setup: monitor on $h" "$(cat "$TRAFFIC_DIR/mon.$h.0.err")"
    for i in 0 1; do
        RX_NAMES+=("rx.$h.$i")
        rx_start "$h" "rx.$h.$i" --subscribe 'soak.*' ||
            bail "setup: receiver rx.$h.$i" "$(cat "$TRAFFIC_DIR/rx.rx.$h.$i.0.err")"
    done
done
wait_until 10000 names_everywhere
check "setup: every node lists the six receivers' names" $? "$(node_cli h1 main 3 --services 2>&1)"
CHAOS_RECEIVERS=("${RX_NAMES[@]}")
for h in "${HOSTS[@]}"; do
    to=()
    for n in "${RX_NAMES[@]}"; do
        [[ $n == rx.$h.* ]] || to+=("$n")
    done
    for i in 0 1; do
        id=$h.s$i
        CHAOS_SENDERS+=("$id")
        tx_start "$h" "$id" --to "$(IFS=,; echo "${to[*]}")" --confirm --rate "$SOAK_RATE" \
            --size-max 2048 --topic "soak.$id" --pub-every 4
    done
done
sleep 2

# --- chaos ------------------------------------------------------------------------------

t_chaos=$(now_ms)
CHAOS_SETTLE=settle
chaos_run "$SOAK_SECONDS"
chaos_heal_all
t_end=$(now_ms)
echo "# chaos: $(((t_end - t_chaos) / 1000)) s: $(for k in "${!CHAOS_DONE[@]}"; do printf '%s=%s ' "$k" "${CHAOS_DONE[$k]}"; done)"
wait_until 30000 settled
st=$?
echo "# settled ${WAITED_MS} ms after the last action"
check "after the chaos: the mesh and every name are back within 30 s" $st \
    "h1: $(node_cli h1 main 3 --peers 2>&1)" "h2: $(node_cli h2 main 3 --peers 2>&1)" \
    "h3: $(node_cli h3 main 3 --peers 2>&1)" "$(node_cli h1 main 3 --services 2>&1)"
if ((SOAK_SECONDS >= 60)); then
    missing=""
    for k in kill stop avahi block probdrop linkdown tbf killtx killrx termrx; do
        [ -n "${CHAOS_DONE[$k]:-}" ] || missing+="$k "
    done
    check "the chaos did every kind of action at least once" "$([ -z "$missing" ]; echo $?)" \
        "never done: $missing"
fi

# --- calm, then stop ------------------------------------------------------------------------

sleep 2
t_c0=$(now_ms)
sleep 6
t_c1=$(now_ms)
chaos_event calm - "$t_c0" "$t_c1"
pids=()
for id in "${CHAOS_SENDERS[@]}"; do
    pids+=("${TX_PID[$id]}")
done
stop_all "${pids[@]}"
sleep 1
pids=()
for n in "${RX_NAMES[@]}"; do
    pids+=("${RX_PID[$n]}")
done
stop_all "${pids[@]}"
for h in "${HOSTS[@]}"; do
    mon_stop "$h"
done
st=0
dead=""
for h in "${HOSTS[@]}"; do
    pid_alive "${NODE_PID[$h/main]}" || { st=1; dead+="$h "; }
done
check "every node is running at the end" $st "not running: $dead"

# --- the accounts ---------------------------------------------------------------------------

logs=()
for h in "${HOSTS[@]}"; do
    logs+=(--node-log "$h=$HOSTS_DIR/$h.main.log")
done
out=$(python3 "$HERE/account.py" "$TRAFFIC_DIR" --chaos "$CHAOS_LOG" "${logs[@]}" 2>&1)
st=$?
echo "# totals:"
sed 's/^/#   /' <<<"$out"
value() {
    awk -v k="$1" '{ v = $NF; $NF = ""; sub(/ +$/, ""); if ($0 == k) { print v; exit } }' \
        <<<"$out"
}
for k in unaccounted duplicates "out of order" corrupt misdelivered "read but never sent" \
    "publication duplicates" "publications out of order" "false peer losses" \
    "calm phase: not confirmed and read" "calm phase: publication copies missing" \
    "receivers that ended uncleanly, not killed"; do
    v=$(value "$k")
    check "$k: ${v:-?} (must be 0)" "$([ "$v" = 0 ]; echo $?)" \
        "$(grep -i "^# $k" <<<"$out" | head -5)"
done
v=$(value delivered)
check "messages delivered: ${v:-?} (some must be)" "$([ "${v:-0}" -gt 0 ]; echo $?)"
check "account.py's verdict" $st "$(tail -1 <<<"$out")"
summary
