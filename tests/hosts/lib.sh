# lib.sh: virtual hosts on a virtual LAN, for multi-host tests. Source it.
#
#   . "$(dirname "$0")/lib.sh"
#   reason=$(hosts_skip_reason) && [ -z "$reason" ] || { echo "SKIP: $reason"; exit 77; }
#   hosts_init                      # temp dir, traps, the bridge's netns
#   host_create h1; host_create h2  # 198.18.0.1/24, 198.18.0.2/24, ...
#   host_services_up h1; ...      # its own dbus-daemon and avahi-daemon
#   node_start h1 main --name h1
#   host_exec h1 ipc-node --peers
#
# Layout. Every network namespace is named "$HOSTS_PREFIX-..." with a prefix
# unique to the run (ipcT<pid>). One namespace, "$HOSTS_PREFIX-br", holds the
# bridge "br0"; each host H is a namespace "$HOSTS_PREFIX-H" whose "eth0" is
# a veth whose other end ("H" in the bridge's namespace) is a port of br0.
# Addresses: 198.18.0.N/24 (RFC 2544 benchmarking range), N = creation order.
# Nothing is created, changed or sent outside these namespaces: veth pairs
# are created directly inside them.
#
# Each host also has its own mount and UTS namespaces (held by an "anchor"
# process, a sleep): hostname H and a private tmpfs on /run, so that each
# has its own D-Bus system bus (/run/dbus/system_bus_socket), its own
# avahi-daemon, and its own default ipc-node socket (/run/ipc-node/node.sock).
# host_exec enters the three namespaces of the anchor with nsenter.
#
# Every process started here is recorded and killed by hosts_cleanup, which
# runs on EXIT, INT and TERM and deletes every namespace created, then the
# temp dir. Every wait is bounded.

# shellcheck disable=SC2034  # variables read by the scripts that source us
HOSTS_SUBNET=198.18.0
HOSTS_PREFIX=${HOSTS_PREFIX:-ipcT$$}
HOSTS_BR_NS=$HOSTS_PREFIX-br
HOSTS_DIR=                  # temp dir: logs, config files
HOSTS_KEEP=${HOSTS_KEEP:-}  # set to keep the temp dir (logs) after the run
HOSTS_NETNS=()              # namespaces we created, in order
HOSTS_LIST=()               # host names, in order
HOSTS_BG_PIDS=()            # other background processes (bg_start)
declare -A HOST_NS=()       # H -> netns name
declare -A HOST_IP=()       # H -> address
declare -A HOST_ANCHOR=()   # H -> pid of the process holding the namespaces
declare -A HOST_DBUS=()     # H -> dbus-daemon pid
declare -A HOST_AVAHI=()    # H -> avahi-daemon pid ("" when not running)
declare -A HOST_AVAHI_RUNS=()  # H -> how many times avahi was started
declare -A NODE_PID=()      # "H/TAG" -> ipc-node pid
declare -A NODE_SOCK=()     # "H/TAG" -> its socket path (inside H)
declare -A NODE_LOG=()      # "H/TAG" -> its log file

: "${IPC_NODE:=ipc-node}"
case ":$PATH:" in
    *:/usr/sbin:*) ;;
    *) PATH=$PATH:/usr/sbin:/sbin ;;
esac

# --- small helpers ----------------------------------------------------------

# now_ms: wall clock in milliseconds.
now_ms() {
    local t=${EPOCHREALTIME//[.,]/}
    echo $((t / 1000))
}

hosts_log() {
    echo "# $*" >&2
}

# wait_until MS CMD...: runs CMD every 100 ms until it succeeds or MS have
# passed. Returns CMD's last status; WAITED_MS says how long it took.
wait_until() {
    local limit=$1 start now
    shift
    start=$(now_ms)
    while :; do
        if "$@"; then
            WAITED_MS=$(($(now_ms) - start))
            return 0
        fi
        now=$(now_ms)
        if ((now - start >= limit)); then
            WAITED_MS=$((now - start))
            return 1
        fi
        sleep 0.1
    done
}

# pid_alive PID
pid_alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

# kill_wait PID [SECONDS]: TERM, up to SECONDS (default 3) for it to end,
# then KILL; reaps it when it is our child.
kill_wait() {
    local pid=$1 secs=${2:-3} i
    pid_alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < secs * 20; i++)); do
        pid_alive "$pid" || break
        # a zombie child counts as gone
        [[ $(ps -o stat= -p "$pid" 2>/dev/null) == Z* ]] && break
        sleep 0.05
    done
    pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# hosts_skip_reason: prints why multi-host tests cannot run here (nothing
