#!/usr/bin/env bash
# bench_mdns.sh: how fast ipc-node nodes find each other, and lose each
# other, over mDNS / DNS-SD on a virtual LAN.
#
# Hosts are sets of namespaces made by tests/hosts/lib.sh (network, mount,
# UTS; addresses in 198.18.0.0/15 on a bridge in a namespace of its own),
# each with its own dbus-daemon, avahi-daemon and ipc-node. Nothing outside
# these namespaces is touched. Needs root.
#
#   1  join: K hosts meshed; ipc-node started on host K+1. (a) its start ->
#      it lists all K as up (source mdns); (b) its start -> all K list it as
#      up. Repeated (stop, the others drop it, start again) with the new
#      host's avahi-daemon cache warm, then with it restarted (cold cache).
#   2  drop: host K+1's link cut (its eth0 down; its bridge port down; an
#      nftables drop-all, link up): cut -> the K others no longer list it
#      as up; also the cut host's own view and the recovery after restore.
#   4  baselines (run after 2, with the K+1 nodes up): avahi-browse -rtp
#      _ipcnode._tcp in a host whose avahi-daemon just started (cold cache)
#      and again (warm); avahi-publish -s on one host -> an avahi-browse
#      running on another sees it.
#   3  mesh (run last): N hosts (avahi-daemon running) start ipc-node at
#      once: last start -> every node lists the N-1 others as up. Then with
#      avahi-daemon and ipc-node started together in every host.
#
# Times come from pollers running inside the hosts that ask `ipc-node
# --peers` every BENCH_POLL_MS (an answer is stamped when it returns, so a
# figure is late by at most one interval plus one call). What Avahi adds:
# a new browser's first query waits 100 ms; an answer to it waits 20 ms
# plus a jitter of 0-100 ms that each avahi-daemon keeps for 10 s, so the
# cold repetitions of one run (3 s apart) draw few jitters: compare runs.
# A "cold" cache is made by restarting avahi-daemon with the host cut off
# (nftables), else it would cache the answers to other hosts' queries.
# A cut is made at a random moment (0.1-0.6 s) so that it does not fall
# at the same phase of the heartbeats every time. A benchmark, not a
# test: it prints figures, medians (min, max) over the repetitions, and
# fails only when it cannot run. Every wait is bounded; everything started
# is stopped by PID and the namespaces are deleted on exit (lib.sh).
#
# usage: sudo IPC_NODE=path/to/ipc-node tests/bench/bench_mdns.sh
#   BENCH_K=3               hosts already meshed when one joins
#   BENCH_JOIN_REPS=7       joins with a warm avahi cache on the new host
#   BENCH_COLD_REPS=5       joins after restarting its avahi-daemon
#   BENCH_DROP_REPS=5       cuts of each kind
#   BENCH_MESH_N=8          hosts for the mesh formation
#   BENCH_MESH_REPS=3       mesh formations with avahi-daemon already up
#   BENCH_MESH_COLD_REPS=1  mesh formations with avahi-daemon started too
#   BENCH_BASE_REPS=5       repetitions of each baseline
#   BENCH_POLL_MS=15        poll interval (BENCH_MESH_POLL_MS=40 for the mesh)
#   BENCH_POLL_NICE=0       nice value of the pollers
#   BENCH_SETTLE_MS=1500    pause after a stop or a recovery, before the next
#   HOSTS_KEEP=1            keep the logs (nodes, pollers, avahi) afterwards

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/hosts/lib.sh
. "$HERE/../hosts/lib.sh"

die() {
    echo "bench_mdns: cannot run: $*" >&2
    exit 1
}

# knob NAME DEFAULT MIN MAX: an integer setting from the environment.
knob() {
    local v=${!1:-$2}
    if ! [[ $v =~ ^[0-9]+$ ]] || ((v < $3 || v > $4)); then
        die "$1 must be $3..$4, not '$v'"
    fi
    printf -v "$1" '%s' "$v"
}
knob BENCH_K 3 1 16
knob BENCH_JOIN_REPS 7 1 50
knob BENCH_COLD_REPS 5 0 50
knob BENCH_DROP_REPS 5 0 50
knob BENCH_MESH_N 8 2 32
knob BENCH_MESH_REPS 3 0 20
knob BENCH_MESH_COLD_REPS 1 0 20
knob BENCH_BASE_REPS 5 0 50
knob BENCH_POLL_MS 15 1 1000
knob BENCH_MESH_POLL_MS 40 1 1000
knob BENCH_SETTLE_MS 1500 0 60000
knob BENCH_POLL_NICE 0 0 19
# shellcheck disable=SC2153  # set by knob
((BENCH_MESH_N >= BENCH_K + 1)) || die "BENCH_MESH_N must be at least BENCH_K + 1"

