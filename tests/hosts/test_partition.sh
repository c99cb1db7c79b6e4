#!/usr/bin/env bash
# test_partition.sh: links cut between ipc-nodes on three virtual hosts,
# with traffic flowing, and healed.
#
# Hosts h1 h2 h3 as in test_mdns.sh (tests/hosts/lib.sh: network, mount
# and UTS namespaces, 198.18.0.0/24 on a bridge of their own), nodes with
# --no-mdns, h2 and h3 given h1 as --peer (gossip makes the mesh), so
# that nothing but the cut decides who sees whom. The heartbeat is the
# default, 500 ms: a peer silent for 2.5 of them (1250 ms) is lost.
# Traffic: soak_traffic (tests/soak) senders with --async (errors come
# back later, by id) and with --confirm, receivers that record every copy
# they read; tests/soak/account.py accounts for every message.
#
#   1  cut h1 <-> h2 only (an nft rule in h1's namespace drops what comes
#      from or goes to h2; both still reach h3): h1 and h2 each lose the
#      other within 2 s (measured), h3 loses nobody; the messages sent
#      from h1 to h2 into the cut fail back (EHOSTUNREACH for those in
#      flight, then ENOENT once the name is gone), none vanish, none is
#      read twice or out of order; healed, h1 and h2 are up again and
#      h2's name is back on h1 within 10 s (measured), same processes
#   2  h3's link down (ip link set eth0 down in h3): h1 and h2 lose h3 and
#      h3 loses both within 2 s; the same accounting for messages to and
#      from h3; up again, all rejoin, names back within 10 s
#   3  partitions that heal while messages are in flight (h2 cut off by
#      nft for 0.6 s, 1.2 s and 2 s, around the liveness window, under
#      a stream of large async messages from h1 and h3): whether or not
#      the loss was detected, no message is read twice, none out of
#      order, none vanishes
#   and no peer loss is logged outside the cuts (false losses: 0), no
#      node died or was restarted
#
# Needs root; skipped (exit 77) otherwise. HOSTS_KEEP=1 keeps the logs.

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/hosts/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/lib.sh
. "$HERE/../lib.sh"
# shellcheck source=tests/soak/lib.sh
. "$HERE/../soak/lib.sh"