# when they can). Use before hosts_init.
hosts_skip_reason() {
    local t
    if [ "$(id -u)" != 0 ]; then
        echo "not root (network namespaces need root)"
        return
    fi
    for t in ip nsenter unshare dbus-daemon avahi-daemon avahi-browse avahi-publish \
        timeout mktemp; do
        if ! command -v "$t" >/dev/null 2>&1; then
            echo "$t not found (packages: iproute2 util-linux dbus avahi-daemon avahi-utils)"
            return
        fi
    done
    t=ipcT$$-probe
    if ! ip netns add "$t" 2>/dev/null; then
        echo "cannot create a network namespace (ip netns add failed)"
        return
    fi
    if ! ip netns exec "$t" unshare -m -u --propagation private \
        sh -c 'hostname ipcprobe && mount -t tmpfs none /run' 2>/dev/null; then
        ip netns del "$t" 2>/dev/null
        echo "cannot make a host's mount/UTS namespaces (unshare -m -u, hostname, tmpfs /run)"
        return
    fi
    if ! ip -n "$t" link add ipcprobe0 type veth peer name ipcprobe1 2>/dev/null; then
        ip netns del "$t" 2>/dev/null
        echo "cannot create veth pairs"
        return
    fi
    if ! ip -n "$t" link add ipcprobebr type bridge 2>/dev/null; then
        ip netns del "$t" 2>/dev/null
        echo "cannot create bridges"
        return
    fi
    ip netns del "$t" 2>/dev/null
}

# --- life of the whole setup --------------------------------------------------

# hosts_reap_stale: deletes namespaces left by an earlier run of these tests
# that was killed before its cleanup (names ipcT<pid>-... whose pid is gone),
# after killing what still runs in them; and its temp dir (unless kept).
hosts_reap_stale() {
    local ns pid p d
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        [[ $ns =~ ^ipcT([0-9]+)-[a-z0-9]+$ ]] || continue
        pid=${BASH_REMATCH[1]}
        [ "$pid" = $$ ] && continue
        pid_alive "$pid" && continue
        hosts_log "removing stale namespace $ns (run $pid is gone)"
        for p in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$p" 2>/dev/null
        done
        ip netns del "$ns" 2>/dev/null
    done
    for d in /tmp/ipcnet-hosts-*-*; do
        [[ $d =~ ^/tmp/ipcnet-hosts-([0-9]+)-[A-Za-z0-9]+$ ]] || continue
        pid=${BASH_REMATCH[1]}
        [ "$pid" = $$ ] || pid_alive "$pid" || [ -e "$d/KEEP" ] || rm -rf "$d"
    done
}

# hosts_init: temp dir, cleanup traps, the bridge namespace.
hosts_init() {
    HOSTS_DIR=$(mktemp -d "/tmp/ipcnet-hosts-$$-XXXXXX") || return 1
    trap hosts_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    hosts_reap_stale
    ip netns add "$HOSTS_BR_NS" || return 1
    HOSTS_NETNS+=("$HOSTS_BR_NS")
    ip -n "$HOSTS_BR_NS" link set lo up &&
        ip -n "$HOSTS_BR_NS" link add br0 type bridge mcast_snooping 0 stp_state 0 \
            forward_delay 0 &&
        ip -n "$HOSTS_BR_NS" link set br0 up
}

