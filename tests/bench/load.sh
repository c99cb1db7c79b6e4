#!/usr/bin/env bash
# load.sh: two ipc-nodes on a veth pair held at their highest sustainable
# rate, with 100 clients and 4 more peers; a benchmark, not a test.
#
# Two network namespaces joined by a veth pair, 198.18.1.1 and 198.18.1.2
# (RFC 2544 range; nothing else is touched). Node A on .1, node B on .2
# (--peer A), and two more nodes in each namespace (ports 5681, 5682,
# --peer A): six nodes in a mesh, all --no-mdns. 50 clients of A each
# send 256-byte messages to one of 50 clients of B ("load.i") as fast as
# the nodes take them (IPCNET_DONTWAIT; -EAGAIN is backpressure: the
# client waits for its socket), for LOAD_SECONDS (default 60). During the
# load a probe client of A makes a request every 10 ms to an echo service
# on B (ipc-node --listen --echo).
#
# Prints: messages a second (every 10 s, and overall), messages sent and
# read (they must match: nothing is lost), RSS of nodes A and B at the
# start and the end of the load, the probe's latency p50/p99/max, errors
# other than backpressure (should be 0), peer losses in the six nodes'
# logs (none is expected: nothing is cut; each would be a false one).
# Exits 1 if it cannot run, 0 otherwise (figures, not a verdict), unless
# LOAD_STRICT=1: then errors, false losses or a count mismatch fail it.
#
# usage (root): IPC_NODE=build/ipc-node LOAD_GEN=build/tests/bench/load_gen \
#                   tests/bench/load.sh       (make -C build tests/bench/load_gen)
#   LOAD_SECONDS (60), LOAD_SIZE (256), LOAD_CLIENTS (100: half send, half read)

set -u

here=$(cd "$(dirname "$0")" && pwd)
node_bin=$(readlink -f "${IPC_NODE:-$here/../../build/ipc-node}")
gen=$(readlink -f "${LOAD_GEN:-$(dirname "$node_bin")/tests/bench/load_gen}")
secs=${LOAD_SECONDS:-60}
size=${LOAD_SIZE:-256}
clients=${LOAD_CLIENTS:-100}
half=$((clients / 2))

