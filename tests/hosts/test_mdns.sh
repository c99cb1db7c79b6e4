#!/usr/bin/env bash
# test_mdns.sh: ipc-node nodes on three virtual hosts find each other by
# mDNS / DNS-SD (avahi-daemon in each host), with no --peer.
#
# Each host is a set of namespaces (network, mount, UTS) made by lib.sh:
# its own address on a virtual LAN (a bridge in a namespace of its own),
# its own D-Bus system bus and avahi-daemon, its own /run. Nothing outside
# these namespaces is touched. Needs root; skipped (exit 77) otherwise.
#
#   setup   hosts reach each other; Avahi in one host sees a service of another
#   1       discovery: each node lists the other two (source mdns, up) within
#           3 s; avahi-browse shows every node with TXT id=, v=, port=,
#           key= (its real key); every link between them is CURVE
#   2       a request from h1 answered by a service on h3
#   3       a publication on h2 reaches subscribers on h1 and h3
#   4       avahi-daemon on h2 stopped and started again (then killed with
#           SIGKILL and started again): the node on h2 goes on serving, is
#           the same process, publishes its record again and browses again;
#           a record whose key is not its id's is logged and not dialled
#   5       h3's link cut: h1 and h2 drop it within 2 s; link back: h3 is
#           up again everywhere within 10 s; the same with a silent cut
#           (nftables drops everything, the link stays up)
#   6       a node with --no-mdns is found by nobody and finds nobody
#   6b      two nodes with one name: Avahi's alternative name, both found
#   7       a node stopped cleanly is dropped at once and its record withdrawn
#   and     no node ever lists itself as a peer; no node died
#
# Prints "ok"/"not ok" lines, "# timing:" lines (figures for reports), then
# "N passed, N failed"; exits 1 if anything failed.
# HOSTS_KEEP=1 keeps the logs (node, avahi, dbus) in the temp dir.

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/hosts/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/lib.sh
. "$HERE/../lib.sh"

skip() {
    echo "SKIP: test_mdns: $*"
    exit 77
}

if [ -z "${IPC_NODE:-}" ] || [ "$IPC_NODE" = ipc-node ]; then
    if [ -n "${TOP_BUILDDIR:-}" ]; then
        IPC_NODE=$TOP_BUILDDIR/ipc-node
    else
        IPC_NODE=./ipc-node
    fi
fi
IPC_NODE=$(readlink -f "$IPC_NODE" 2>/dev/null || echo "$IPC_NODE")
[ -x "$IPC_NODE" ] || skip "no ipc-node binary at $IPC_NODE"
reason=$(hosts_skip_reason)
[ -z "$reason" ] || skip "$reason"

TIMINGS=()

timing() {
    TIMINGS+=("$*")
    echo "# timing: $*"
}

# bail WHY: the rest cannot run.
bail() {
    not_ok "$1" "${@:2}"
    echo "# bailing out: the remaining steps need this"
    echo "$passed passed, $failed failed"
    exit 1
}

HOSTS=(h1 h2 h3)

# --- queries ----------------------------------------------------------------

# peers H [TAG]: H's --peers table, rows only (no header).
peers() {
    node_cli "$1" "${2:-main}" 3 --peers 2>/dev/null | tail -n +2
}

# peer_state H TAG NAME: "SOURCE STATE" of NAME in H's table (not the self
# row); empty when absent.
peer_state() {
    peers "$1" "$2" | awk -v n="$3" '$1 == n && $4 != "self" { print $4, $5; exit }'
}

# peer_up H TAG NAME [SOURCE]: NAME is up in H's table (known, among
# other ways, by that source: the column lists them all, "mdns,incoming").
peer_up() {
    local s
    s=$(peer_state "$1" "$2" "$3")
    [ "${s#* }" = up ] || return 1
    [ -z "${4:-}" ] || [[ ",${s% *}," == *",$4,"* ]]
}

# peer_not_up H TAG NAME: NAME is absent from H's table, or not up.
peer_not_up() {
    local s
    s=$(peer_state "$1" "$2" "$3")
    [ "${s#* }" != up ]
}