# hosts_cleanup: kills everything we started, deletes our namespaces and the
# temp dir. Safe to call more than once.
hosts_cleanup() {
    local rc=$? k p ns h
    trap - EXIT INT TERM
    for p in "${HOSTS_BG_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for k in "${!NODE_PID[@]}"; do
        kill -TERM "${NODE_PID[$k]}" 2>/dev/null
    done
    for p in "${HOSTS_BG_PIDS[@]}" "${NODE_PID[@]}"; do
        kill_wait "$p" 2
    done
    for h in "${HOSTS_LIST[@]}"; do
        kill_wait "${HOST_AVAHI[$h]:-}" 2
        kill_wait "${HOST_DBUS[$h]:-}" 2
        kill_wait "${HOST_ANCHOR[$h]:-}" 1
    done
    # Anything else still in our namespaces (a verb left behind, a daemon
    # that forked) is ours too.
    for ns in "${HOSTS_NETNS[@]}"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$p" 2>/dev/null
        done
    done
    for ns in "${HOSTS_NETNS[@]}"; do
        ip netns del "$ns" 2>/dev/null
    done
    HOSTS_NETNS=()
    NODE_PID=()
    HOSTS_BG_PIDS=()
    HOSTS_LIST=()
    if [ -n "$HOSTS_DIR" ] && [ -d "$HOSTS_DIR" ]; then
        if [ -n "$HOSTS_KEEP" ]; then
            : >"$HOSTS_DIR/KEEP"
            hosts_log "logs kept in $HOSTS_DIR"
        else
            rm -rf "$HOSTS_DIR"
        fi
    fi
    HOSTS_DIR=
    return $rc
}

# --- hosts ------------------------------------------------------------------

