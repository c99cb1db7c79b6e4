# tests/soak/lib.sh: traffic on namespaced hosts, for the soak and the
# shellcheck shell=bash
# partition test. Source it after tests/hosts/lib.sh and tests/lib.sh.
#
#   traffic_find                          SOAK_TRAFFIC: the soak_traffic binary
#   rx_start H NAME [ARGS...]             a receiver holding NAME on H
#   rx_stop NAME                          SIGTERM: it unbinds, drains, exits
#   rx_kill NAME                          SIGKILL
#   tx_start H ID ARGS...                 a sender with ledger led.ID
#   tx_stop ID / tx_kill ID
#   mon_start H                           a monitor of names and peers on H
#   mon_stop H
#   stop_all PID...                       SIGTERM to all, then wait for each
# Records go to $TRAFFIC_DIR (rx.NAME.N.rec, led.ID, mon.H.N.rec), where
# N counts the incarnations. Every process is started with bg_start (so
# hosts_cleanup kills it if we do not) and stopped by its PID.

# shellcheck disable=SC2034  # read by the scripts that source us
TRAFFIC_DIR=
MON_DIR=                    # the monitors' records (TRAFFIC_DIR when they start)
declare -A RX_PID=() RX_HOST=() RX_ARGS=() RX_INC=()
declare -A TX_PID=() TX_HOST=() TX_ARGS=()
declare -A MON_PID=() MON_INC=()

# traffic_find: sets SOAK_TRAFFIC (from $SOAK_TRAFFIC, $TOP_BUILDDIR, or
# next to $IPC_NODE); returns 1 if there is none.
traffic_find() {
    local c
    for c in "${SOAK_TRAFFIC:-}" "${TOP_BUILDDIR:+$TOP_BUILDDIR/tests/soak/soak_traffic}" \
        "$(dirname "$IPC_NODE")/tests/soak/soak_traffic"; do
        if [ -n "$c" ] && [ -x "$c" ]; then
            SOAK_TRAFFIC=$(readlink -f "$c")
            return 0
        fi
    done
    return 1
}

# rx_start H NAME [ARGS...]: a receiver of NAME on H's main node; waits (5 s
# at most) until it has bound the name.
rx_start() {
    local h=$1 name=$2 n rec
    shift 2
    n=$((${RX_INC[$name]:--1} + 1))
    RX_INC[$name]=$n
    RX_HOST[$name]=$h
    RX_ARGS[$name]="$*"
    rec=$TRAFFIC_DIR/rx.$name.$n.rec
    bg_start "$h" "$TRAFFIC_DIR/rx.$name.$n.err" "$SOAK_TRAFFIC" recv \
        --socket "${NODE_SOCK[$h/main]}" --name "$name" --record "$rec" "$@"
    RX_PID[$name]=$BG_PID
    wait_until 5000 grep -qs '^BOUND' "$rec"
}

# rx_restart NAME: the same receiver again, a new incarnation.
rx_restart() {
    # shellcheck disable=SC2086  # RX_ARGS holds words
    rx_start "${RX_HOST[$1]}" "$1" ${RX_ARGS[$1]}
}

# rx_stop NAME: a clean stop (it unbinds, reads what is still on its way,
# then exits); KILL only after 25 s.
rx_stop() {
    kill_wait "${RX_PID[$1]}" 25
}

rx_kill() {
    kill -KILL "${RX_PID[$1]}" 2>/dev/null
    wait "${RX_PID[$1]}" 2>/dev/null
    return 0
}

# tx_start H ID ARGS...: a sender on H's main node, ledger led.ID.
tx_start() {
    local h=$1 id=$2
    shift 2
    TX_HOST[$id]=$h
    TX_ARGS[$id]="$*"
    bg_start "$h" "$TRAFFIC_DIR/tx.$id.err" "$SOAK_TRAFFIC" send \
        --socket "${NODE_SOCK[$h/main]}" --id "$id" --ledger "$TRAFFIC_DIR/led.$id" "$@"
    TX_PID[$id]=$BG_PID
}

tx_restart() {
    # shellcheck disable=SC2086
    tx_start "${TX_HOST[$1]}" "$1" ${TX_ARGS[$1]}
}

# tx_stop ID: SIGTERM: it ends after the send under way has its outcome.
tx_stop() {
    kill_wait "${TX_PID[$1]}" 35
}

tx_kill() {
    kill -KILL "${TX_PID[$1]}" 2>/dev/null
    wait "${TX_PID[$1]}" 2>/dev/null
    return 0
}

# stop_all PID...: SIGTERM to all at once, then each waited for (KILL
# after 25 s): senders and receivers that stop cleanly, in parallel.
stop_all() {
    local p
    for p in "$@"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "$@"; do
        kill_wait "$p" 25
    done
}

# tx_wait ID SECONDS: until the sender ends by itself (--count, --seconds).
tx_wait() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        pid_alive "${TX_PID[$1]}" || break
        sleep 0.1
    done
    kill_wait "${TX_PID[$1]}" 3
}

# mon_start H: a monitor of every name and peer on H.
mon_start() {
    local h=$1 n
    n=$((${MON_INC[$h]:--1} + 1))
    MON_INC[$h]=$n
    MON_DIR=$TRAFFIC_DIR
    bg_start "$h" "$MON_DIR/mon.$h.$n.err" "$SOAK_TRAFFIC" monitor \
        --socket "${NODE_SOCK[$h/main]}" --record "$MON_DIR/mon.$h.$n.rec"
    MON_PID[$h]=$BG_PID
    wait_until 5000 grep -qs '^S' "$MON_DIR/mon.$h.$n.rec"
}

mon_stop() {
    kill_wait "${MON_PID[$1]}" 3
}

# --- what the nodes say ---------------------------------------------------------

# peers_up_all H OTHER...: H's --peers lists every OTHER up.
peers_up_all() {
    local h=$1 t n
    shift
    t=$(node_cli "$h" main 3 --peers 2>/dev/null | tail -n +2) || return 1
    for n in "$@"; do
        awk -v n="$n" '$1 == n && $4 != "self" && $5 == "up" { f = 1 } END { exit !f }' \
            <<<"$t" || return 1
    done
}

# services_all H NAME...: H's --services lists every NAME.
services_all() {
    local h=$1 t n
    shift
    t=$(node_cli "$h" main 3 --services 2>/dev/null) || return 1
    for n in "$@"; do
        awk -v n="$n" '$1 == n { f = 1 } END { exit !f }' <<<"$t" || return 1
    done
}

# mon_first H DIR WHAT NAME AFTER_MS: the time (ms) of the first event
# "EV WHAT DIR NAME" in H's monitor records at or after AFTER_MS; empty if
# none.
mon_first() {
    cat "$MON_DIR"/mon."$1".*.rec 2>/dev/null |
        awk -v w="$3" -v d="$2" -v n="$4" -v a="$5" \
            '$1 == "EV" && $2 == w && $3 == d && $4 == n && $6 >= a { print $6 }' |
        sort -n | head -1
}