# peers_mdns_up H TAG NAME...: every NAME is up in H's table with source mdns.
peers_mdns_up() {
    local h=$1 tag=$2 n t
    shift 2
    t=$(peers "$h" "$tag")
    for n in "$@"; do
        awk -v n="$n" '$1 == n && ("," $4 ",") ~ /,mdns,/ && $5 == "up" { f = 1 } END { exit !f }' \
            <<<"$t" || return 1
    done
}

# self_id H TAG: the node's own id (its self row).
self_id() {
    peers "$1" "${2:-main}" | awk '$4 == "self" { print $2; exit }'
}

# self_key H [TAG]: the public key (Z85) of the node TAG on host H.
self_key() {
    peers "$1" "${2:-main}" | awk '$4 == "self" { print $8; exit }'
}

# lists_itself H TAG: a row other than the self row has our name or our id.
lists_itself() {
    local h=$1 tag=$2 t id name
    t=$(peers "$h" "$tag")
    id=$(awk '$4 == "self" { print $2; exit }' <<<"$t")
    name=$(awk '$4 == "self" { print $1; exit }' <<<"$t")
    [ -n "$id" ] || return 1
    awk -v id="$id" -v n="$name" '$4 != "self" && ($2 == id || $1 == n) { f = 1 }
        END { exit !f }' <<<"$t"
}

# browse H: avahi-browse -rtp _ipcnode._tcp in H (resolved lines, IPv4).
browse() {
    host_exec "$1" timeout -k 1 8 avahi-browse -rtp _ipcnode._tcp 2>/dev/null |
        grep '^=;[^;]*;IPv4;'
}

# browse_has H SERVICE: H's Avahi resolves SERVICE of type _ipcnode._tcp.
browse_has() {
    browse "$1" | awk -F';' -v s="$2" '$4 == s { f = 1 } END { exit !f }'
}

# browse_lacks H SERVICE
browse_lacks() {
    local out
    out=$(browse "$1")
    ! awk -F';' -v s="$2" '$4 == s { f = 1 } END { exit !f }' <<<"$out"
}

# services_has H NAME NODE: H's --services lists NAME held on NODE.
services_has() {
    node_cli "$1" main 3 --services 2>/dev/null |
        awk -v n="$2" -v node="$3" '$1 == n && $2 == node { f = 1 } END { exit !f }'
}

services_lacks() {
    local out
    out=$(node_cli "$1" main 3 --services 2>/dev/null) || return 1
    ! awk -v n="$2" '$1 == n { f = 1 } END { exit !f }' <<<"$out"
}

# request_ok H NAME DATA: a request from H answered with DATA.
request_ok() {
    local out
    out=$(node_cli "$1" main 3 --request "$2" "$3" --timeout 2000 2>/dev/null) &&
        [ "$out" = "$3" ]
}

# wait_all MS VAR CMD-PREFIX H...: polls "CMD-PREFIX H" for every H until
# each has succeeded once or MS have passed; sets VAR[H] to the ms it took
# (or "-" if it never did). Returns 0 if all did.
declare -A WAIT_MS=()
wait_all() {
    local limit=$1 cmd=$2 start now h pending
    shift 2
    WAIT_MS=()
    start=$(now_ms)
    while :; do
        pending=0
        for h in "$@"; do
            [ -n "${WAIT_MS[$h]:-}" ] && continue
            if $cmd "$h"; then
                WAIT_MS[$h]=$(($(now_ms) - start))
            else
                pending=1
            fi
        done
        [ $pending = 0 ] && return 0
        now=$(now_ms)
        if ((now - start >= limit)); then
            for h in "$@"; do
                [ -n "${WAIT_MS[$h]:-}" ] || WAIT_MS[$h]=-
            done
            return 1
        fi
        sleep 0.05
    done
}

others_of() {
    local h x
    for x in "${HOSTS[@]}"; do
        [ "$x" = "$1" ] || printf '%s ' "$x"
    done
}

log_tail() {
    tail -n "${2:-8}" "$1" 2>/dev/null
}

# --- setup ------------------------------------------------------------------

echo "# ipc-node: $IPC_NODE"
hosts_init || bail "setup: bridge namespace"
for h in "${HOSTS[@]}"; do
    host_create "$h" || bail "setup: host $h"