if [ -z "${IPC_NODE:-}" ] || [ "$IPC_NODE" = ipc-node ]; then
    if [ -n "${TOP_BUILDDIR:-}" ]; then
        IPC_NODE=$TOP_BUILDDIR/ipc-node
    else
        IPC_NODE=$TOP/ipc-node
    fi
fi
IPC_NODE=$(readlink -f "$IPC_NODE" 2>/dev/null || echo "$IPC_NODE")
[ -x "$IPC_NODE" ] || die "no ipc-node binary at $IPC_NODE (build it: make ipc-node; or set IPC_NODE)"
reason=$(hosts_skip_reason)
[ -z "$reason" ] || die "$reason"
command -v nft >/dev/null 2>&1 || die "nft not found (package nftables)"

K=$BENCH_K
NEW=h$((K + 1))     # the host that joins, and is cut off
OLD=()              # the K hosts already there
for ((i = 1; i <= K; i++)); do
    OLD+=("h$i")
done
MESH=()
for ((i = 1; i <= BENCH_MESH_N; i++)); do
    MESH+=("h$i")
done
BASE=hb             # the host of the avahi-browse baselines
POLL_IVL=$(printf '0.%03d' "$BENCH_POLL_MS")
((BENCH_POLL_MS >= 1000)) && POLL_IVL=1
MESH_IVL=$(printf '0.%03d' "$BENCH_MESH_POLL_MS")
((BENCH_MESH_POLL_MS >= 1000)) && MESH_IVL=1
SETTLE=$(printf '%d.%03d' $((BENCH_SETTLE_MS / 1000)) $((BENCH_SETTLE_MS % 1000)))

echo "# bench_mdns: mDNS discovery, join, drop and mesh formation of ipc-node"
echo "# command: cd $TOP && sudo IPC_NODE=$IPC_NODE BENCH_K=$K" \
    "BENCH_JOIN_REPS=$BENCH_JOIN_REPS BENCH_COLD_REPS=$BENCH_COLD_REPS" \
    "BENCH_DROP_REPS=$BENCH_DROP_REPS BENCH_MESH_N=$BENCH_MESH_N" \
    "BENCH_MESH_REPS=$BENCH_MESH_REPS BENCH_MESH_COLD_REPS=$BENCH_MESH_COLD_REPS" \
    "BENCH_BASE_REPS=$BENCH_BASE_REPS BENCH_POLL_MS=$BENCH_POLL_MS" \
    "BENCH_MESH_POLL_MS=$BENCH_MESH_POLL_MS BENCH_POLL_NICE=$BENCH_POLL_NICE" \
    "BENCH_SETTLE_MS=$BENCH_SETTLE_MS" \
    "tests/bench/bench_mdns.sh"
echo "# ipc-node: $IPC_NODE ($("$IPC_NODE" --version 2>&1 | head -1))"
echo "# $(avahi-daemon --version 2>&1 | head -1); kernel $(uname -r); $(nproc) CPUs;" \
    "$(date -u '+%Y-%m-%d %H:%M:%S') UTC"
BENCH_T0=$(now_ms)