skip() {
    echo "SKIP: test_partition: $*"
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
command -v nft >/dev/null 2>&1 || skip "nft not found (package nftables)"
command -v python3 >/dev/null 2>&1 || skip "python3 not found"
ACCOUNT=$HERE/../soak/account.py

HOSTS=(h1 h2 h3)
DETECT_MS=2000      # 2.5 heartbeats of 500 ms, and the node's tick
REJOIN_MS=10000
TIMINGS=()
CHAOS_LOG=

timing() {
    TIMINGS+=("$*")
    echo "# timing: $*"
}

bail() {
    not_ok "$1" "${@:2}"
    echo "# bailing out: the remaining steps need this"
    echo "$passed passed, $failed failed"
    exit 1
}

log_tail() {
    tail -n "${2:-8}" "$1" 2>/dev/null
}

others_of() {
    local h
    for h in "${HOSTS[@]}"; do
        [ "$h" = "$1" ] || printf '%s ' "$h"
    done
}

# mesh_up: every node lists the other two up.
mesh_up() {
    local h
    for h in "${HOSTS[@]}"; do
        # shellcheck disable=SC2046
        peers_up_all "$h" $(others_of "$h") || return 1
    done
}

# names_everywhere NAME...: every node lists every NAME.
names_everywhere() {
    local h
    for h in "${HOSTS[@]}"; do
        services_all "$h" "$@" || return 1
    done
}

# cut_pair A B / heal_pair A: an nft table in A's namespace that drops
# what A exchanges with B's address (A and B still reach the others).
cut_pair() {
    local b
    b=$(host_ip "$2")
    ip netns exec "${HOST_NS[$1]}" nft -f - <<EOF
table inet ipcnet_test_pair {
    chain pin { type filter hook input priority -300; policy accept; ip saddr $b drop; }
    chain pout { type filter hook output priority -300; policy accept; ip daddr $b drop; }
}
EOF
}
heal_pair() {
    ip netns exec "${HOST_NS[$1]}" nft delete table inet ipcnet_test_pair
}

# event KIND TARGET T0 T1: one line of the chaos log account.py reads.
event() {
    echo "$1 $2 $3 $4" >>"$CHAOS_LOG"
}

# Starts a case: records in $HOSTS_DIR/NAME, a receiver rx.H.0 on each
# host, names seen everywhere.
case_begin() {
    TRAFFIC_DIR=$HOSTS_DIR/$1
    mkdir -p "$TRAFFIC_DIR"
    local h
    RX_INC=()
    for h in "${HOSTS[@]}"; do
        rx_start "$h" "rx.$h.0" || not_ok "$1: receiver on $h binds" \
            "$(cat "$TRAFFIC_DIR/rx.rx.$h.0.0.err" 2>/dev/null)"
    done
    wait_until 10000 names_everywhere rx.h1.0 rx.h2.0 rx.h3.0 ||
        not_ok "$1: before: every node lists rx.h1.0 rx.h2.0 rx.h3.0" \
            "$(node_cli h1 main 3 --services 2>&1)"
}

# case_end CASE ID...: stops the senders (they report what came back
# late), then the receivers (cleanly: they read what is on its way), and
# accounts for every message; checks the verdict and prints the totals.
case_end() {
    local c=$1 id h out st pids=()
    shift
    for id in "$@"; do
        pids+=("${TX_PID[$id]}")
    done
    stop_all "${pids[@]}"
    sleep 0.5
    pids=()
    for h in "${HOSTS[@]}"; do
        pids+=("${RX_PID[rx.$h.0]}")
    done
    stop_all "${pids[@]}"
    out=$(python3 "$ACCOUNT" "$TRAFFIC_DIR" --chaos "$CHAOS_LOG" 2>&1)
    st=$?
    sed 's/^/#   /' <<<"$out"
    check "$c: every message accounted for: read once, in order, intact, or failed back" \
        $st "$out"
    ACCOUNT_OUT=$out
}

# account_value KEY: a figure of the last accounting ("" if absent).
account_value() {
    awk -v k="$1" '{ v = $NF; $NF = ""; sub(/ +$/, ""); if ($0 == k) { print v; exit } }' \
        <<<"$ACCOUNT_OUT"
}

# led_count ID ERRNAME: sends of ID that failed with ERRNAME, at once or later.
led_count() {
    awk -v e="$2" '($1 == "R" && $5 == e) || ($1 == "E" && $5 == e) { n++ } END { print n + 0 }' \
        "$TRAFFIC_DIR/led.$1"
}

# detect_ms H PEER T0: ms from T0 to H's monitor reporting PEER down ("-").
detect_ms() {
    local t
    t=$(mon_first "$1" down peer "$2" "$3")
    [ -n "$t" ] && echo $((t - $3)) || echo -
}

# has_event H DIR WHAT NAME T0: H's monitor saw it at or after T0.
has_event() {
    [ -n "$(mon_first "$1" "$2" "$3" "$4" "$5")" ]
}

# ms_after T T0: T - T0, or "-" when T is empty.
ms_after() {
    if [ -n "$1" ]; then echo $(($1 - $2)); else echo -; fi
}

# within MS LIMIT: MS is a number no larger than LIMIT.
within() {
    [ "$1" != - ] && [ "$1" -le "$2" ]
}

# --- setup ------------------------------------------------------------------------------

echo "# ipc-node: $IPC_NODE"
echo "# soak_traffic: $SOAK_TRAFFIC"
hosts_init || bail "setup: bridge namespace"
CHAOS_LOG=$HOSTS_DIR/chaos.log
: >"$CHAOS_LOG"
for h in "${HOSTS[@]}"; do
    host_create "$h" || bail "setup: host $h"
done
node_start h1 main --no-mdns --name h1 || bail "setup: node on h1" "$(log_tail "$HOSTS_DIR/h1.main.log")"
for h in h2 h3; do
    node_start "$h" main --no-mdns --name "$h" --peer "tcp://$(host_ip h1):5680" ||
        bail "setup: node on $h" "$(log_tail "$HOSTS_DIR/$h.main.log")"
done
wait_until 10000 mesh_up
check "setup: h1 h2 h3 list each other up (h2, h3 given h1 as --peer)" $? \
    "h1: $(node_cli h1 main 3 --peers 2>&1)" "h2: $(node_cli h2 main 3 --peers 2>&1)"
timing "mesh of 3 formed ${WAITED_MS} ms after the nodes answered"
declare -A PID0=()
for h in "${HOSTS[@]}"; do
    PID0[$h]=${NODE_PID[$h/main]}
done
TRAFFIC_DIR=$HOSTS_DIR
for h in "${HOSTS[@]}"; do
    mon_start "$h" || bail "setup: monitor on $h" "$(cat "$HOSTS_DIR/mon.$h.0.err")"
done

# --- 1: h1 <-> h2 cut, both still reach h3 ----------------------------------------------

case_begin 1
tx_start h1 a1 --to rx.h2.0 --async --rate 200 --size-max 1024
tx_start h1 c1 --to rx.h2.0 --confirm --rate 50 --size-max 1024
tx_start h2 c2 --to rx.h1.0 --confirm --rate 50 --size-max 1024
tx_start h3 c3 --to rx.h2.0,rx.h1.0 --confirm --rate 50 --size-max 1024
sleep 2
t_cut=$(now_ms)
cut_pair h1 h2 || bail "1: nft rule in h1 cutting it from h2"
wait_until 5000 eval 'has_event h1 down peer h2 $t_cut && has_event h2 down peer h1 $t_cut'
d1=$(detect_ms h1 h2 "$t_cut")
d2=$(detect_ms h2 h1 "$t_cut")
timing "cut h1<->h2: h1 lost h2 after $d1 ms, h2 lost h1 after $d2 ms (window 1250 ms)"
st=0
within "$d1" $DETECT_MS && within "$d2" $DETECT_MS || st=1
check "1: cut h1<->h2 detected within $DETECT_MS ms on both sides ($d1, $d2 ms)" $st \
    "$(log_tail "$HOSTS_DIR/h1.main.log")" "$(log_tail "$HOSTS_DIR/h2.main.log")"
sleep 2.5
st=0
peers_up_all h3 h1 h2 || st=1
has_event h3 down peer h1 "$t_cut" && st=1
has_event h3 down peer h2 "$t_cut" && st=1
check "1: h3, which still reaches both, loses neither" $st "$(node_cli h3 main 3 --peers 2>&1)"
services_all h1 rx.h2.0
st=$?
[ $st = 0 ] && st=1 || st=0
check "1: during the cut h1 no longer lists rx.h2.0" $st "$(node_cli h1 main 3 --services 2>&1)"
t_heal=$(now_ms)
heal_pair h1 || not_ok "1: removing the nft rule"
event block h1 "$t_cut" "$t_heal"
wait_until $REJOIN_MS eval 'has_event h1 up name rx.h2.0 $t_heal && has_event h2 up name rx.h1.0 $t_heal'
st=$?
u1=$(mon_first h1 up peer h2 "$t_heal")
n1=$(mon_first h1 up name rx.h2.0 "$t_heal")
n2=$(mon_first h2 up name rx.h1.0 "$t_heal")
timing "healed h1<->h2: h2 up on h1 after $(ms_after "$u1" "$t_heal") ms; rx.h2.0 back on h1 after $(ms_after "$n1" "$t_heal") ms, rx.h1.0 on h2 after $(ms_after "$n2" "$t_heal") ms"
check "1: healed: h1 and h2 up again and each other's names back within $REJOIN_MS ms" $st \
    "h1: $(node_cli h1 main 3 --peers 2>&1)" "$(node_cli h1 main 3 --services 2>&1)"
sleep 2
case_end 1 a1 c1 c2 c3
n=$(led_count a1 EHOSTUNREACH)
m=$(led_count a1 ENOENT)
st=0
[ "$n" -gt 0 ] || st=1
check "1: messages from h1 in flight into the cut failed back with EHOSTUNREACH ($n), later ones with ENOENT ($m)" \
    $st "$(grep -c '^I' "$TRAFFIC_DIR/led.a1") sent" "$(grep '^E' "$TRAFFIC_DIR/led.a1" | head -5)"
n=$(awk '$1 == "R" && $5 != "OK" { n++ } END { print n + 0 }' "$TRAFFIC_DIR/led.c3")
st=0
[ "$n" = 0 ] || st=1
check "1: h3's confirmed sends to h1 and h2 all succeeded through the cut ($n failed)" $st \
    "$(awk '$1 == "R" && $5 != "OK"' "$TRAFFIC_DIR/led.c3" | head -5)"

# --- 2: h3's link down ------------------------------------------------------------------

case_begin 2
tx_start h1 a1 --to rx.h3.0 --async --rate 200 --size-max 1024
tx_start h2 c2 --to rx.h3.0 --confirm --rate 50 --size-max 1024
tx_start h3 c3 --to rx.h1.0,rx.h2.0 --confirm --rate 50 --size-max 1024
wait_until 5000 mesh_up
sleep 2
t_cut=$(now_ms)
host_link_down h3 || bail "2: ip link set eth0 down in h3"
wait_until 5000 eval 'has_event h1 down peer h3 $t_cut && has_event h2 down peer h3 $t_cut &&
    has_event h3 down peer h1 $t_cut && has_event h3 down peer h2 $t_cut'
st=0
fig=""
for p in "h1 h3" "h2 h3" "h3 h1" "h3 h2"; do
    # shellcheck disable=SC2086
    d=$(detect_ms $p "$t_cut")
    fig+="${p% *} lost ${p#* } after $d ms; "
    within "$d" $DETECT_MS || st=1
done
timing "h3's link down: $fig"
check "2: h3's link down detected within $DETECT_MS ms by h1, h2 and h3" $st "$fig" \
    "$(log_tail "$HOSTS_DIR/h3.main.log")"
sleep 1.5
t_heal=$(now_ms)
host_link_up h3 || not_ok "2: ip link set eth0 up in h3"
event linkdown h3 "$t_cut" "$t_heal"
wait_until $REJOIN_MS eval 'has_event h1 up name rx.h3.0 $t_heal && has_event h2 up name rx.h3.0 $t_heal &&
    has_event h3 up name rx.h1.0 $t_heal && has_event h3 up name rx.h2.0 $t_heal'
st=$?
fig=""
for p in "h1 rx.h3.0" "h2 rx.h3.0" "h3 rx.h1.0" "h3 rx.h2.0"; do
    # shellcheck disable=SC2086
    t=$(mon_first ${p% *} up name ${p#* } "$t_heal")
    fig+="${p#* } on ${p% *} after $(ms_after "$t" "$t_heal") ms; "
done
timing "h3's link up again: names back: $fig"
check "2: link up again: names back everywhere within $REJOIN_MS ms" $st "$fig" \
    "h3: $(node_cli h3 main 3 --peers 2>&1)"
sleep 2
case_end 2 a1 c2 c3
n=$(led_count a1 EHOSTUNREACH)
st=0
[ "$n" -gt 0 ] || st=1
check "2: messages from h1 in flight to h3 failed back with EHOSTUNREACH ($n)" $st \
    "$(grep '^E' "$TRAFFIC_DIR/led.a1" | head -5)"

# --- 3: partitions that heal with messages in flight ---------------------------------------

for cut in 0.6 1.2 2.0; do
    c="3 (h2 cut off for $cut s)"
    case_begin "3-$cut"
    wait_until 5000 mesh_up
    tx_start h1 a1 --to rx.h2.0 --async --rate 1000 --size-max 16384
    tx_start h3 a3 --to rx.h2.0 --async --rate 1000 --size-max 16384
    tx_start h1 c1 --to rx.h2.0 --confirm --rate 100 --size-max 4096
    sleep 1.5
    t_cut=$(now_ms)
    host_block h2 || bail "$c: nft table in h2"
    sleep "$cut"
    host_unblock h2 || not_ok "$c: removing the nft table"
    t_heal=$(now_ms)
    event block h2 "$t_cut" "$t_heal"
    wait_until $REJOIN_MS eval 'mesh_up && names_everywhere rx.h1.0 rx.h2.0 rx.h3.0'
    st=$?
    lost=no
    has_event h1 down peer h2 "$t_cut" && lost=yes
    timing "$c: loss detected by h1: $lost; mesh and names back $WAITED_MS ms after the heal"
    check "$c: healed: mesh and names back within $REJOIN_MS ms" $st \
        "$(node_cli h1 main 3 --peers 2>&1)"
    sleep 1.5
    case_end "$c" a1 a3 c1
    timing "$c: sent $(account_value sent), read $(account_value delivered), EHOSTUNREACH $(account_value "failed EHOSTUNREACH") (read anyway: $(awk '/failed EHOSTUNREACH/ { getline; print $NF }' <<<"$ACCOUNT_OUT")), duplicates $(account_value duplicates)"
done

# --- the whole run --------------------------------------------------------------------------

TRAFFIC_DIR=$HOSTS_DIR
out=$(python3 "$ACCOUNT" "$HOSTS_DIR/none" --chaos "$CHAOS_LOG" \
    --node-log "h1=$HOSTS_DIR/h1.main.log" --node-log "h2=$HOSTS_DIR/h2.main.log" \
    --node-log "h3=$HOSTS_DIR/h3.main.log" 2>&1)
fl=$(awk '/^false peer losses/ { print $NF }' <<<"$out")
st=0
[ "$fl" = 0 ] || st=1
check "no peer loss logged outside the cuts (false losses: $fl)" $st "$out"
st=0
for h in "${HOSTS[@]}"; do
    [ "${NODE_PID[$h/main]}" = "${PID0[$h]}" ] && pid_alive "${PID0[$h]}" || st=1
done
check "no node died or was restarted" $st
for h in "${HOSTS[@]}"; do
    mon_stop "$h"
done

echo "# timings:"
for t in "${TIMINGS[@]}"; do
    echo "#   $t"
done
summary
