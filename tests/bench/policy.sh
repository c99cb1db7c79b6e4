#!/usr/bin/env bash
# policy.sh: what a 50-rule policy costs the nodes.
#
# A benchmark, not a test: it prints figures and fails only when it cannot
# run. It writes a 50-rule policy as a site might have one (services and
# their users, topics, remote nodes; first match decides), in which the
# rule that the benchmarks' traffic (bench.echo: bind, send, request,
# reply) hits is rule 48, so every message is checked against the 47
# before it. Then it runs bench_local and bench_cluster (node variant
# only) with the round trip and the batched scenarios, once without a
# policy (baseline) and once with `--policy FILE` given to every node
# through IPC_NODE_ARGS, alternately, round after round, the order of the
# two swapped every round; pinned (`taskset -c 0`, every process on one
# CPU) and unpinned. It prints for each benchmark, mode and scenario the
# medians over the rounds of both, their ratio policy/baseline, the
# median of the ratios of each round's pair, and how much each varied.
# bench_local's relay, which no policy touches, ran in every run too: its
# spread, and the CPU time that other processes took from the machine
# meanwhile (/proc/stat against our own children), say how noisy it was.
#
#   IPC_NODE=build/ipc-node tests/bench/policy.sh [--rounds N] [--rt N]
#       [--msgs N] [--quick] [--keep DIR]
#
# BENCH_LOCAL and BENCH_CLUSTER name the benchmark programs (default: next
# to $IPC_NODE, in tests/bench/). Every run is bounded (timeout); the
# temporary directory is removed at the end (--keep copies the raw outputs
# first).

set -u

NODE=${IPC_NODE:-}
ROUNDS=7 RT=20000 MSGS=2000000 KEEP=
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --rt) RT=$2; shift 2 ;;
        --msgs) MSGS=$2; shift 2 ;;
        --keep) KEEP=$2; shift 2 ;;
        --quick) ROUNDS=2 RT=2000 MSGS=100000; shift ;;
        -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "policy.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for v in "$ROUNDS" "$RT" "$MSGS"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "policy.sh: bad number '$v'" >&2; exit 2; }
done
if [ -z "$NODE" ] || [ ! -x "$NODE" ]; then
    echo "policy.sh: set IPC_NODE to the ipc-node binary" >&2
    exit 2
fi
BUILD=${TOP_BUILDDIR:-$(dirname "$NODE")}
BL=${BENCH_LOCAL:-$BUILD/tests/bench/bench_local}
BC=${BENCH_CLUSTER:-$BUILD/tests/bench/bench_cluster}
for b in "$BL" "$BC"; do
    [ -x "$b" ] || { echo "policy.sh: no $b (make bench builds it)" >&2; exit 2; }
done
command -v taskset >/dev/null || { echo "policy.sh: taskset not found" >&2; exit 2; }

