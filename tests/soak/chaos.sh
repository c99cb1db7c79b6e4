# tests/soak/chaos.sh: the soak's chaos, bounded in time. Source it after
# shellcheck shell=bash
# tests/hosts/lib.sh and tests/soak/lib.sh; soak.sh calls chaos_run.
#
#   chaos_run SECONDS       one action after another until SECONDS have
#                           passed (the action under way is finished and
#                           healed), each followed by a settle
#   chaos_heal_all          undoes whatever may still be in force
#
# The actions, on a host chosen at random (RANDOM, seeded by soak.sh):
#   kill      SIGKILL the node, start it again (same state dir: same id)
#   stop      SIGSTOP the node for CHAOS_STOP_S (2.5 s, twice the 1.25 s
#             liveness window), then SIGCONT
#   avahi     restart avahi-daemon
#   block     nft: drop everything in and out but lo, for 3 s
#   probdrop  nft: "numgen random mod 100 < 5 drop" in and out, for 5 s
#   linkdown  ip link set eth0 down, for 3 s
#   tbf       tc qdisc tbf on eth0 (rate CHAOS_TBF_RATE, 1mbit), for 5 s
#   killtx    SIGKILL a sender, start it again (it resumes from its ledger)
#   killrx    SIGKILL a receiver, start it again
#   termrx    SIGTERM a receiver (a clean stop: unbind, drain), start it again
# Each is one line of $CHAOS_LOG: KIND TARGET T0 T1 [DETAIL], times in ms;
# for kill, stop, block and linkdown T1 is when the node is back (its
# socket answers, SIGCONT, the link healed). Actions never overlap: the
# accounting can tell what each loss was due to.

CHAOS_LOG=
CHAOS_STOP_S=${CHAOS_STOP_S:-2.5}
CHAOS_TBF_RATE=${CHAOS_TBF_RATE:-1mbit}
# The order of the actions; SOAK_CHAOS="tbf stop" for others (to chase one).
read -r -a CHAOS_ORDER <<<"${SOAK_CHAOS:-kill killtx stop termrx avahi block killrx probdrop linkdown killtx tbf}"
declare -A CHAOS_DONE=()    # KIND -> how many times done
# shellcheck disable=SC2034  # filled by soak.sh
CHAOS_SENDERS=()            # ids, set by soak.sh
# shellcheck disable=SC2034
CHAOS_RECEIVERS=()          # names, set by soak.sh
CHAOS_SETTLE=               # a function: waits until the hosts agree again

chaos_event() {
    echo "$*" >>"$CHAOS_LOG"
}