# --- the poller ------------------------------------------------------------------
#
# Runs inside a host: asks the node on SOCK for --peers every IVL seconds
# and prints, with the wall clock in ms when the answer came back:
#   answer T      the node answered for the first time
#   peer NAME T   NAME listed up for the first time
#   up T          every NAME listed up (any source)
#   mdns T        every NAME listed up with source mdns
#   gone T        the node answers and lists none of the NAMEs up
#   timeout T     LIMIT ms passed before COND
# and exits once COND was seen: up, mdns, gone, or both (mdns; or up and
# then 3 s without mdns). It sleeps with read -t on a pipe of its
# own: one fork per poll, the ipc-node call.
# shellcheck disable=SC2016  # expanded by the poller's shell
POLLER='
bin=$1 sock=$2 cond=$3 limit=$4 ivl=$5
shift 5
exec {nap}<> <(:)
declare -A up=() md=() seen=()
answered= up_at= mdns_at= gone_at=
t=${EPOCHREALTIME//[.,]/}
start=$((t / 1000))
while :; do
    out=$("$bin" --socket "$sock" --peers 2>/dev/null)
    t=${EPOCHREALTIME//[.,]/}
    now=$((t / 1000))
    if [ -n "$out" ]; then
        [ -n "$answered" ] || { answered=$now; echo "answer $now"; }
        up=()
        md=()
        while read -r name _ _ src state _; do
            [ "$state" = up ] && [ "$src" != self ] || continue
            up[$name]=1
            [ "$src" = mdns ] && md[$name]=1
        done <<<"$out"
        nup=0
        nmd=0
        for n in "$@"; do
            if [ -n "${up[$n]:-}" ]; then
                nup=$((nup + 1))
                [ -n "${seen[$n]:-}" ] || { seen[$n]=1; echo "peer $n $now"; }
            fi
            [ -n "${md[$n]:-}" ] && nmd=$((nmd + 1))
        done
        [ "$nup" = $# ] && [ -z "$up_at" ] && { up_at=$now; echo "up $now"; }
        [ "$nmd" = $# ] && [ -z "$mdns_at" ] && { mdns_at=$now; echo "mdns $now"; }
        [ "$nup" = 0 ] && [ -z "$gone_at" ] && { gone_at=$now; echo "gone $now"; }
    fi
    case $cond in
        up) [ -n "$up_at" ] && exit 0 ;;
        mdns) [ -n "$mdns_at" ] && exit 0 ;;
        gone) [ -n "$gone_at" ] && exit 0 ;;
        both) [ -n "$mdns_at" ] || { [ -n "$up_at" ] && ((now - up_at >= 3000)); } && exit 0 ;;
    esac
    if ((now - start >= limit)); then
        echo "timeout $now"
        exit 1
    fi
    read -r -t "$ivl" -u "$nap" _
done'

declare -A POLL_PID=()  # H -> pid of its poller (the timeout wrapping it)
declare -A POLL_LOG=()  # H -> its output
POLL_N=0

# poll_start H COND LIMIT_MS IVL NAMES...: a poller on H's main node.
poll_start() {
    local h=$1 cond=$2 limit=$3 ivl=$4 log
    shift 4
    POLL_N=$((POLL_N + 1))
    log=$HOSTS_DIR/poll.$POLL_N.$h.log
    bg_start "$h" "$log" nice -n "$BENCH_POLL_NICE" \
        timeout -k 1 $((limit / 1000 + 5)) bash -c "$POLLER" poller \
        "$IPC_NODE" /run/ipc-node/node.sock "$cond" "$limit" "$ivl" "$@"
    POLL_PID[$h]=$BG_PID
    POLL_LOG[$h]=$log
}

# forget_bg PID...: PIDs reaped by us, out of lib.sh's list (never killed
# later, when the number may belong to another process).
forget_bg() {
    local p q keep=()
    for p in "${HOSTS_BG_PIDS[@]}"; do
        for q in "$@"; do
            [ "$p" = "$q" ] && continue 2
        done
        keep+=("$p")
    done
    HOSTS_BG_PIDS=("${keep[@]}")
}

# poll_wait: until every poller has ended (each is bounded by its timeout).
poll_wait() {
    local h pids=()
    for h in "${!POLL_PID[@]}"; do
        wait "${POLL_PID[$h]}" 2>/dev/null
        pids+=("${POLL_PID[$h]}")
    done
    forget_bg "${pids[@]}"
    POLL_PID=()
}

# ev H EVENT [T0]: the time of EVENT in H's last poller log, minus T0;
# "-" when it did not happen.
ev() {
    local t
    t=$(awk -v e="$2" '$1 == e { print $NF; exit }' "${POLL_LOG[$1]}" 2>/dev/null)
    if [ -z "$t" ]; then
        echo -
    else
        echo $((t - ${3:-0}))
    fi
}

# max_of VALUES...: the largest, "-" if any is "-".
max_of() {
    local v m=
    for v in "$@"; do
        [ "$v" = - ] && { echo -; return; }
        [ -z "$m" ] || ((v > m)) && m=$v
    done
    echo "${m:--}"
}

