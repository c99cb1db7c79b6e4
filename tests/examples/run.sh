#!/usr/bin/env bash
# run.sh: the programs of examples/ against a real node, as the README
# shows them.
#
# Starts its own node in a mktemp directory (IPCNET_SOCKET points the
# examples at it), runs each example with a bound (timeout), checks what
# it prints, and stops every process it started by its pid. Needs
# $IPC_NODE and $TOP_BUILDDIR (make check sets both).

set -u

NODE=${IPC_NODE:-./ipc-node}
EX=${TOP_BUILDDIR:-.}/examples
T=10
DIR=$(mktemp -d /tmp/ipcnet-examples-XXXXXX) || exit 1
export IPCNET_SOCKET=$DIR/node.sock
PIDS=()
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"

cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    sleep 0.2
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait_ready FILE PID: until FILE says "ready" (bounded, 5 s) and PID runs.
wait_ready() {
    local i
    for ((i = 0; i < 50; i++)); do
        grep -qx ready "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# wait_exit PID: until PID ends (bounded, 5 s); its status in RC (124: killed).
wait_exit() {
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$1" 2>/dev/null; then
        kill -KILL "$1" 2>/dev/null
        wait "$1" 2>/dev/null
        RC=124
    else
        wait "$1" 2>/dev/null
        RC=$?
    fi
}

for x in echo_service client pubsub event_loop; do
    if [ ! -x "$EX/$x" ]; then
        echo "run.sh: no $EX/$x (make check builds the examples)" >&2
        exit 1
    fi
done

timeout -k 5 120 "$NODE" --socket "$IPCNET_SOCKET" --name exnode --port 0 \
    --state-dir "$DIR" --no-mdns --cluster "examples-$$" 2>"$DIR/node.log" &
PIDS+=($!)
up=1
for ((i = 0; i < 50; i++)); do
    "$NODE" --socket "$IPCNET_SOCKET" --check >/dev/null 2>&1 && { up=0; break; }
    sleep 0.1
done
check "the node is up" $up "$(tail -n 5 "$DIR/node.log")"
[ "$up" -eq 0 ] || { summary; exit 1; }

# --- a service and a client ------------------------------------------------------

timeout -k 2 30 "$EX/echo_service" example.echo 2 2>"$DIR/svc.err" &
svc=$!
PIDS+=("$svc")
wait_ready "$DIR/svc.err" "$svc"
check "echo_service binds example.echo and says ready" $? "$(cat "$DIR/svc.err")"

out=$(timeout -k 2 "$T" "$EX/client" example.echo "hello there" 2>"$DIR/client.err")
RC=$?
[ "$RC" -eq 0 ] && [ "$(head -n 1 <<<"$out")" = "HELLO THERE" ] &&
    grep -q "^(from :[0-9]*@exnode, uid $(id -u) on exnode)$" <<<"$out"
check "client: the reply in capitals, and who answered" $? "rc=$RC" "$out" \
    "$(cat "$DIR/client.err")"

out=$(timeout -k 2 "$T" "$EX/client" example.echo "second" 2>&1)
wait_exit "$svc"
[ "$(head -n 1 <<<"$out")" = "SECOND" ] && [ "$RC" -eq 0 ]
check "echo_service ends after its count of 2, with status 0" $? "rc=$RC" "$out"

timeout -k 2 "$T" "$EX/client" example.echo "anyone?" >/dev/null 2>"$DIR/client.err"
RC=$?
[ "$RC" -eq 1 ] && grep -q "example.echo: no such name" "$DIR/client.err"
check "client to a name nobody holds: status 1 and why" $? "rc=$RC" \
    "$(cat "$DIR/client.err")"

# --- publish and subscribe ----------------------------------------------------------

timeout -k 2 30 "$EX/pubsub" sub 'news.*' 2 >"$DIR/sub.out" 2>"$DIR/sub.err" &
sub=$!
PIDS+=("$sub")
wait_ready "$DIR/sub.err" "$sub"
check "pubsub sub 'news.*' says ready" $? "$(cat "$DIR/sub.err")"
timeout -k 2 "$T" "$EX/pubsub" pub sport.today "not for it" &&
    timeout -k 2 "$T" "$EX/pubsub" pub news.today "first" &&
    timeout -k 2 "$T" "$EX/pubsub" pub news.late "second"
pubrc=$?
wait_exit "$sub"
[ "$pubrc" -eq 0 ] && [ "$RC" -eq 0 ] &&
    [ "$(cat "$DIR/sub.out")" = "$(printf 'news.today first\nnews.late second')" ]
check "pubsub: the two news publications in order, not the sport one" $? \
    "pub rc=$pubrc sub rc=$RC" "$(cat "$DIR/sub.out" "$DIR/sub.err")"

# --- an event loop ----------------------------------------------------------------------

mkfifo "$DIR/in"
timeout -k 2 30 "$EX/pubsub" sub loop.lines 2 >"$DIR/lsub.out" 2>"$DIR/lsub.err" &
lsub=$!
PIDS+=("$lsub")
wait_ready "$DIR/lsub.err" "$lsub"
timeout -k 2 30 "$EX/event_loop" example.loop loop.lines <"$DIR/in" 2>"$DIR/loop.err" &
loop=$!
PIDS+=("$loop")
exec 3>"$DIR/in"                    # the loop's standard input, held open
wait_ready "$DIR/loop.err" "$loop"
check "event_loop binds example.loop and says ready" $? "$(cat "$DIR/loop.err")"
r1=$(timeout -k 2 "$T" "$EX/client" example.loop "a" 2>&1 | head -n 1)
echo "line one" >&3
r2=$(timeout -k 2 "$T" "$EX/client" example.loop "b" 2>&1 | head -n 1)
printf 'line two' >&3                # no newline: published at the end of input
exec 3>&-
wait_exit "$loop"
looprc=$RC
wait_exit "$lsub"
[ "$r1" = 1 ] && [ "$r2" = 2 ] && [ "$looprc" -eq 0 ] && [ "$RC" -eq 0 ] &&
    [ "$(cat "$DIR/lsub.out")" = "$(printf 'loop.lines line one\nloop.lines line two')" ]
check "event_loop: requests answered and input lines published from one poll()" $? \
    "answers '$r1' '$r2', loop rc=$looprc, sub rc=$RC" "$(cat "$DIR/lsub.out" "$DIR/loop.err")"

summary