# host_create H: a host on the bridge, address $HOSTS_SUBNET.N/24 where N is
# its position (1 for the first), its namespaces held by an anchor process.
host_create() {
    local h=$1 n ns ip i
    n=$((${#HOSTS_LIST[@]} + 1))
    ns=$HOSTS_PREFIX-$h
    ip=$HOSTS_SUBNET.$n
    ip netns add "$ns" || return 1
    HOSTS_NETNS+=("$ns")
    HOSTS_LIST+=("$h")
    HOST_NS[$h]=$ns
    HOST_IP[$h]=$ip
    HOST_AVAHI[$h]=
    HOST_AVAHI_RUNS[$h]=0
    # Both ends are created inside our namespaces: the root one is untouched.
    ip -n "$HOSTS_BR_NS" link add "$h" type veth peer name eth0 netns "$ns" || return 1
    ip -n "$HOSTS_BR_NS" link set "$h" master br0 || return 1
    ip -n "$HOSTS_BR_NS" link set "$h" up || return 1
    ip -n "$ns" link set lo up || return 1
    ip -n "$ns" link set eth0 multicast on || return 1
    ip -n "$ns" addr add "$ip/24" dev eth0 || return 1
    ip -n "$ns" link set eth0 up || return 1
    # The anchor: own mount and UTS namespaces, hostname H, a private /run.
    # ip netns exec and unshare both exec, so $! ends up being the sleep.
    # shellcheck disable=SC2016  # $1, $2: the inner shell's arguments
    ip netns exec "$ns" unshare -m -u --propagation private sh -c '
        hostname "$1" && mount -t tmpfs -o mode=0755 none /run &&
        mkdir -p /run/dbus /run/avahi-daemon /run/ipc-node &&
        : >"$2" && exec sleep infinity' sh "$h" "$HOSTS_DIR/$h.anchor" \
        >"$HOSTS_DIR/$h.anchor.log" 2>&1 </dev/null &
    HOST_ANCHOR[$h]=$!
    for ((i = 0; i < 100; i++)); do
        [ -e "$HOSTS_DIR/$h.anchor" ] && break
        pid_alive "${HOST_ANCHOR[$h]}" || break
        sleep 0.05
    done
    if ! [ -e "$HOSTS_DIR/$h.anchor" ]; then
        hosts_log "host $h: namespace setup failed: $(cat "$HOSTS_DIR/$h.anchor.log")"
        return 1
    fi
    # Wait until the sleep has replaced the shell (its mounts are done then).
    for ((i = 0; i < 100; i++)); do
        [ "$(cat "/proc/${HOST_ANCHOR[$h]}/comm" 2>/dev/null)" = sleep ] && break
        sleep 0.02
    done
    return 0
}

# host_exec H CMD...: runs CMD in host H (its network, mount and UTS
# namespaces). The working directory inside is /; use absolute paths.
# Not for the background ("host_exec H cmd &" would give the pid of a bash
# subshell): use bg_start, which records cmd's own pid.
host_exec() {
    local h=$1
    shift
    nsenter -t "${HOST_ANCHOR[$h]}" -m -u -n -- "$@"
}

# host_ip H: its address.
host_ip() {
    echo "${HOST_IP[$1]}"
}

# host_reaches H ADDR: H gets an answer from ADDR within a second: a ping
# when ping is installed, else a TCP connection to port 9 (discard), where
# "connection refused" is an answer too.
host_reaches() {
    local out
    if command -v ping >/dev/null 2>&1; then
        host_exec "$1" ping -n -c1 -W1 "$2" >/dev/null 2>&1
        return
    fi
    # shellcheck disable=SC2016  # $1: the inner shell's argument
    out=$(host_exec "$1" timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/9"' sh "$2" 2>&1)
    case $? in
        0) return 0 ;;
        *) [[ $out == *refused* ]] ;;
    esac
}

# bg_start H LOG CMD...: CMD in H in the background, output to LOG; its pid
# in BG_PID (recorded, killed at cleanup).
bg_start() {
    local h=$1 log=$2
    shift 2
    nsenter -t "${HOST_ANCHOR[$h]}" -m -u -n -- "$@" >"$log" 2>&1 </dev/null &
    BG_PID=$!
    HOSTS_BG_PIDS+=("$BG_PID")
}

# bg_stop PID: stops a process started by bg_start.
bg_stop() {
    kill_wait "$1" 3
}

# --- D-Bus and Avahi in a host ----------------------------------------------

# host_dbus_start H: a system bus of its own, on /run/dbus/system_bus_socket.
host_dbus_start() {
    local h=$1
    host_exec "$h" rm -f /run/dbus/system_bus_socket /run/dbus/pid
    nsenter -t "${HOST_ANCHOR[$h]}" -m -u -n -- dbus-daemon --system --nofork --nopidfile --nosyslog \
        >"$HOSTS_DIR/$h.dbus.log" 2>&1 </dev/null &
    HOST_DBUS[$h]=$!
    if ! wait_until 5000 host_exec "$h" test -S /run/dbus/system_bus_socket; then
        hosts_log "host $h: dbus-daemon did not start: $(cat "$HOSTS_DIR/$h.dbus.log")"
        return 1
    fi
}

# host_avahi_conf H: writes the avahi-daemon config for H: eth0 only, IPv4
# only (the test LAN has no IPv6), nothing but our services published.
host_avahi_conf() {
    local h=$1
    cat >"$HOSTS_DIR/$h.avahi.conf" <<EOF
[server]
host-name=$h
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
publish-aaaa-on-ipv4=no
[reflector]
enable-reflector=no
[rlimits]
EOF
}

# host_avahi_start H [nowait]: starts avahi-daemon in H (the bus must be up)
# and waits (5 s at most) until it has registered its host name; with
# "nowait", returns at once (then host_avahi_wait H).
host_avahi_start() {
    local h=$1 log
    [ -f "$HOSTS_DIR/$h.avahi.conf" ] || host_avahi_conf "$h"
    HOST_AVAHI_RUNS[$h]=$((HOST_AVAHI_RUNS[$h] + 1))
    log=$HOSTS_DIR/$h.avahi.${HOST_AVAHI_RUNS[$h]}.log
    host_exec "$h" rm -f /run/avahi-daemon/pid /run/avahi-daemon/socket
    nsenter -t "${HOST_ANCHOR[$h]}" -m -u -n -- avahi-daemon --no-drop-root --no-chroot --no-rlimits \
        -f "$HOSTS_DIR/$h.avahi.conf" >"$log" 2>&1 </dev/null &
    HOST_AVAHI[$h]=$!
    [ "${2:-}" = nowait ] || host_avahi_wait "$h"
}

# host_avahi_wait H: until the avahi-daemon started last in H has registered
# its host name (5 s at most).
host_avahi_wait() {
    local h=$1 log=$HOSTS_DIR/$1.avahi.${HOST_AVAHI_RUNS[$1]}.log
    if ! wait_until 5000 grep -qs "Server startup complete" "$log"; then
        hosts_log "host $h: avahi-daemon did not start: $(tail -5 "$log" 2>/dev/null)"
        return 1
    fi
}

# host_avahi_stop H [KILL]: stops avahi-daemon in H (SIGTERM: it withdraws
# its records; with KILL: SIGKILL, it says nothing).
host_avahi_stop() {
    local h=$1 pid=${HOST_AVAHI[$1]}
    [ -n "$pid" ] || return 0
    if [ "${2:-}" = KILL ]; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    else
        kill_wait "$pid" 5
    fi
    HOST_AVAHI[$h]=
}

# host_avahi_running H
host_avahi_running() {
    pid_alive "${HOST_AVAHI[$1]}"
}

# host_services_up H: dbus and avahi in H.
host_services_up() {
    host_dbus_start "$1" && host_avahi_start "$1"
}

# --- the link ----------------------------------------------------------------

# host_link_down H / host_link_up H: H's eth0 down or up (H sees it).
host_link_down() {
    ip -n "${HOST_NS[$1]}" link set eth0 down
}
host_link_up() {
    ip -n "${HOST_NS[$1]}" link set eth0 up
}

# host_port_down H / host_port_up H: H's port on the bridge down or up (H
# sees only a lost carrier).
host_port_down() {
    ip -n "$HOSTS_BR_NS" link set "$1" down
}
host_port_up() {
    ip -n "$HOSTS_BR_NS" link set "$1" up
}

# host_block H / host_unblock H: an nftables table in H that drops every
# packet in or out except on lo (the link stays up: a silent partition).
host_block() {
    ip netns exec "${HOST_NS[$1]}" nft -f - <<'EOF'
table inet ipcnet_test_cut {
    chain cut_in { type filter hook input priority -300; policy accept; iifname != "lo" drop; }
    chain cut_out { type filter hook output priority -300; policy accept; oifname != "lo" drop; }
}
EOF
}
host_unblock() {
    ip netns exec "${HOST_NS[$1]}" nft delete table inet ipcnet_test_cut
}

# --- ipc-node in a host --------------------------------------------------------

# node_launch H TAG [ARGS...]: starts ipc-node in H with socket
# /run/ipc-node/TAG.sock ("main": /run/ipc-node/node.sock, the default) and
# state dir /run/ipc-node-state-TAG ("main": /run/ipc-node-state), plus
# ARGS; log in $HOSTS_DIR/H.TAG.log. Returns at once.
node_launch() {
    local h=$1 tag=$2 key=$1/$2 sock state log
    shift 2
    if [ "$tag" = main ]; then
        sock=/run/ipc-node/node.sock
        state=/run/ipc-node-state
    else
        sock=/run/ipc-node/$tag.sock
        state=/run/ipc-node-state-$tag
    fi
    log=$HOSTS_DIR/$h.$tag.log
    nsenter -t "${HOST_ANCHOR[$h]}" -m -u -n -- "$IPC_NODE" --socket "$sock" --state-dir "$state" "$@" \
        >>"$log" 2>&1 </dev/null &
    NODE_PID[$key]=$!
    NODE_SOCK[$key]=$sock
    NODE_LOG[$key]=$log
}

# node_wait H TAG: until node H/TAG answers --peers (5 s at most).
node_wait() {
    if ! wait_until 5000 node_answers "$1" "$2"; then
        hosts_log "node $1/$2 did not start: $(tail -5 "${NODE_LOG[$1/$2]}")"
        return 1
    fi
}

# node_start H TAG [ARGS...]: node_launch, then node_wait.
node_start() {
    node_launch "$@" && node_wait "$1" "$2"
}

# node_answers H TAG: the node answers --peers.
node_answers() {
    pid_alive "${NODE_PID[$1/$2]}" &&
        host_exec "$1" timeout -k 1 3 "$IPC_NODE" --socket "${NODE_SOCK[$1/$2]}" --peers \
            >/dev/null 2>&1
}

# node_stop H TAG: SIGTERM (a clean goodbye), KILL after 5 s.
node_stop() {
    kill_wait "${NODE_PID[$1/$2]}" 5
    unset "NODE_PID[$1/$2]"
}

# node_cli H TAG SECONDS ARGS...: a verb against node H/TAG, bounded by
# SECONDS; output on stdout, status returned.
node_cli() {
    local h=$1 tag=$2 secs=$3
    shift 3
    host_exec "$h" timeout -k 1 "$secs" "$IPC_NODE" --socket "${NODE_SOCK[$h/$tag]}" "$@"
}

# node_cli_bg H TAG LOG ARGS...: a verb in the background (bounded to 60 s,
# recorded), output in LOG, pid in BG_PID.
node_cli_bg() {
    local h=$1 tag=$2 log=$3
    shift 3
    bg_start "$h" "$log" timeout -k 1 60 "$IPC_NODE" --socket "${NODE_SOCK[$h/$tag]}" "$@"
}