done
t0=$(now_ms)
for h in "${HOSTS[@]}"; do
    host_dbus_start "$h" || bail "setup: dbus-daemon in $h" "$(log_tail "$HOSTS_DIR/$h.dbus.log")"
    host_avahi_start "$h" nowait
done
for h in "${HOSTS[@]}"; do
    host_avahi_wait "$h" || bail "setup: avahi-daemon in $h" \
        "$(log_tail "$HOSTS_DIR/$h.avahi.1.log")"
done
ok "setup: hosts h1 h2 h3 with their own dbus-daemon and avahi-daemon"
timing "avahi-daemon ready in 3 hosts: $(($(now_ms) - t0)) ms"

st=0
for a in h1 h2 h3; do
    for b in h1 h2 h3; do
        [ $a = $b ] && continue
        host_reaches $a "$(host_ip $b)" || { st=1; break 2; }
    done
done
check "setup: every host reaches the others over the bridge" $st "$a cannot reach $b"

bg_start h1 "$HOSTS_DIR/publish-test.log" avahi-publish -s ipcnet-lib-test _ipcnettest._tcp 1234
pub=$BG_PID
st=1
for ((i = 0; i < 20; i++)); do
    host_exec h2 timeout -k 1 5 avahi-browse -rtp _ipcnettest._tcp 2>/dev/null |
        grep -q '^=;.*;ipcnet-lib-test;_ipcnettest._tcp;local;h1.local;198.18.0.1;1234;' &&
        { st=0; break; }
    sleep 0.25
done
check "setup: a service published by Avahi in h1 is resolved by Avahi in h2" $st \
    "$(log_tail "$HOSTS_DIR/publish-test.log")"
bg_stop "$pub"

# --- 1: discovery -------------------------------------------------------------

# All three at once (no waiting in between), then each host's time until its
# table lists the other two, found by mDNS and up.
t0=$(now_ms)
for h in "${HOSTS[@]}"; do
    node_launch "$h" main --name "$h"
done
for h in "${HOSTS[@]}"; do
    node_wait "$h" main || bail "1: node on $h starts" "$(log_tail "${NODE_LOG[$h/main]}")"
done
timing "3 nodes answering their local socket: $(($(now_ms) - t0)) ms"
declare -A ID=() KEY=()
for h in "${HOSTS[@]}"; do
    ID[$h]=$(self_id "$h")
    KEY[$h]=$(self_key "$h")
done

sees_others() {
    # shellcheck disable=SC2046
    peers_mdns_up "$1" main $(others_of "$1")
}
# Polled up to 10 s so that a slow figure can still be reported; 3 s pass.
wait_all 10000 sees_others "${HOSTS[@]}"
for h in "${HOSTS[@]}"; do
    d=${WAIT_MS[$h]}
    timing "discovery on $h (lists $(others_of "$h")as mdns/up): ${d} ms after the nodes started"
    st=1
    [ "$d" != - ] && [ "$d" -le 3000 ] && st=0
    check "1: $h lists $(others_of "$h")(source mdns, state up) within 3 s" $st \
        "took: $d ms" "$(peers "$h")" "$(log_tail "${NODE_LOG[$h/main]}")"
done

out=""
for h in "${HOSTS[@]}"; do
    out+=$(peers "$h")$'\n'
done
st=0
for h in "${HOSTS[@]}"; do
    lists_itself "$h" main && st=1
done
check "1: no node lists itself as a peer" $st "$out"