TMP=$(mktemp -d /tmp/ipcnet-policy-bench-XXXXXX) || exit 1
CHILD=
cleanup() {
    [ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null && wait "$CHILD" 2>/dev/null
    [ -n "$KEEP" ] && mkdir -p "$KEEP" && cp -a "$TMP/." "$KEEP/"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the policy ------------------------------------------------------------------

POL=$TMP/policy
cat >"$POL" <<'EOF'
# A site's policy: first match decides. The benchmarks' traffic (bench.echo)
# is matched by rule 48 only, so each of its checks walks the 47 before it.
allow bind printer user root
deny bind printer
allow send,request printer group root
allow send,request printer gid 7
deny send,request printer
allow bind svc.auth uid 0
deny bind svc.auth
allow send,request svc.auth local
deny send,request svc.auth remote
allow reply svc.auth uid 0
deny reply svc.auth
allow bind svc.db uid 0
allow bind svc.db uid 112
deny bind svc.db
allow send,request svc.db gid 112
allow send,request svc.db user root@db-02
deny send,request svc.db
allow send,request svc.cache.* local
allow send,request svc.cache.* node web-01
deny send,request svc.cache.* remote
allow send,request,reply svc.mail uid 0
allow send,request,reply svc.mail uid 8
deny send,request,reply svc.mail
allow send,request jobs.* gid 1001
allow reply jobs.* uid 1001
deny send,request,reply jobs.*
allow publish sensors.* group root
allow publish sensors.* uid 1002
deny publish sensors.*
allow subscribe secrets.* uid 0
deny subscribe,watch secrets.*
allow send deploy user root@build-01
allow send deploy user *@ci-runner-7
deny send deploy
deny * ops.* remote
allow send,request metrics.push local
deny send,request metrics.push
allow send,request,reply logs.* local
allow send,request,reply logs.* node logs-02
deny send,request,reply logs.*
allow send,request,reply benchmarks.admin uid 0
deny send,request,reply benchmarks.*
allow send,request,reply bench.echo.admin uid 0
deny send,request,reply bench.echo.admin
allow watch svc.* local
deny watch svc.*
allow send,request,reply bench.* uid 65534
allow send,request,reply bench.* everyone
deny send,request,reply * remote
allow * * local
EOF
if ! "$NODE" --policy-check "$POL" >"$TMP/policy.check" 2>"$TMP/policy.err" ||
    [ "$(grep -c . "$TMP/policy.check")" -ne 50 ]; then
    echo "policy.sh: the policy is not 50 good rules:" >&2
    cat "$TMP/policy.err" >&2
    exit 1
fi
HIT=$(awk -F'\t' '$4 == "bench.*" && $5 == "everyone" { print $1 }' "$TMP/policy.check")

# --- the runs ----------------------------------------------------------------------

SAMPLES=$TMP/samples
: >"$SAMPLES"
LOADS=()

# cpu_busy: jiffies the whole machine spent busy (every CPU), /proc/stat.
cpu_busy() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# run BENCH MODE VARIANT ROUND: one run of bench_local (local) or
# bench_cluster (cluster) --rounds 1, its rows in $SAMPLES as
# "bench mode scenario variant round value p99".
run() {
    local bench=$1 mode=$2 var=$3 k=$4 prog args=() pin=() out
    out=$TMP/$bench-$mode-$var-$k
    if [ "$bench" = local ]; then
        prog=$BL
    else
        prog=$BC
        args=(--variants node)
    fi
    [ "$mode" = pinned ] && pin=(taskset -c 0)
    local nargs=
    [ "$var" = policy ] && nargs="--policy $POL"
    echo "# round $k/$ROUNDS: $bench $mode $var" >&2
    IPC_NODE="$NODE" IPC_NODE_ARGS="$nargs" timeout -k 5 600 "${pin[@]}" "$prog" --rounds 1 \
        --rt "$RT" --msgs "$MSGS" --only rt,batch --mode "$mode" "${args[@]}" \
        >"$out.out" 2>"$out.err" &
    CHILD=$!
    wait "$CHILD"
    local rc=$?
    CHILD=
    [ "$rc" -eq 0 ] || echo "#   $bench $mode $var: exit $rc (see its rows: failed runs are left out)" >&2
    awk -v b="$bench" -v v="$var" -v k="$k" '
        /^#   (rt 64B|send 64B batch) +(pinned|unpinned) +(relay|node|nodes) / {
            if ($2 == "rt") { mode = $4; who = $5; val = $6; p99 = $7; cpu = $8 }
            else { mode = $5; who = $6; val = $7; p99 = "-"; cpu = $8 }
            gsub(/[][]/, "", p99)
            split(cpu, c, "+")
            if (val == "(failed)") next
            print b, mode, ($2 == "rt" ? "rt" : "batch"), (who == "relay" ? "relay" : v), k, val,
                p99, c[1]
        }' "$out.out" >>"$SAMPLES"
}

busy0=$(cpu_busy) start=$(date +%s.%N)
LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
for ((k = 1; k <= ROUNDS; k++)); do
    if ((k % 2)); then order=(base policy); else order=(policy base); fi
    for mode in pinned unpinned; do
        for bench in local cluster; do
            for var in "${order[@]}"; do
                run "$bench" "$mode" "$var" "$k"
            done
        done
    done
    LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
done
busy1=$(cpu_busy) end=$(date +%s.%N)

# --- the report -----------------------------------------------------------------------

# stats: n, median, min, max of the numbers on stdin ("0 - - -" if none).
stats() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "0 - - -"; exit }
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%d %.10g %.10g %.10g\n", NR, m, v[1], v[NR] }'
}
# col BENCH MODE SC VAR FIELD: that column (6: value, 7: p99, 8: the nodes'
# CPU us/op) of the samples.
col() {
    awk -v b="$1" -v m="$2" -v s="$3" -v v="$4" -v f="$5" \
        '$1 == b && $2 == m && $3 == s && $4 == v { print $f }' "$SAMPLES"
}
# paired BENCH MODE SC FIELD: policy/baseline of each round that has both.
paired() {
    awk -v b="$1" -v m="$2" -v s="$3" -v f="$4" '$1 == b && $2 == m && $3 == s {
            if ($4 == "base") base[$5] = $f; else if ($4 == "policy") pol[$5] = $f }
        END { for (k in base) if (k in pol && base[k] > 0) print pol[k] / base[k] }' "$SAMPLES"
}
spread() {   # (max - min) / median, in %
    awk -v n="$1" -v m="$2" -v lo="$3" -v hi="$4" 'BEGIN {
        if (n < 2 || m == 0) print "-"; else printf "%.1f%%", 100 * (hi - lo) / m }'
}

ticks=$(getconf CLK_TCK)
times >"$TMP/times"     # in this shell: its children's CPU, the benchmarks'
ours=$(tail -n 1 "$TMP/times" | awk '{ gsub(/[ms]/, " "); print ($1 * 60 + $2) + ($3 * 60 + $4) }')
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
ncpu=$(nproc)