# stats VALUES...: "median M ms (min A, max B, n N)"; "-" is a failure.
stats() {
    local v ok=() bad=0 s=() n med
    for v in "$@"; do
        if [[ $v =~ ^-?[0-9]+$ ]]; then
            ok+=("$v")
        else
            bad=$((bad + 1))
        fi
    done
    n=${#ok[@]}
    if ((n == 0)); then
        echo "no value ($bad timed out)"
        return
    fi
    mapfile -t s < <(printf '%s\n' "${ok[@]}" | sort -n)
    if ((n % 2)); then
        med=${s[n / 2]}
    else
        med=$(((s[n / 2 - 1] + s[n / 2]) / 2))
    fi
    printf 'median %5d ms  (min %d, max %d, n=%d' "$med" "${s[0]}" "${s[n - 1]}" "$n"
    ((bad == 0)) || printf ', %d timed out' "$bad"
    printf ')  [%s]\n' "$*"
}

# result LABEL VALUES...: one line of the summary.
result() {
    local label=$1
    shift
    printf '#   %-56s %s\n' "$label" "$(stats "$@")"
}
section() {
    echo "# --- $* ($((($(now_ms) - BENCH_T0) / 1000)) s into the run)"
}
note() {
    NOTES+=("$*")
    echo "# note: $*"
}
NOTES=()

# peers_table H: H's --peers rows (not the header).
peers_table() {
    node_cli "$1" main 3 --peers 2>/dev/null | tail -n +2
}

# The next three are called through wait_until.
# shellcheck disable=SC2317
# lists_up H NAME: NAME is up in H's table.
lists_up() {
    peers_table "$1" | awk -v n="$2" '$1 == n && $4 != "self" && $5 == "up" { f = 1 }
        END { exit !f }'
}

# shellcheck disable=SC2317
# all_see_all HOSTS...: every one lists every other up.
all_see_all() {
    local a b
    for a in "$@"; do
        for b in "$@"; do
            [ "$a" = "$b" ] || lists_up "$a" "$b" || return 1
        done
    done
}

# shellcheck disable=SC2317
# none_lists NAME HOSTS...: none of HOSTS lists NAME up.
none_lists() {
    local n=$1 h
    shift
    for h in "$@"; do
        ! lists_up "$h" "$n" || return 1
    done
}

# others_of H HOSTS...: HOSTS without H.
others_of() {
    local h=$1 x
    shift
    for x in "$@"; do
        [ "$x" = "$h" ] || printf '%s ' "$x"
    done
}

# avahi_cold H: avahi-daemon in H started anew with an empty cache, and H
# left cut off (nftables): other hosts' browsers query now and then, and a
# daemon caches every answer it hears, so H must hear nothing until the
# measure begins; then avahi_cold_end H.
avahi_cold() {
    local h=$1
    host_block "$h" || die "cannot cut $h off (nftables)"
    host_avahi_stop "$h"
    host_avahi_start "$h"
}
avahi_cold_end() {
    host_unblock "$1" || die "cannot remove the nftables cut of $1"
}

# --- setup ------------------------------------------------------------------------

# lib.sh's hosts_cleanup reads HOST_ANCHOR[H] and HOST_DBUS[H] of every host
# created; under set -u a host that failed half-way would stop it short.
for h in "${MESH[@]}" "$BASE"; do
    HOST_ANCHOR[$h]=
    HOST_DBUS[$h]=
done
hosts_init || die "setup: the bridge namespace"
for h in "${MESH[@]}" "$BASE"; do
    host_create "$h" || die "setup: host $h"
done
t0=$(now_ms)
for h in "${MESH[@]}" "$BASE"; do
    host_dbus_start "$h" || die "setup: dbus-daemon in $h"
    host_avahi_start "$h" nowait
done
for h in "${MESH[@]}" "$BASE"; do
    host_avahi_wait "$h" || die "setup: avahi-daemon in $h"
done
echo "# setup: ${#MESH[@]} + 1 hosts with dbus-daemon and avahi-daemon ready in" \
    "$(($(now_ms) - t0)) ms"

t0=$(now_ms)
for h in "${OLD[@]}"; do
    node_launch "$h" main --name "$h"
done
for h in "${OLD[@]}"; do
    node_wait "$h" main || die "setup: ipc-node on $h: $(tail -5 "${NODE_LOG[$h/main]}")"
done
wait_until 15000 all_see_all "${OLD[@]}" ||
    die "setup: ${OLD[*]} did not mesh in 15 s: $(peers_table h1)"
echo "# setup: ${OLD[*]} meshed by mDNS $(($(now_ms) - t0)) ms after their nodes started"

# The cost of one poll, for reading the figures.
t0=$(now_ms)
for ((i = 0; i < 20; i++)); do
    host_exec h1 "$IPC_NODE" --peers >/dev/null 2>&1
done
echo "# one 'ipc-node --peers' (with nsenter): $((($(now_ms) - t0) / 20)) ms;" \
    "polls every $BENCH_POLL_MS ms ($BENCH_MESH_POLL_MS for the mesh)"

# --- results ------------------------------------------------------------------------

declare -A R=()     # results, by series: space-separated values
add() {
    R[$1]="${R[$1]:-} $2"
}

# stamp: prefixes each line of its input with the wall clock in microseconds.
stamp() {
    local l
    while IFS= read -r l; do
        printf '%s %s\n' "${EPOCHREALTIME//[.,]/}" "$l"
    done
}

# first_at FILE REGEX [T0]: ms (from T0) of the first stamped line matching.
first_at() {
    local us
    us=$(awk -v re="$2" '{ l = $0; sub(/^[0-9]+ /, "", l) } l ~ re { print $1; exit }' "$1")
    if [ -z "$us" ]; then
        echo -
    else
        echo $((us / 1000 - ${3:-0}))
    fi
}

# count_at FILE REGEX N [T0]: ms (from T0) at which the Nth distinct field 4
# of matching lines was seen.
count_at() {
    local us
    us=$(awk -F';' -v re="$2" -v n="$3" '{ split($1, a, " "); l = $0; sub(/^[0-9]+ /, "", l) }
        l ~ re && !seen[$4]++ && ++c == n { print a[1]; exit }' "$1")
    if [ -z "$us" ]; then
        echo -
    else
        echo $((us / 1000 - ${4:-0}))
    fi
}

# --- 1: join ----------------------------------------------------------------------

# join_once LABEL [CMD]: starts the node on NEW (right after CMD NEW) and
# times it against OLD.
join_once() {
    local label=$1 pre=${2:-} t0 a a_up b h bs=() per="" first
    if ! wait_until 5000 none_lists "$NEW" "${OLD[@]}"; then
        note "$label: before the join, some node still lists $NEW up"
    fi
    poll_start "$NEW" mdns 10000 "$POLL_IVL" "${OLD[@]}"
    for h in "${OLD[@]}"; do
        poll_start "$h" up 10000 "$POLL_IVL" "$NEW"
    done
    sleep 0.1
    [ -z "$pre" ] || $pre "$NEW"
    t0=$(now_ms)
    node_launch "$NEW" main --name "$NEW"
    poll_wait
    a=$(ev "$NEW" mdns "$t0")
    a_up=$(ev "$NEW" up "$t0")
    for h in "${OLD[@]}"; do
        bs+=("$(ev "$h" up "$t0")")
        per+=" $h ${bs[-1]}"
    done
    b=$(max_of "${bs[@]}")
    add "${label}_a" "$a"
    add "${label}_aup" "$a_up"
    add "${label}_b" "$b"
    add "${label}_answer" "$(ev "$NEW" answer "$t0")"
    first=$(awk -v t0="$t0" '$1 == "peer" { print $NF - t0; exit }' "${POLL_LOG[$NEW]}")
    add "${label}_first" "${first:--}"
    # Avahi holds a new browser's first query 100 ms: sooner is from a cache.
    if [ "$label" = cold ] && [ -n "$first" ] && ((first < 100)); then
        note "cold join: a peer up after $first ms: $NEW's cache was not cold"
    fi
    echo "#   $label: (a) $NEW lists ${OLD[*]} up/mdns $a ms (up, any source: $a_up);" \
        "(b) all list $NEW up $b ms (${per# }); socket answered $(ev "$NEW" answer "$t0") ms"
    [ "$a" != - ] || note "$label: (a) timed out: $(peers_table "$NEW" | tr '\n' '|')"
    [ "$b" != - ] || note "$label: (b) timed out"
}

# published H: H's node, since its last start, has its mDNS record
# established (it logs it). Called through wait_until.
# shellcheck disable=SC2317
published() {
    awk '/ listening on / { p = 0 } /mDNS: published/ { p = 1 } END { exit !p }' \
        "${NODE_LOG[$1/main]}"
}

# unjoin: stops the node on NEW, until the others dropped it, then a pause.
unjoin() {
    node_stop "$NEW" main
    wait_until 5000 none_lists "$NEW" "${OLD[@]}" ||
        note "after a clean stop of $NEW, a node still lists it after 5 s"
    sleep "$SETTLE"
}

section "1. join: ipc-node started on $NEW, ${OLD[*]} meshed (K=$K)"
echo "# warm: $NEW's avahi-daemon has run all along (its cache may hold the records)"
for ((r = 1; r <= BENCH_JOIN_REPS; r++)); do
    join_once warm
    unjoin
done
if ((BENCH_COLD_REPS > 0)); then
    echo "# cold: $NEW's avahi-daemon restarted just before each join (empty cache)"
fi
for ((r = 1; r <= BENCH_COLD_REPS; r++)); do
    avahi_cold "$NEW" || die "avahi-daemon in $NEW does not restart"
    join_once cold avahi_cold_end
    [ "$r" = "$BENCH_COLD_REPS" ] || unjoin
done
# Item 2 needs the node on NEW, its record published: a cut while Avahi
# still probes leaves the record unpublished for good (avahi-daemon 0.8).
if ((BENCH_COLD_REPS == 0)); then
    node_start "$NEW" main --name "$NEW" || die "ipc-node on $NEW"
fi
if ! wait_until 5000 published "$NEW"; then
    note "$NEW's node did not publish its mDNS record within 5 s of its start"
fi

# --- 2: drop ----------------------------------------------------------------------

# cut_once KIND CUT RESTORE
cut_once() {
    local kind=$1 cut=$2 restore=$3 t0 h bs=() per="" d self back backs=()
    if ! wait_until 10000 all_see_all "${OLD[@]}" "$NEW"; then
        note "$kind: before the cut, not every node lists every other up"
    fi
    for h in "${OLD[@]}"; do
        poll_start "$h" gone 8000 "$POLL_IVL" "$NEW"
    done
    poll_start "$NEW" gone 8000 "$POLL_IVL" "${OLD[@]}"
    # Heartbeats keep their phase from one repetition to the next: a cut at
    # a random moment of it, or every repetition would see the same gap.
    sleep "$(printf '0.%03d' $((100 + RANDOM % 500)))"
    $cut "$NEW" || { note "$kind: the cut failed"; poll_wait; return; }
    t0=$(now_ms)
    poll_wait
    for h in "${OLD[@]}"; do
        bs+=("$(ev "$h" gone "$t0")")
        per+=" $h ${bs[-1]}"
    done
    d=$(max_of "${bs[@]}")
    self=$(ev "$NEW" gone "$t0")
    sleep 0.3
    for h in "${OLD[@]}"; do
        poll_start "$h" up 15000 "$POLL_IVL" "$NEW"
    done
    poll_start "$NEW" up 15000 "$POLL_IVL" "${OLD[@]}"
    sleep 0.1
    $restore "$NEW" || note "$kind: the restore failed"
    t0=$(now_ms)
    poll_wait
    for h in "${OLD[@]}" "$NEW"; do
        backs+=("$(ev "$h" up "$t0")")
    done
    back=$(max_of "${backs[@]}")
    add "drop_${kind}" "$d"
    for v in "${bs[@]}"; do
        add "drop_${kind}_each" "$v"
    done
    add "drop_${kind}_self" "$self"
    add "back_${kind}" "$back"
    echo "#   $kind: all of ${OLD[*]} dropped $NEW $d ms (${per# }); $NEW dropped them" \
        "$self ms; after the restore all up again $back ms"
    sleep "$SETTLE"
}

section "2. drop: $NEW cut off; ${OLD[*]} drop it"
echo "# ipc-node's default heartbeat: 500 ms; a peer is lost after 2.5 heartbeats of silence"
for ((r = 1; r <= BENCH_DROP_REPS; r++)); do
    cut_once linkdown host_link_down host_link_up
done
for ((r = 1; r <= BENCH_DROP_REPS; r++)); do
    cut_once portdown host_port_down host_port_up
done
for ((r = 1; r <= BENCH_DROP_REPS; r++)); do
    cut_once silent host_block host_unblock
done

# --- 4: baselines (after 1 and 2: the K+1 nodes' browsers query seldom by now) -----

if ((BENCH_BASE_REPS > 0)); then
    section "4. baselines: Avahi alone"
    for ((r = 1; r <= BENCH_BASE_REPS; r++)); do
        # A cold cache: avahi-daemon started anew in hb, which heard nothing.
        avahi_cold "$BASE" || die "avahi-daemon in $BASE does not restart"
        for kind in cold warm; do
            out=$HOSTS_DIR/browse.$r.$kind
            [ $kind = warm ] || avahi_cold_end "$BASE"
            t0=$(now_ms)
            host_exec "$BASE" timeout -k 1 10 avahi-browse -rtp _ipcnode._tcp 2>/dev/null |
                stamp >"$out"
            t1=$(now_ms)
            first=$(first_at "$out" '^=;[^;]*;IPv4;' "$t0")
            all=$(count_at "$out" '^=;[^;]*;IPv4;' $((K + 1)) "$t0")
            add "browse_first_$kind" "$first"
            add "browse_all_$kind" "$all"
            add "browse_exit_$kind" $((t1 - t0))
            # Listed (+) but never resolved (=): no SRV/TXT answer.
            unres=$(awk -F';' '{ sub(/^[0-9]+ /, "", $1) } $3 == "IPv4" && $1 == "+" { l[$4] = 1 }
                $3 == "IPv4" && $1 == "=" { r[$4] = 1 }
                END { for (n in l) if (!(n in r)) printf "%s ", n }' "$out")
            [ -z "$unres" ] || note "browse $r $kind in $BASE: listed, never resolved: $unres"
            if [ $kind = cold ] && [ "$first" != - ] && ((first < 100)); then
                note "cold browse: a record after $first ms: $BASE's cache was not cold"
            fi
            echo "#   $r $kind: first record resolved $first ms, all $((K + 1)) $all ms," \
                "avahi-browse -t exits $((t1 - t0)) ms"
        done
    done
    # A browser running in hb; a service published in h1.
    blog=$HOSTS_DIR/browse-pub.log
    # shellcheck disable=SC2016  # expanded by the inner shell
    bg_start "$BASE" "$blog" timeout -k 1 120 bash -c \
        'avahi-browse -rp _ipcbench._tcp 2>&1 | while IFS= read -r l; do
            printf "%s %s\n" "${EPOCHREALTIME//[.,]/}" "$l"; done'
    browser=$BG_PID
    sleep 1
    for ((r = 1; r <= BENCH_BASE_REPS; r++)); do
        plog=$HOSTS_DIR/publish.$r.log
        t0=$(now_ms)
        # shellcheck disable=SC2016  # expanded by the inner shell
        bg_start h1 "$plog" timeout -k 1 30 bash -c \
            'avahi-publish -s "$1" _ipcbench._tcp 4321 x=1 2>&1 | while IFS= read -r l; do
                printf "%s %s\n" "${EPOCHREALTIME//[.,]/}" "$l"; done' sh "bench$r"
        pub=$BG_PID
        for ((i = 0; i < 100; i++)); do
            grep -q "^[0-9]* =;[^;]*;IPv4;bench$r;" "$blog" && break
            sleep 0.05
        done
        est=$(first_at "$plog" 'Established' "$t0")
        seen=$(first_at "$blog" "^\\+;[^;]*;IPv4;bench$r;" "$t0")
        res=$(first_at "$blog" "^=;[^;]*;IPv4;bench$r;" "$t0")
        add pub_est "$est"
        add pub_seen "$seen"
        add pub_res "$res"
        echo "#   publish $r: established (probing done) $est ms, seen by the other" \
            "host's browser $seen ms, resolved $res ms"
        bg_stop "$pub"
        forget_bg "$pub"
        sleep 1.2
    done
    bg_stop "$browser"
    forget_bg "$browser"
    # hb takes no further part.
    host_avahi_stop "$BASE"
fi

# --- 3: mesh formation --------------------------------------------------------------

# mesh_once LABEL WITH_AVAHI: every node started at once (and avahi-daemon
# with it when WITH_AVAHI is 1); times every node listing all the others.
mesh_once() {
    local label=$1 avahi=$2 h t_first t_last ups=() mds=() m md n bad=""
    for h in "${MESH[@]}"; do
        [ -n "${NODE_PID[$h/main]:-}" ] && node_stop "$h" main
    done
    if [ "$avahi" = 1 ]; then
        for h in "${MESH[@]}"; do
            host_avahi_stop "$h"
        done
    fi
    sleep 2     # withdrawn records leave the caches (1 s after a goodbye)
    for h in "${MESH[@]}"; do
        # shellcheck disable=SC2046  # names without spaces
        poll_start "$h" both 20000 "$MESH_IVL" $(others_of "$h" "${MESH[@]}")
    done
    sleep 0.2
    t_first=$(now_ms)
    for h in "${MESH[@]}"; do
        [ "$avahi" = 1 ] && host_avahi_start "$h" nowait
        node_launch "$h" main --name "$h"
    done
    t_last=$(now_ms)
    poll_wait
    for h in "${MESH[@]}"; do
        ups+=("$(ev "$h" up "$t_last")")
        mds+=("$(ev "$h" mdns "$t_last")")
    done
    m=$(max_of "${ups[@]}")
    md=$(max_of "${mds[@]}")
    add "mesh_$label" "$m"
    add "mesh_${label}_mdns" "$md"
    for v in "${ups[@]}"; do
        add "mesh_${label}_each" "$v"
    done
    echo "#   $label: every node lists the $((${#MESH[@]} - 1)) others up $m ms after the last" \
        "start ($((t_last - t_first)) ms after the first); each: ${ups[*]}; all with source" \
        "mdns: $md ms"
    # Sanity: exactly one row per other node, all up, no row for itself.
    for h in "${MESH[@]}"; do
        n=$(peers_table "$h" | awk '$4 != "self"' | wc -l)
        if [ "$n" != $((${#MESH[@]} - 1)) ] ||
            peers_table "$h" | awk -v me="$h" '$4 != "self" && ($1 == me || $5 != "up") { f = 1 }
                END { exit !f }'; then
            bad+=" $h"
        fi
    done
    [ -z "$bad" ] || note "$label mesh: unexpected --peers rows on$bad, e.g. ${bad%% *}:" \
        "$(peers_table "${bad# }" | tr -s ' ' | tr '\n' '|')"
}

if ((BENCH_MESH_REPS + BENCH_MESH_COLD_REPS > 0)); then
    section "3. mesh: ${#MESH[@]} hosts start ipc-node at once"
fi
for ((r = 1; r <= BENCH_MESH_REPS; r++)); do
    mesh_once nodes 0
done
for ((r = 1; r <= BENCH_MESH_COLD_REPS; r++)); do
    mesh_once avahi+nodes 1
done

# --- what the nodes said --------------------------------------------------------------

section "node logs"
for h in "${MESH[@]}"; do
    log=${NODE_LOG[$h/main]:-}
    if [ -z "$log" ] || ! [ -f "$log" ]; then
        continue
    fi
    w=$(grep -c '^[WE]:' "$log")
    if [ "$w" != 0 ]; then
        note "$h's node logged $w warnings/errors, e.g.: $(grep '^[WE]:' "$log" | sort |
            uniq -c | sort -rn | head -3 | tr -s ' ' | tr '\n' '|')"
    fi
done
dead=""
for k in "${!NODE_PID[@]}"; do
    pid_alive "${NODE_PID[$k]}" || dead+=" $k"
done
[ -z "$dead" ] || note "nodes that died:$dead"

# --- summary ------------------------------------------------------------------------------

# res SERIES LABEL: the summary line of a series.
res() {
    local vals
    read -r -a vals <<<"${R[$1]:-}"
    result "$2" "${vals[@]}"
}
echo
echo "# ===== summary (ms; median (min, max, n) [every value]) ====="
if ((BENCH_JOIN_REPS + BENCH_COLD_REPS > 0)); then
    section "1. join of $NEW to ${OLD[*]}"
    res warm_a "(a) warm: $NEW lists all K up, source mdns"
    res warm_aup "    warm: $NEW lists all K up, any source"
    res warm_first "    warm: $NEW lists a first peer up"
    res warm_b "(b) warm: all K list $NEW up"
    res warm_answer "    warm: $NEW's socket answers"
    if ((BENCH_COLD_REPS > 0)); then
        res cold_a "(a) cold: $NEW lists all K up, source mdns"
        res cold_aup "    cold: $NEW lists all K up, any source"
        res cold_first "    cold: $NEW lists a first peer up"
        res cold_b "(b) cold: all K list $NEW up"
    fi
fi
if ((BENCH_DROP_REPS > 0)); then
    section "2. drop of $NEW"
    for kind in linkdown portdown silent; do
        res "drop_$kind" "$kind: all K no longer list $NEW up"
        res "drop_${kind}_each" "    $kind: each of the K"
        res "drop_${kind}_self" "    $kind: $NEW no longer lists the K up"
        res "back_$kind" "    $kind: restored -> all up again"
    done
fi
if ((BENCH_MESH_REPS + BENCH_MESH_COLD_REPS > 0)); then
    section "3. mesh of ${#MESH[@]} (from the last start)"
    ((BENCH_MESH_REPS == 0)) || {
        res mesh_nodes "nodes started at once: all list all up"
        res mesh_nodes_each "    each node"
        res mesh_nodes_mdns "    all list all up with source mdns"
    }
    ((BENCH_MESH_COLD_REPS == 0)) || {
        res mesh_avahi+nodes "avahi+nodes started at once: all list all up"
        res mesh_avahi+nodes_each "    each node"
    }
fi
if ((BENCH_BASE_REPS > 0)); then
    section "4. baselines (Avahi alone)"
    res browse_first_cold "avahi-browse -rtp, fresh daemon: first record"
    res browse_all_cold "    fresh daemon: all K+1 records"
    res browse_exit_cold "    fresh daemon: avahi-browse -t exits"
    res browse_first_warm "avahi-browse -rtp again (warm cache): first record"
    res browse_exit_warm "    warm: avahi-browse -t exits"
    res pub_est "avahi-publish -s: Established (probing done)"
    res pub_seen "    another host's running browser sees it (+)"
    res pub_res "    ... and resolves it (=)"
fi
if ((${#NOTES[@]} > 0)); then
    echo "# notes:"
    for n in "${NOTES[@]}"; do
        echo "#   $n"
    done
fi
echo "# total run time: $((($(now_ms) - BENCH_T0) / 1000)) s"
exit 0