die() {
    echo "load.sh: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || { echo "load.sh: needs root (network namespaces)"; exit 77; }
[ -x "$node_bin" ] || die "no ipc-node at '$node_bin' (set IPC_NODE)"
[ -x "$gen" ] || die "no load_gen at '$gen' (make tests/bench/load_gen; or set LOAD_GEN)"
[[ $secs =~ ^[0-9]+$ ]] && ((secs >= 1 && secs <= 3600)) || die "bad LOAD_SECONDS"
((half >= 1 && half <= 1000)) || die "bad LOAD_CLIENTS"

tmp=$(mktemp -d /tmp/ipcnet-load-XXXXXX)
nsa=ipcL$$-a
nsb=ipcL$$-b
pids=()
made_ns=()

cleanup() {
    local p i
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${pids[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    for p in "${made_ns[@]}"; do
        ip netns del "$p" 2>/dev/null
    done
    [ -n "${LOAD_KEEP:-}" ] && echo "# logs kept in $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() {
    local t=${EPOCHREALTIME//[.,]/}
    echo $((t / 1000))
}

rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# --- the pair ---------------------------------------------------------------------------

for ns in "$nsa" "$nsb"; do
    ip netns add "$ns" || die "ip netns add $ns"
    made_ns+=("$ns")
    ip -n "$ns" link set lo up
done
ip -n "$nsa" link add veth0 type veth peer name veth1 netns "$nsb" || die "veth pair"
ip -n "$nsa" addr add 198.18.1.1/24 dev veth0
ip -n "$nsb" addr add 198.18.1.2/24 dev veth1
ip -n "$nsa" link set veth0 up
ip -n "$nsb" link set veth1 up

# node NS TAG PORT [ARGS...]: a node, its pid in NODE_PID_<TAG>, socket $tmp/TAG.sock.
declare -A NPID=()
node() {
    local ns=$1 tag=$2 port=$3
    shift 3
    ip netns exec "$ns" "$node_bin" --socket "$tmp/$tag.sock" --state-dir "$tmp/$tag.state" \
        --no-mdns --no-drop --name "$tag" --port "$port" "$@" >"$tmp/$tag.log" 2>&1 </dev/null &
    NPID[$tag]=$!
    pids+=($!)
}
cli() {
    local tag=$1
    shift
    timeout -k 1 5 "$node_bin" --socket "$tmp/$tag.sock" "$@"
}

node "$nsa" A 5680
sleep 0.3
seed=tcp://198.18.1.1:5680
node "$nsb" B 5680 --peer "$seed"
node "$nsa" A1 5681 --peer "$seed"
node "$nsa" A2 5682 --peer "$seed"
node "$nsb" B1 5681 --peer "$seed"
node "$nsb" B2 5682 --peer "$seed"
mesh=0
for ((i = 0; i < 200; i++)); do
    up=0
    for t in A B A1 A2 B1 B2; do
        n=$(cli "$t" --peers 2>/dev/null | awk 'NR > 1 && $4 != "self" && $5 == "up"' | wc -l)
        [ "$n" = 5 ] && up=$((up + 1))
    done
    [ $up = 6 ] && { mesh=1; break; }
    sleep 0.1
done
[ $mesh = 1 ] || die "the six nodes did not form a mesh in 20 s: $(cli A --peers 2>&1)"
echo "# six nodes in a mesh (A, B on the veth pair; A1 A2 with A, B1 B2 with B)"

# --- the clients --------------------------------------------------------------------------

ip netns exec "$nsb" timeout -k 1 $((secs + 60)) "$node_bin" --socket "$tmp/B.sock" \
    --listen echo --echo >"$tmp/echo.log" 2>&1 </dev/null &
pids+=($!)
"$gen" recv --socket "$tmp/B.sock" --clients "$half" --seconds "$secs" >"$tmp/recv.out" \
    2>"$tmp/recv.err" </dev/null &
recv_pid=$!
pids+=($!)
for ((i = 0; i < 100; i++)); do
    grep -q ready "$tmp/recv.out" 2>/dev/null &&
        cli A --services 2>/dev/null | grep -q "^load\.$((half - 1))[[:space:]]" &&
        cli A --services 2>/dev/null | grep -q '^echo[[:space:]]' && break
    sleep 0.1
done
cli A --services 2>/dev/null | grep -q "^load\.$((half - 1))[[:space:]]" ||
    die "A does not list B's load.* names: $(cat "$tmp/recv.err")"

rss_a0=$(rss_kb "${NPID[A]}")
rss_b0=$(rss_kb "${NPID[B]}")
t0=$(now_ms)
"$gen" send --socket "$tmp/A.sock" --clients "$half" --seconds "$secs" --size "$size" \
    >"$tmp/send.out" 2>"$tmp/send.err" </dev/null &
send_pid=$!
pids+=($!)
"$gen" probe --socket "$tmp/A.sock" --to echo --every-ms 10 --seconds "$secs" \
    >"$tmp/probe.out" 2>"$tmp/probe.err" </dev/null &
probe_pid=$!
pids+=($!)
# RSS a few seconds in (queues and windows filled), every 10 s, and at
# the end.
sleep 5
rss_a5=$(rss_kb "${NPID[A]}")
rss_b5=$(rss_kb "${NPID[B]}")
rss_trace=""
for ((i = 1; i <= secs + 30; i++)); do
    kill -0 "$probe_pid" 2>/dev/null || break
    sleep 1
    ((i % 10 == 5)) && rss_trace+="$((i + 5))s A $(rss_kb "${NPID[A]}") B $(rss_kb "${NPID[B]}"); "
done
wait "$probe_pid"
rss_a1=$(rss_kb "${NPID[A]}")
rss_b1=$(rss_kb "${NPID[B]}")
wait "$send_pid"
t1=$(now_ms)
wait "$recv_pid"

# --- figures ------------------------------------------------------------------------------

kv() {
    tr ' ' '\n' <"$1" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}
sent=$(kv "$tmp/send.out" sent)
eagain=$(kv "$tmp/send.out" backpressure_eagain)
serr=$(kv "$tmp/send.out" send_errors)
eback=$(kv "$tmp/send.out" errors_back)
recv_line=$(grep '^received=' "$tmp/recv.out")
got=$(tr ' ' '\n' <<<"$recv_line" | awk -F= '$1 == "received" { print $2 }')
rate=$(tr ' ' '\n' <<<"$recv_line" | awk -F= '$1 == "msgs_per_s" { print $2 }')
ooo=$(tr ' ' '\n' <<<"$recv_line" | awk -F= '$1 == "out_of_order" { print $2 }')
rerr=$(tr ' ' '\n' <<<"$recv_line" | awk -F= '$1 == "recv_errors" { print $2 }')
perr=$(kv "$tmp/probe.out" probe_errors)
losses=$(cat "$tmp"/{A,B,A1,A2,B1,B2}.log | grep -c ' lost: ')
errors=$((${serr:-0} + ${eback:-0} + ${rerr:-0} + ${perr:-0}))

echo "# load: $half senders on A -> $half receivers on B, ${size}-byte messages, $((($t1 - t0) / 1000)) s"
grep '^rate' "$tmp/recv.out" | sed 's/^/#   /'
echo "messages a second (A -> B, overall): $rate"
echo "messages sent: $sent, read: $got, out of order: $ooo"
echo "backpressure (-EAGAIN, waited): $eagain"
echo "RSS node A: $rss_a0 kB before, $rss_a5 kB at 5 s, $rss_a1 kB at the end"
echo "RSS node B: $rss_b0 kB before, $rss_b5 kB at 5 s, $rss_b1 kB at the end"
echo "#   RSS (kB) during the load: $rss_trace"
echo "probe every 10 ms (request A -> echo on B): $(cat "$tmp/probe.out")"
echo "errors other than backpressure: $errors (send $serr, back $eback, recv $rerr, probe $perr)"
echo "peer losses in the six nodes' logs (each a false one): $losses"
grep -h ' lost: ' "$tmp"/{A,B,A1,A2,B1,B2}.log | head -5 | sed 's/^/#   /'
if [ "${LOAD_STRICT:-}" = 1 ]; then
    [ "$errors" = 0 ] && [ "$losses" = 0 ] && [ "$sent" = "$got" ] && [ "$ooo" = 0 ] || exit 1
fi
exit 0
