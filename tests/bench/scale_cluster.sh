#!/usr/bin/env bash
# scale_cluster.sh: how a cluster of ipc-nodes on one host comes together.
#
# Starts N nodes (default 32) on 127.0.0.1, each with its own socket, state
# directory and port, each but the first seeded with node 1 only, and on
# each a holder (`ipc-node --listen svc.K`) of a distinct name. Measures the
# time from the start of the last node until every node lists all N names
# in `ipc-node --services` (given up after 60 s), then the resident memory
# of every node (VmRSS) and an estimate per peer: the mean RSS of the
# cluster's nodes minus the RSS of a lone node (one holder, no peers,
# measured first), divided by N - 1.
#
# A benchmark, not a test: it prints figures and fails only when it cannot
# run. Every process it starts is stopped by PID and reaped, and its
# temporary directory is removed, on any exit.
#
# usage: IPC_NODE=path/to/ipc-node tests/bench/scale_cluster.sh [N]
#   IPC_NODE_ARGS   more arguments for every node
#   SCALE_TIMEOUT   seconds to wait for convergence (60)
#   SCALE_SETTLE    seconds between convergence and reading RSS (1)

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
node_bin=${IPC_NODE:-$here/../../ipc-node}
count=${1:-32}
timeout_s=${SCALE_TIMEOUT:-60}
settle_s=${SCALE_SETTLE:-1}
read -r -a extra_args <<< "${IPC_NODE_ARGS:-}"

die() {
    echo "scale_cluster: $*" >&2
    exit 1
}

if ! [[ $count =~ ^[0-9]+$ ]] || (( count < 2 || count > 256 )); then
    die "N must be 2..256, not '$count'"
fi
if ! [[ $timeout_s =~ ^[0-9]+$ ]] || (( timeout_s < 1 )); then
    die "bad SCALE_TIMEOUT '$timeout_s'"
fi
[[ $settle_s =~ ^[0-9]+$ ]] || die "bad SCALE_SETTLE '$settle_s'"
[[ -x $node_bin ]] || die "no ipc-node at '$node_bin' (set IPC_NODE)"
command -v python3 > /dev/null || die "python3 is needed to pick free ports"
node_bin=$(cd "$(dirname "$node_bin")" && pwd)/$(basename "$node_bin")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ipcnet-scale.XXXXXX")
declare -a node_pids=() holder_pids=()