# TXT records as seen from h1: every node, with id= (its real id), v=3,
# port= (the port in the SRV record too) and key= (its real key).
st=0
detail=()
b=""
for ((i = 0; i < 20; i++)); do
    b=$(browse h1)
    st=0
    detail=()
    for h in "${HOSTS[@]}"; do
        line=$(awk -F';' -v s="$h" '$4 == s { print; exit }' <<<"$b")
        if [ -z "$line" ]; then
            st=1
            detail+=("no resolved record for $h")
            continue
        fi
        txt=$(cut -d';' -f10- <<<"$line")
        srvport=$(cut -d';' -f9 <<<"$line")
        addr=$(cut -d';' -f8 <<<"$line")
        if ! [[ $txt == *\"id=${ID[$h]}\"* ]] || ! [[ $txt == *\"v=3\"* ]] ||
            ! [[ $txt == *"\"key=${KEY[$h]}\""* ]] ||
            ! [[ $txt == *\"port=5680\"* ]] || [ "$srvport" != 5680 ] ||
            [ "$addr" != "$(host_ip "$h")" ]; then
            st=1
            detail+=("$h: $line (id ${ID[$h]})")
        fi
    done
    [ $st = 0 ] && break
    sleep 0.25
done
check "1: avahi-browse in h1 resolves h1 h2 h3 at their address, port 5680, TXT id= v=3 port= key=" \
    $st "${detail[@]}" "$b"
echo "# e.g. $(awk -F';' '$4 == "h3"' <<<"$b" | head -1)"

# --- 2: request across hosts ----------------------------------------------------

node_cli_bg h3 main "$HOSTS_DIR/h3.listen.log" --listen svc --echo
listener=$BG_PID
t0=$(now_ms)
wait_until 10000 request_ok h1 svc hi
st=$?
check "2: a request from h1 is answered by the holder of svc on h3" $st \
    "$(node_cli h1 main 3 --request svc hi --timeout 2000 2>&1)" \
    "$(node_cli h1 main 3 --services 2>&1)" "$(log_tail "$HOSTS_DIR/h3.listen.log")"
timing "request h1 -> svc on h3 first answered after ${WAITED_MS} ms (name propagation)"
services_has h1 svc h3
check "2: h1's --services lists svc held on h3" $? "$(node_cli h1 main 3 --services 2>&1)"

# --- 3: publish across hosts ------------------------------------------------------

node_cli_bg h1 main "$HOSTS_DIR/h1.sub.log" --subscribe 'news.*' --count 1
sub1=$BG_PID
node_cli_bg h3 main "$HOSTS_DIR/h3.sub.log" --subscribe 'news.*' --count 1
sub3=$BG_PID
got_both() {
    grep -q 'news.today.*extra' "$HOSTS_DIR/h1.sub.log" &&
        grep -q 'news.today.*extra' "$HOSTS_DIR/h3.sub.log"
}
st=1
for ((i = 0; i < 40; i++)); do
    node_cli h2 main 3 --publish news.today extra >/dev/null 2>&1
    sleep 0.1
    got_both && { st=0; break; }
    sleep 0.15
done
check "3: a publication on h2 reaches subscribers on h1 and h3" $st \
    "h1: $(cat "$HOSTS_DIR/h1.sub.log")" "h3: $(cat "$HOSTS_DIR/h3.sub.log")"
bg_stop "$sub1"
bg_stop "$sub3"

# --- 4: avahi-daemon on h2 goes away and comes back ---------------------------------

pid2=${NODE_PID[h2/main]}
node_cli_bg h2 main "$HOSTS_DIR/h2.local.log" --listen loc --echo
loc=$BG_PID
wait_until 3000 request_ok h2 loc x >/dev/null
loglines=$(wc -l <"${NODE_LOG[h2/main]}")

browse_has h1 h2
check "4: before: h2's record is in h1's avahi-browse" $? "$(browse h1)"
host_avahi_stop h2
wait_until 3000 browse_lacks h1 h2
check "4: avahi-daemon on h2 stopped: h2's record withdrawn from h1's Avahi" $? "$(browse h1)"
sleep 2
st=0
detail=()
pid_alive "$pid2" || { st=1; detail+=("node on h2 died"); }
node_answers h2 main || { st=1; detail+=("no answer to --peers"); }
request_ok h2 loc x || { st=1; detail+=("local request on h2 not answered"); }
check "4: without avahi-daemon (2 s) the node on h2 still serves local clients" $st \
    "${detail[@]}" "$(log_tail "${NODE_LOG[h2/main]}")"
st=0
for h in h1 h3; do
    peer_up $h main h2 || st=1
done
peer_up h2 main h1 && peer_up h2 main h3 || st=1
request_ok h2 svc y || st=1
check "4: without avahi-daemon on h2, h2 stays connected (h1, h3 list it up; h2 reaches svc on h3)" \
    $st "h1: $(peers h1)" "h2: $(peers h2)" "h3: $(peers h3)"
newlines=$(($(wc -l <"${NODE_LOG[h2/main]}") - loglines))
st=0
[ $newlines -le 4 ] || st=1
check "4: the node on h2 says so once, not over and over ($newlines log lines)" $st \
    "$(tail -n +$((loglines + 1)) "${NODE_LOG[h2/main]}" | head -20)"

host_avahi_start h2 || not_ok "4: avahi-daemon on h2 restarts" \
    "$(log_tail "$HOSTS_DIR/h2.avahi.${HOST_AVAHI_RUNS[h2]}.log")"
t0=$(now_ms)
wait_until 10000 browse_has h1 h2
st=$?
timing "h2's record back in h1's avahi-browse ${WAITED_MS} ms after avahi-daemon restarted on h2"
check "4: after the restart, h2's record is back in avahi-browse on h1 within 10 s" $st \
    "$(browse h1)" "$(log_tail "${NODE_LOG[h2/main]}")"
browse_has h2 h2
check "4: ... and in h2's own avahi-daemon" $? "$(browse h2)"

# Does h2 browse again? A node that only h2's mDNS can report as "mdns": a
# --no-mdns node on h3 (port 5682) whose record we publish ourselves.
node_start h3 x --no-mdns --port 5682 --name h3x || not_ok "4: helper node h3x starts"
idx=$(self_id h3 x)
keyx=$(self_key h3 x)
# First a record of the protocol version before (v=2), its key right: read,
# logged, and not dialled.
bg_start h3 "$HOSTS_DIR/publish-h3v.log" avahi-publish -s h3v _ipcnode._tcp 5682 \
    "id=$idx" "v=2" "port=5682" "name=h3x" "key=$keyx"
pubv=$BG_PID
wait_until 10000 grep -q "node 'h3v' speaks protocol version 2, we speak 3" "${NODE_LOG[h2/main]}"
st=$?
[ -z "$(peer_state h2 main h3x)" ] || st=1
check "4: a record of protocol version 2 is ignored (logged, not dialled)" $st \
    "$(peers h2)" "$(log_tail "${NODE_LOG[h2/main]}")"
bg_stop "$pubv"
# Then a record whose key is not its id's (h1's key): read, and not dialled.
bg_start h3 "$HOSTS_DIR/publish-h3y.log" avahi-publish -s h3y _ipcnode._tcp 5682 \
    "id=$idx" "v=3" "port=5682" "name=h3x" "key=${KEY[h1]}"
puby=$BG_PID
wait_until 10000 grep -q "node 'h3y' has no valid key for its id" "${NODE_LOG[h2/main]}"
st=$?
[ -z "$(peer_state h2 main h3x)" ] || st=1
check "4: a record whose key is not its id's is ignored (logged, not dialled)" $st \
    "$(peers h2)" "$(log_tail "${NODE_LOG[h2/main]}")"
bg_stop "$puby"
bg_start h3 "$HOSTS_DIR/publish-h3x.log" avahi-publish -s h3x _ipcnode._tcp 5682 \
    "id=$idx" "v=3" "port=5682" "name=h3x" "key=$keyx"
pubx=$BG_PID
wait_until 10000 peer_up h2 main h3x mdns
st=$?
timing "h2 found a newly published record ${WAITED_MS} ms after it appeared (after the restart)"
check "4: after the restart, h2 browses again (finds a newly published node, source mdns)" $st \
    "$(peers h2)" "$(log_tail "${NODE_LOG[h2/main]}")"
bg_stop "$pubx"
node_stop h3 x

st=0
[ "${NODE_PID[h2/main]}" = "$pid2" ] && pid_alive "$pid2" || st=1
check "4: the node on h2 is the same process (pid $pid2)" $st
st=0
wait_until 5000 peers_mdns_up h1 main h2 h3 || st=1
wait_until 5000 peers_mdns_up h3 main h1 h2 || st=1
wait_until 5000 peers_mdns_up h2 main h1 h3 || st=1
check "4: all three still list each other up (source mdns)" $st \
    "h1: $(peers h1)" "h2: $(peers h2)" "h3: $(peers h3)"

# Once more, without warning: SIGKILL.
host_avahi_stop h2 KILL
sleep 1
st=0
pid_alive "$pid2" && node_answers h2 main && request_ok h2 loc z || st=1
check "4: avahi-daemon on h2 killed (SIGKILL): the node on h2 still serves" $st \
    "$(log_tail "${NODE_LOG[h2/main]}")"
host_avahi_start h2 || not_ok "4: avahi-daemon on h2 restarts after SIGKILL"
wait_until 10000 browse_has h2 h2
st=$?
timing "after SIGKILL: h2's record back in its own avahi-daemon ${WAITED_MS} ms after the restart"
check "4: after SIGKILL and restart, the node on h2 publishes again within 10 s" $st \
    "$(browse h2)" "$(log_tail "${NODE_LOG[h2/main]}")"
st=0
[ "${NODE_PID[h2/main]}" = "$pid2" ] && pid_alive "$pid2" || st=1
check "4: the node on h2 is still the same process" $st
bg_stop "$loc"

# --- 5: h3's link cut and restored ---------------------------------------------------

# During a cut, h1 and h2 must drop h3, and h3 must drop h1 and h2; after
# it, all must be up again. Timed from the cut and from the restore.
cut_dropped() {
    if [ "$1" = h3 ]; then
        peer_not_up h3 main h1 && peer_not_up h3 main h2
    else
        peer_not_up "$1" main h3
    fi
}
cut_back() {
    if [ "$1" = h3 ]; then
        peer_up h3 main h1 && peer_up h3 main h2
    else
        peer_up "$1" main h3
    fi
}

# timed_check KIND WHAT WHEN S MAX_MS MS [DETAIL...]: records the timing
# "KIND: WHAT: MS ms WHEN" and checks "5 (KIND): WHAT within S s": it
# happened (MS is not -) and, unless MAX_MS is empty, within MAX_MS ms.
timed_check() {
    local kind=$1 what=$2 when=$3 s=$4 max=$5 ms=$6 st=1
    shift 6
    timing "$kind: $what: $ms ms $when"
    [ "$ms" != - ] && { [ -z "$max" ] || [ "$ms" -le "$max" ]; } && st=0
    check "5 ($kind): $what within $s s" $st "$@"
}

# cut_step KIND ACTION WHAT MS COND: ACTION h3, else not_ok "5 (KIND): WHAT"
# and status 1; then waits (wait_all, up to MS) for COND on h1 h2 h3.
cut_step() {
    if ! $2 h3; then
        not_ok "5 ($1): $3"
        return 1
    fi
    wait_all "$4" "$5" h1 h2 h3 || true
}

# cut_test KIND CUT RESTORE
cut_test() {
    local kind=$1 cut=$2 restore=$3 h what
    if ! wait_all 5000 cut_back h1 h2 h3; then
        not_ok "5 ($kind): before the cut, h1 h2 h3 list each other up" \
            "h1: $(peers h1)" "h2: $(peers h2)" "h3: $(peers h3)"
        return
    fi
    cut_step "$kind" "$cut" "cutting h3 off" 5000 cut_dropped || return
    for h in h1 h2 h3; do
        what="$h drops h3"
        [ $h = h3 ] && what="h3 drops h1 and h2"
        timed_check "$kind" "$what" "after the cut" 2 2000 "${WAIT_MS[$h]}" \
            "took ${WAIT_MS[$h]} ms" "$(peers $h)"
    done
    wait_until 3000 services_lacks h1 svc
    check "5 ($kind): h3's name svc is gone from h1's --services" $? \
        "$(node_cli h1 main 3 --services 2>&1)"
    sleep 1
    cut_step "$kind" "$restore" "restoring h3's link" 10000 cut_back || return
    for h in h1 h2 h3; do
        what="h3 is up again on $h"
        [ $h = h3 ] && what="h3 lists h1 and h2 up again"
        timed_check "$kind" "$what" "after the restore" 10 "" "${WAIT_MS[$h]}" \
            "$(peers $h)" "$(log_tail "${NODE_LOG[$h/main]}")"
    done
    wait_until 5000 request_ok h1 svc back
    check "5 ($kind): h1 reaches svc on h3 again" $? "$(node_cli h1 main 3 --services 2>&1)"
}

cut_test "link down" host_link_down host_link_up
if ip netns exec "${HOST_NS[h3]}" nft list tables >/dev/null 2>&1; then
    cut_test "silent cut (nftables)" host_block host_unblock
else
    echo "# silent cut skipped: nft does not work here"
fi
bg_stop "$listener"

# --- 6: --no-mdns ---------------------------------------------------------------------

node_start h1 nomdns --no-mdns --port 5681 --name h1b ||
    not_ok "6: a --no-mdns node starts on h1" "$(log_tail "$HOSTS_DIR/h1.nomdns.log")"
sleep 2
t=$(peers h1 nomdns)
n=$(grep -c . <<<"$t")
st=0
[ "$n" = 1 ] && awk '$4 == "self" && $1 == "h1b" { f = 1 } END { exit !f }' <<<"$t" || st=1
check "6: after 2 s the --no-mdns node lists only itself" $st "$t"
st=0
for h in "${HOSTS[@]}"; do
    peers "$h" | awk '$1 == "h1b" || $3 ~ /:5681$/ { f = 1 } END { exit !f }' && st=1
done
browse h2 | grep -q ';5681;' && st=1
check "6: no other node lists it, and it is not in avahi-browse" $st \
    "h1: $(peers h1)" "h2: $(peers h2)" "h3: $(peers h3)" "$(browse h2)"
node_stop h1 nomdns

# --- 6b: two nodes with one name --------------------------------------------------------

# twins_up H: H lists two different nodes named h1 up (h1's and the twin).
twins_up() {
    [ "$(peers "$1" | awk '$1 == "h1" && $4 != "self" && $5 == "up" { print $2 }' |
         sort -u | grep -c .)" = 2 ]
}

node_start h2 twin --port 5683 --name h1 ||
    not_ok "6b: a second node named h1 starts on h2" "$(log_tail "$HOSTS_DIR/h2.twin.log")"
wait_until 10000 twins_up h3
st=$?
check "6b: a name collision is resolved the Avahi way: h3 lists both nodes named h1, up" $st \
    "h3: $(peers h3)" "$(log_tail "$HOSTS_DIR/h2.twin.log")"
# twin_listed H: H's avahi-browse shows the twin under its alternative name
# ("h1 #2", which avahi-browse -p escapes as h1\032\0352).
twin_listed() {
    browse "$1" | grep -qF ';h1\032\0352;'
}
wait_until 10000 twin_listed h3
check "6b: avahi-browse shows the alternative service name 'h1 #2'" $? "$(browse h3)" \
    "$(log_tail "$HOSTS_DIR/h2.twin.log")"
node_stop h2 twin

# --- 7: a clean stop -------------------------------------------------------------------

st=0
for h in "${HOSTS[@]}"; do
    lists_itself "$h" main && st=1
done
check "no node lists itself as a peer (after all the above)" $st \
    "h1: $(peers h1)" "h2: $(peers h2)" "h3: $(peers h3)"
st=0
dead=""
for h in "${HOSTS[@]}"; do
    pid_alive "${NODE_PID[$h/main]}" || { st=1; dead+="$h "; }
done
check "no node died" $st "dead: $dead"

if wait_all 5000 cut_back h1 h2 && browse_has h1 h3; then
    node_stop h3 main
    wait_all 2000 cut_dropped h1 h2
    st=$?
    timing "clean stop: h1 dropped h3 after ${WAIT_MS[h1]} ms, h2 after ${WAIT_MS[h2]} ms"
    check "7: h3 stopped cleanly: h1 and h2 drop it within 2 s" $st "h1: $(peers h1)" \
        "h2: $(peers h2)"
    wait_until 5000 browse_lacks h1 h3
    st=$?
    timing "clean stop: h3's record gone from h1's avahi-browse after ${WAITED_MS} ms"
    check "7: h3's record is withdrawn from h1's avahi-browse" $st "$(browse h1)"
else
    not_ok "7: before the clean stop, h1 and h2 list h3 up and h1's Avahi has its record" \
        "h1: $(peers h1)" "h2: $(peers h2)" "$(browse h1)"
fi

echo "# timings:"
for t in "${TIMINGS[@]}"; do
    echo "#   $t"
done
summary