# chaos_pick ARRAY: one of its elements, at random, in PICKED (not by
# $(...): a subshell's RANDOM would not move ours on, so SOAK_SEED would
# not replay a run).
chaos_pick() {
    local -n arr=$1
    PICKED=${arr[RANDOM % ${#arr[@]}]}
}

chaos_lossy_on() {
    ip netns exec "${HOST_NS[$1]}" nft -f - <<'EOF'
table inet ipcnet_soak_lossy {
    chain lin { type filter hook input priority -300; policy accept;
        iifname != "lo" numgen random mod 100 < 5 drop; }
    chain lout { type filter hook output priority -300; policy accept;
        oifname != "lo" numgen random mod 100 < 5 drop; }
}
EOF
}

chaos_lossy_off() {
    ip netns exec "${HOST_NS[$1]}" nft delete table inet ipcnet_soak_lossy 2>/dev/null
}

chaos_tbf_on() {
    ip netns exec "${HOST_NS[$1]}" tc qdisc add dev eth0 root tbf rate "$CHAOS_TBF_RATE" \
        burst 32kbit latency 400ms
}

chaos_tbf_off() {
    ip netns exec "${HOST_NS[$1]}" tc qdisc del dev eth0 root 2>/dev/null
}

# chaos_node_restart H: starts H's node again with the arguments it had.
chaos_node_restart() {
    node_launch "$1" main "${NODE_ARGS[@]}" --name "$1"
    node_wait "$1" main
}

# chaos_action KIND: does it (on a random target), logs it.
chaos_action() {
    local kind=$1 h t0 t1 pid id name
    chaos_pick HOSTS
    h=$PICKED
    t0=$(now_ms)
    case $kind in
    kill)
        pid=${NODE_PID[$h/main]}
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        sleep 0.5
        chaos_node_restart "$h" || hosts_log "chaos: node on $h did not come back"
        chaos_event kill "$h" "$t0" "$(now_ms)" "$pid"
        ;;
    stop)
        kill -STOP "${NODE_PID[$h/main]}"
        sleep "$CHAOS_STOP_S"
        kill -CONT "${NODE_PID[$h/main]}"
        chaos_event stop "$h" "$t0" "$(now_ms)"
        ;;
    avahi)
        host_avahi_stop "$h"
        host_avahi_start "$h" || hosts_log "chaos: avahi-daemon on $h did not come back"
        chaos_event avahi "$h" "$t0" "$(now_ms)"
        ;;
    block)
        host_block "$h"
        sleep 3
        host_unblock "$h"
        chaos_event block "$h" "$t0" "$(now_ms)"
        ;;
    probdrop)
        chaos_lossy_on "$h" || hosts_log "chaos: nft numgen failed on $h"
        sleep 5
        chaos_lossy_off "$h"
        chaos_event probdrop "$h" "$t0" "$(now_ms)"
        ;;
    linkdown)
        host_link_down "$h"
        sleep 3
        host_link_up "$h"
        chaos_event linkdown "$h" "$t0" "$(now_ms)"
        ;;
    tbf)
        chaos_tbf_on "$h" || hosts_log "chaos: tc tbf failed on $h"
        sleep 5
        chaos_tbf_off "$h"
        chaos_event tbf "$h" "$t0" "$(now_ms)"
        ;;
    killtx)
        chaos_pick CHAOS_SENDERS
        id=$PICKED
        pid=${TX_PID[$id]}
        tx_kill "$id"
        t1=$(now_ms)
        sleep 0.3
        tx_restart "$id"
        chaos_event killtx "$id" "$t0" "$t1" "$pid"
        ;;
    killrx)
        chaos_pick CHAOS_RECEIVERS
        name=$PICKED
        pid=${RX_PID[$name]}
        rx_kill "$name"
        t1=$(now_ms)
        sleep 0.3
        rx_restart "$name" || hosts_log "chaos: receiver $name did not bind again"
        chaos_event killrx "$name" "$t0" "$t1" "$pid"
        ;;
    termrx)
        chaos_pick CHAOS_RECEIVERS
        name=$PICKED
        pid=${RX_PID[$name]}
        rx_stop "$name"
        t1=$(now_ms)
        rx_restart "$name" || hosts_log "chaos: receiver $name did not bind again"
        chaos_event termrx "$name" "$t0" "$t1" "$pid"
        ;;
    esac
    CHAOS_DONE[$kind]=$((${CHAOS_DONE[$kind]:-0} + 1))
    echo "# chaos: $kind ${name:-${id:-$h}} ($(($(now_ms) - t0)) ms)"
}

# chaos_run SECONDS: actions in CHAOS_ORDER (then again), each followed by
# $CHAOS_SETTLE, until SECONDS have passed.
chaos_run() {
    local end i=0
    end=$(($(now_ms) + $1 * 1000))
    while (($(now_ms) < end)); do
        chaos_action "${CHAOS_ORDER[i % ${#CHAOS_ORDER[@]}]}"
        i=$((i + 1))
        [ -n "$CHAOS_SETTLE" ] && "$CHAOS_SETTLE"
    done
}

# chaos_heal_all: every host's link up, no nft table, no qdisc, every node
# running (SIGCONT).
chaos_heal_all() {
    local h
    for h in "${HOSTS_LIST[@]}"; do
        [ -n "${NODE_PID[$h/main]:-}" ] && kill -CONT "${NODE_PID[$h/main]}" 2>/dev/null
        host_link_up "$h" 2>/dev/null
        ip netns exec "${HOST_NS[$h]}" nft delete table inet ipcnet_test_cut 2>/dev/null
        chaos_lossy_off "$h"
        chaos_tbf_off "$h"
    done
    return 0
}