echo "# policy.sh: bench_local and bench_cluster (node), no policy against a 50-rule policy"
echo "# reproduce: IPC_NODE=$NODE $0 --rounds $ROUNDS --rt $RT --msgs $MSGS"
echo "# policy: 50 rules, the benchmarks' traffic matched by rule $HIT ('allow send,request,reply bench.* everyone'); every node of a policy run had --policy"
echo "# each round: pinned (taskset -c 0) then unpinned, bench_local then bench_cluster, baseline and policy alternately (order swapped every round); $ROUNDS rounds, --rt $RT, --msgs $MSGS"
echo "# host: $(uname -srm), $ncpu CPUs; load average at the start of each round: ${LOADS[*]}"
awk -v b0="$busy0" -v b1="$busy1" -v t="$ticks" -v ours="$ours" -v w="$wall" -v n="$ncpu" 'BEGIN {
    all = (b1 - b0) / t; other = all - ours; if (other < 0) other = 0
    printf "# noise: in %d s the machine was busy %.0f CPU-s of %d; ours (these runs) %.0f, other processes %.0f (%.0f%% of the machine)\n",
        w, all, n * w, ours, other, 100 * other / (n * w) }'
echo
printf '%-8s %-9s %-10s %-6s %12s %12s %9s %13s %12s %12s\n' bench mode scenario unit baseline \
    policy pol/base "paired median" "base spread" "pol spread"
verdicts=()
for bench in local cluster; do
    for mode in pinned unpinned; do
        for sc in rt batch; do
            for f in 6 7 8; do
                [ "$sc" = batch ] && [ "$f" = 7 ] && continue
                read -r nb mb lb hb < <(col "$bench" "$mode" "$sc" base "$f" | stats)
                read -r np mp lp hp < <(col "$bench" "$mode" "$sc" policy "$f" | stats)
                read -r _ mr lr hr < <(paired "$bench" "$mode" "$sc" "$f" | stats)
                label=$sc unit="msg/s"
                [ "$sc" = rt ] && label="rt med" unit=us
                [ "$f" = 7 ] && label="rt p99"
                [ "$f" = 8 ] && label="$sc cpu" unit="us/op"
                ratio=$(awk -v a="$mb" -v b="$mp" 'BEGIN { if (a == "-" || b == "-" || a == 0) print "-"; else printf "%.3f", b / a }')
                printf '%-8s %-9s %-10s %-6s %12s %12s %9s %13s %12s %12s\n' "$bench" "$mode" \
                    "$label" "$unit" "$mb" "$mp" "$ratio" \
                    "$(awk -v m="$mr" -v l="$lr" -v h="$hr" 'BEGIN { if (m == "-") print "-"; else printf "%.3f (%.2f..%.2f)", m, l, h }')" \
                    "$(spread "$nb" "$mb" "$lb" "$hb")" "$(spread "$np" "$mp" "$lp" "$hp")"
                if [ "$f" = 6 ] && [ "$ratio" != - ]; then
                    verdicts+=("$(awk -v r="$ratio" -v rt="$sc" -v l="$bench $mode $label" 'BEGIN {
                        cost = rt == "rt" ? r - 1 : 1 - r
                        printf "%s: policy %s by %.1f%% (%s 5%%)", l, (cost >= 0 ? "slower" : "faster"),
                            100 * (cost >= 0 ? cost : -cost), (cost <= 0.05 ? "within" : "NOT within") }')")
                fi
            done
        done
    done
done
echo
echo "# the relay of bench_local, which no policy touches, ran in every run: its spread is the machine's noise"
printf '%-8s %-9s %-10s %-6s %12s %12s %12s\n' bench mode scenario unit median min max
for mode in pinned unpinned; do
    for sc in rt batch; do
        read -r n m l h < <(col local "$mode" "$sc" relay 6 | stats)
        printf '%-8s %-9s %-10s %-6s %12s %12s %12s   spread %s over %s runs\n' relay "$mode" "$sc" \
            "$([ "$sc" = rt ] && echo us || echo msg/s)" "$m" "$l" "$h" "$(spread "$n" "$m" "$l" "$h")" "$n"
    done
done
echo
echo "# verdicts (medians; rt: policy/base above 1 is slower; batch: below 1 is slower):"
for v in "${verdicts[@]}"; do
    echo "#   $v"
done
echo "# spread: (max - min) / median over the rounds; paired: policy/baseline of each round's two runs"
echo "# cpu: CPU time of the node (bench_local) or both nodes (bench_cluster) per round trip or message,"
echo "#   from their CPU clocks: what the policy costs them, less disturbed by other processes than time"
echo "# every sample (bench mode scenario variant round value p99 cpu):"
sed 's/^/#   /' "$SAMPLES"