# Stops the given PIDs with SIGTERM, waits up to 5 s, then SIGKILL; reaps.
stop_pids() {
    local pid i alive
    (( $# )) || return 0
    for pid in "$@"; do
        kill -TERM "$pid" 2> /dev/null || true
    done
    for (( i = 0; i < 50; i++ )); do
        alive=0
        for pid in "$@"; do
            if kill -0 "$pid" 2> /dev/null && [[ $(ps -o stat= -p "$pid" 2> /dev/null) != Z* ]]; then
                alive=1
                break
            fi
        done
        (( alive )) || break
        sleep 0.1
    done
    for pid in "$@"; do
        if kill -0 "$pid" 2> /dev/null && [[ $(ps -o stat= -p "$pid" 2> /dev/null) != Z* ]]; then
            echo "scale_cluster: pid $pid still running 5 s after SIGTERM: SIGKILL" >&2
            kill -KILL "$pid" 2> /dev/null || true
        fi
        wait "$pid" 2> /dev/null || true
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pids "${holder_pids[@]}"
    stop_pids "${node_pids[@]}"
    rm -rf -- "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_us() {
    local t=${EPOCHREALTIME/[.,]/}
    echo "$t"
}

# count+1 distinct TCP ports of 127.0.0.1 that were free a moment ago.
mapfile -t ports < <(python3 - "$((count + 1))" << 'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
    s.close()
EOF
)
(( ${#ports[@]} == count + 1 )) || die "could not pick $((count + 1)) free ports"

# Starts node K (0 is the lone one) and waits (bounded) until it accepts.
start_node() {
    local k=$1 dir=$tmp/$1 i
    local -a args=(--socket "$dir/s" --name "n$k" --port "${ports[$k]}" --bind 127.0.0.1
                   --state-dir "$dir" --no-mdns --cluster "scale-$$")
    if (( k > 1 )); then
        args+=(--peer "tcp://127.0.0.1:${ports[1]}")
    fi
    mkdir -p "$dir"
    "$node_bin" "${args[@]}" "${extra_args[@]}" > "$dir/log" 2>&1 < /dev/null &
    node_pids[k]=$!
    for (( i = 0; i < 200; i++ )); do
        if "$node_bin" --socket "$dir/s" --services > /dev/null 2>&1; then
            return 0
        fi
        kill -0 "${node_pids[k]}" 2> /dev/null || break
        sleep 0.05
    done
    echo "scale_cluster: node $k did not accept on $dir/s within 10 s; its log:" >&2
    tail -n 20 "$dir/log" >&2 || true
    exit 1
}

start_holder() {
    local k=$1
    "$node_bin" --socket "$tmp/$k/s" --listen "svc.$k" > "$tmp/$k/holder.log" 2>&1 < /dev/null &
    holder_pids[k]=$!
}

# Names svc.* that node K lists.
names_on() {
    { "$node_bin" --socket "$tmp/$1/s" --services 2> /dev/null || true; } |
        awk '$1 ~ /^svc\.[0-9]+$/ { print $1 }' | sort -u | wc -l
}

peers_up_on() {
    { "$node_bin" --socket "$tmp/$1/s" --peers 2> /dev/null || true; } |
        awk 'NR > 1 && $5 == "up" && $4 != "self" { n++ } END { print n + 0 }'
}

rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2> /dev/null || echo 0
}

echo "# scale_cluster: $count ipc-nodes on 127.0.0.1, each seeded with node 1, one name held on each"
env_args=""
if [[ -n ${IPC_NODE_ARGS:-} ]]; then
    env_args=" IPC_NODE_ARGS='$IPC_NODE_ARGS'"
fi
echo "# reproduce: IPC_NODE=$node_bin$env_args" \
     "SCALE_TIMEOUT=$timeout_s SCALE_SETTLE=$settle_s $here/scale_cluster.sh $count"
echo "# host: $(uname -srm), $(nproc) CPUs; nodes: --bind 127.0.0.1 --no-mdns, own socket, state dir, port"

# A lone node first: one holder, no peers.
start_node 0
start_holder 0
for (( i = 0; i < 100; i++ )); do
    if (( $(names_on 0) >= 1 )); then
        break
    fi
    sleep 0.05
done
(( $(names_on 0) >= 1 )) || die "the lone node never listed svc.0"
sleep "$settle_s"
lone_rss=$(rss_kb "${node_pids[0]}")
stop_pids "${holder_pids[0]}"
stop_pids "${node_pids[0]}"
unset 'holder_pids[0]' 'node_pids[0]'
echo "lone node: VmRSS $lone_rss kB (one holder, no peers)"

# The cluster: node 1, then the others, each with its holder.
t_first=$(now_us)
for (( k = 1; k <= count; k++ )); do
    if (( k == count )); then
        t_last=$(now_us)
    fi
    start_node "$k"
    start_holder "$k"
done
t_started=$(now_us)
printf 'started: %d nodes and holders in %d ms (node 1 to node %d accepting)\n' \
    "$count" $(( (t_started - t_first) / 1000 )) "$count"

# Until every node lists every name, bounded. Each sweep asks the nodes in
# turn, the last started first; a node's time is when its answer came, so
# the figure is an upper bound by up to one sweep.
declare -a done_at=()
left=$count
sweeps=0
sweep_us=0
deadline=$(( t_last + timeout_s * 1000000 ))
while (( left > 0 )) && (( $(now_us) < deadline )); do
    sweeps=$(( sweeps + 1 ))
    t_sweep=$(now_us)
    for (( k = count; k >= 1; k-- )); do
        [[ -n ${done_at[k]:-} ]] && continue
        if (( $(names_on "$k") >= count )); then
            done_at[k]=$(now_us)
            left=$(( left - 1 ))
        fi
    done
    sweep_us=$(( $(now_us) - t_sweep ))
    if (( left > 0 )); then
        sleep 0.02
    fi
done
t_conv=$(now_us)
if (( left > 0 )); then
    echo "converged: NO: after ${timeout_s} s, $left node(s) did not list all $count names:"
    for (( k = 1; k <= count; k++ )); do
        [[ -n ${done_at[k]:-} ]] || printf '  n%d lists %d names, %d peers up\n' \
            "$k" "$(names_on "$k")" "$(peers_up_on "$k")"
    done
else
    first=${done_at[1]}
    for (( k = 2; k <= count; k++ )); do
        if (( done_at[k] < first )); then
            first=${done_at[k]}
        fi
    done
    printf 'converged: every node lists all %d names %d ms after node %d started\n' \
        "$count" $(( (t_conv - t_last) / 1000 )) "$count"
    printf '  (node %d complete at %d ms, the first answer at %d ms; %d sweep(s) of' \
        "$count" $(( (done_at[count] - t_last) / 1000 )) $(( (first - t_last) / 1000 )) "$sweeps"
    printf ' ipc-node --services over %d nodes, the last one %d ms long)\n' \
        "$count" $(( sweep_us / 1000 ))
fi

sleep "$settle_s"
total=0
min=
max=0
declare -a rss=()
line=""
for (( k = 1; k <= count; k++ )); do
    rss[k]=$(rss_kb "${node_pids[k]}")
    total=$(( total + rss[k] ))
    if (( rss[k] > max )); then
        max=${rss[k]}
    fi
    if [[ -z $min ]] || (( rss[k] < min )); then
        min=${rss[k]}
    fi
    line+=" n$k=${rss[k]}"
    if (( k % 8 == 0 || k == count )); then
        echo "VmRSS kB:$line"
        line=""
    fi
done
mean=$(( total / count ))
median=$(printf '%s\n' "${rss[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }')
up_min=$count
for (( k = 1; k <= count; k++ )); do
    u=$(peers_up_on "$k")
    if (( u < up_min )); then
        up_min=$u
    fi
done
echo "VmRSS per node with $((count - 1)) peers: min $min, median $median, mean $mean, max $max kB;" \
     "fewest peers up on a node: $up_min of $((count - 1))"
awk -v m="$mean" -v l="$lone_rss" -v n="$((count - 1))" \
    'BEGIN { printf "per peer: (mean %d - lone %d) / %d = %.1f kB\n", m, l, n, (m - l) / n }'
echo "# stopping: SIGTERM by PID to $count holders, then $count nodes"
