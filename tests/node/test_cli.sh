#!/usr/bin/env bash
# test_cli.sh: ipc-node's command-line verbs against a real node.
#
# Starts its own node in a mktemp directory, runs every verb with a bound
# (timeout) and stops the node by pid. Prints "N passed, N failed" and
# exits non-zero if anything failed. Needs $IPC_NODE (else ./ipc-node).

set -u

NODE=${IPC_NODE:-./ipc-node}
NODE_NAME=clinode
T=10                                # seconds allowed to any one command
DIR=$(mktemp -d /tmp/ipcnet-cli-XXXXXX) || exit 1
SOCK=$DIR/node.sock
NODE_PID=
BG_PIDS=()
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
CHECK_DETAILS=cli_details

cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    if [ -n "$NODE_PID" ]; then
        kill -TERM "$NODE_PID" 2>/dev/null
    fi
    sleep 0.2
    for p in "${BG_PIDS[@]}" $NODE_PID; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# What a failed check adds (tests/lib.sh): the last cli's status and output.
cli_details() {
    printf 'rc=%s\nstdout: %s\nstderr: %s\n' "${RC:-}" "$(head -c 600 "$DIR/out")" \
        "$(head -c 600 "$DIR/err")"
}

# cli ARGS...: runs ipc-node --socket $SOCK ARGS with a bound; sets RC, OUT, ERR.
cli() {
    timeout -k 2 "$T" "$NODE" --socket "$SOCK" "$@" >"$DIR/out" 2>"$DIR/err"
    RC=$?
    OUT=$(cat "$DIR/out")
}

# raw ARGS...: like cli without --socket.
raw() {
    timeout -k 2 "$T" "$NODE" "$@" >"$DIR/out" 2>"$DIR/err"
    RC=$?
    OUT=$(cat "$DIR/out")
}

# bg TAG ARGS...: starts a verb in the background (bounded to 30 s), output
# in $DIR/TAG.out and $DIR/TAG.err; its pid in BG.
bg() {
    local tag=$1
    shift
    timeout -k 2 30 "$NODE" --socket "$SOCK" "$@" >"$DIR/$tag.out" 2>"$DIR/$tag.err" &
    BG=$!
    BG_PIDS+=("$BG")
}

# bg_wait PID SECONDS: waits (bounded) for a background verb; sets BGRC
# (124 if it had to be killed).
bg_wait() {
    local pid=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        sleep 0.2
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        BGRC=124
    else
        wait "$pid" 2>/dev/null
        BGRC=$?
    fi
}

# bg_kill PID: stops a background verb that is not meant to end by itself.
bg_kill() {
    kill -TERM "$1" 2>/dev/null
    bg_wait "$1" 3
}

# wait_service NAME: until --services lists NAME (bounded, 5 s).
wait_service() {
    local i
    for ((i = 0; i < 50; i++)); do
        timeout -k 2 "$T" "$NODE" --socket "$SOCK" --services 2>/dev/null | grep -q -- "$1" &&
            return 0
        sleep 0.1
    done
    return 1
}

# wait_line FILE TEXT: until FILE has the line TEXT (bounded, 5 s).
wait_line() {
    local i
    for ((i = 0; i < 50; i++)); do
        grep -qxF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

if [ ! -x "$NODE" ]; then
    echo "test_cli.sh: no ipc-node binary at '$NODE' (set IPC_NODE)" >&2
    exit 1
fi

# --- verbs that need no node ------------------------------------------------

raw --version
[ "$RC" -eq 0 ] && [ "$(head -n 1 "$DIR/out")" = "ipc-node 0.2.0" ]
check "--version prints 'ipc-node 0.2.0'" $?

raw --help
[ "$RC" -eq 0 ] && grep -q -- --socket "$DIR/out" && grep -q -- --services "$DIR/out" &&
    grep -q -- --send "$DIR/out" && grep -q -- --listen "$DIR/out"
check "--help: exit 0, usage on stdout" $?

raw --no-such-option
[ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [ -s "$DIR/err" ] && grep -q -- no-such-option "$DIR/err"
check "a bad option: non-zero exit and a message naming it" $?

cli --services
[ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [ -s "$DIR/err" ]
check "--services with no node running: non-zero exit and a message" $?

# --- the node -----------------------------------------------------------------

timeout -k 5 300 "$NODE" --socket "$SOCK" --name "$NODE_NAME" --port 0 --state-dir "$DIR" --no-mdns --cluster "cli-$$" 2>"$DIR/node.log" &
NODE_PID=$!
started=1
for ((i = 0; i < 50; i++)); do
    timeout -k 2 "$T" "$NODE" --socket "$SOCK" --services >/dev/null 2>&1 && { started=0; break; }
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.1
done
RC=$started
: >"$DIR/out"
cp "$DIR/node.log" "$DIR/err" 2>/dev/null
check "the node starts and answers --services within 5 s" "$started"
if [ "$started" -ne 0 ]; then
    echo "$passed passed, $((failed + 1)) failed (no node, the rest skipped)"
    exit 1
fi

start=$(date +%s%N)
raw --socket "$SOCK" --name other
took=$((($(date +%s%N) - start) / 1000000))
[ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [ "$took" -lt 3000 ]
check "a second node on the same socket exits non-zero at once (${took} ms)" $?
grep -qiE 'another|already' "$DIR/err"
check "... saying on stderr that another node serves the socket" $?
cli --services
check "the first node still serves after the second was refused" "$RC"

IPCNET_SOCKET=$SOCK timeout -k 2 "$T" "$NODE" --services >"$DIR/out" 2>"$DIR/err"
RC=$?
check "IPCNET_SOCKET names the node for a verb" "$RC"

cli --peers
[ "$RC" -eq 0 ] && grep -q -- "$NODE_NAME" "$DIR/out"
check "--peers lists this node" $?

cli --stats
[ "$RC" -eq 0 ] && grep -q clients "$DIR/out"
check "--stats shows clients" $?

# --- send / listen ------------------------------------------------------------

cli --send nobody.home hello
[ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [ "$(wc -l <"$DIR/err")" -eq 1 ] &&
    grep -q nobody.home "$DIR/err"
check "--send to a name nobody holds: non-zero, one line naming it" $?

bg q.one --listen q.one --count 2
LPID=$BG
wait_service q.one
RC=$?
check "--listen binds its name (seen in --services)" "$RC"

cli --services
[ "$RC" -eq 0 ] && grep -E "q\.one" "$DIR/out" | grep -q -- "$NODE_NAME"
check "--services table shows the name and its node" $?

cli --services --json
RC_JSON=$RC
if command -v jq >/dev/null 2>&1; then
    jq -e --arg node "$NODE_NAME" 'type == "array" and
        all(.[]; has("name") and has("node") and has("holder") and has("label")) and
        (map(select(.name == "q.one" and .node == $node)) | length == 1)' \
        "$DIR/out" >/dev/null 2>&1
    JSON_OK=$?
else
    python3 - "$DIR/out" "$NODE_NAME" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert isinstance(d, list)
assert all(set(("name", "node", "holder", "label")) <= set(o) for o in d)
assert len([o for o in d if o["name"] == "q.one" and o["node"] == sys.argv[2]]) == 1
EOF
    JSON_OK=$?
fi
[ "$RC_JSON" -eq 0 ] && [ "$JSON_OK" -eq 0 ]
check "--services --json: an array of {name,node,holder,label}" $?

cli --send q.one hello
check "--send to a held name exits 0" "$RC"
cli --send q.one world
check "--send a second message exits 0" "$RC"
bg_wait "$LPID" 5
RC=$BGRC
cp "$DIR/q.one.out" "$DIR/out"
cp "$DIR/q.one.err" "$DIR/err"
[ "$BGRC" -eq 0 ] && [ "$(cat "$DIR/q.one.out")" = "$(printf 'hello\nworld')" ]
check "--listen --count 2 prints both payloads, one per line, and exits 0" $?

# --- request / reply ------------------------------------------------------------

bg echo --listen echo.svc --echo --count 1
EPID=$BG
wait_service echo.svc
cli --request echo.svc ping
[ "$RC" -eq 0 ] && [ "$OUT" = "ping" ] && [ "$(tail -c 1 "$DIR/out" | od -An -c | tr -d ' ')" = '\n' ]
check "--request to an --echo listener prints the reply and a newline" $?
bg_wait "$EPID" 5
RC=$BGRC
cp "$DIR/echo.out" "$DIR/out"
cp "$DIR/echo.err" "$DIR/err"
[ "$BGRC" -eq 0 ] && grep -qxE "request from :[0-9]+@$NODE_NAME: ping" "$DIR/echo.out" &&
    grep -q "^ipc-node: listening to echo.svc on node $NODE_NAME (as :[0-9]*@$NODE_NAME)$" \
        "$DIR/echo.err"
check "--listen --echo says it is ready, prints the request with its sender, exits after --count" $?

bg slow --listen slow.svc --count 5
SPID=$BG
wait_service slow.svc
start=$(date +%s%N)
cli --request slow.svc q --timeout 300
took=$((($(date +%s%N) - start) / 1000000))
[ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [ -s "$DIR/err" ] && [ "$took" -lt 5000 ]
check "--request --timeout 300 to a silent holder fails in time (${took} ms)" $?
bg_kill "$SPID"

cli --request nobody.home q
[ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && grep -q nobody.home "$DIR/err"
check "--request to a name nobody holds: non-zero, names it" $?

# --- publish / subscribe ----------------------------------------------------------

bg sub --subscribe 'news.*' --count 1
SUBPID=$BG
pub_rc=0
for ((i = 0; i < 50; i++)); do
    kill -0 "$SUBPID" 2>/dev/null || break
    cli --publish news.today 'hello world'
    [ "$RC" -eq 0 ] || pub_rc=$RC
    sleep 0.1
done
RC=$pub_rc
check "--publish exits 0" "$pub_rc"
bg_wait "$SUBPID" 5
RC=$BGRC
cp "$DIR/sub.out" "$DIR/out"
cp "$DIR/sub.err" "$DIR/err"
[ "$BGRC" -eq 0 ] && [ "$(cat "$DIR/sub.out")" = "news.today hello world" ]
check "--subscribe 'news.*' --count 1 prints 'TOPIC DATA' and exits" $?

bg sub2 --subscribe other.topic --count 1
SUB2=$BG
sleep 0.3
cli --publish news.today 'not for you'
sleep 0.3
RC=0
[ ! -s "$DIR/sub2.out" ]
check "--subscribe gets nothing of topics it did not ask for" $?
bg_kill "$SUB2"

# --- watch ------------------------------------------------------------------------

bg wlisten --listen w.one --count 1
WLPID=$BG
wait_service w.one
bg watch --watch 'w.*' --count 2
WPID=$BG
wait_line "$DIR/watch.out" "up w.one $NODE_NAME"
RC=$?
cp "$DIR/watch.out" "$DIR/out"
cp "$DIR/watch.err" "$DIR/err"
check "--watch prints 'up NAME NODE' for a held name" "$RC"
cli --send w.one bye
bg_wait "$WLPID" 5
bg_wait "$WPID" 5
RC=$BGRC
cp "$DIR/watch.out" "$DIR/out"
[ "$BGRC" -eq 0 ] && [ "$(cat "$DIR/watch.out")" = "$(printf 'up w.one %s\ndown w.one %s' "$NODE_NAME" "$NODE_NAME")" ]
check "--watch prints 'down NAME NODE' when the holder goes, exits after --count" $?

# --- the store ---------------------------------------------------------------------

cli --put cli.a "first value"
[ "$RC" -eq 0 ] && [ "$OUT" -gt 0 ] 2>/dev/null
check "--put prints the new version" $?
cli --get cli.a
[ "$RC" -eq 0 ] && [ "$OUT" = "first value" ]
check "--get prints the value as it is" $?
cli --get cli.a --json
[ "$RC" -eq 0 ] && [[ "$OUT" == '{"key": "cli.a", "version": '*', "data": "first value"}' ]]
check "--get --json gives key, version and data" $?
bg wkeys --watch-keys 'cli.*' --count 3
WKPID=$BG
for ((i = 0; i < 50; i++)); do
    grep -q '^put cli\.a [0-9]* first value$' "$DIR/wkeys.out" && break
    sleep 0.1
done
grep -q '^put cli\.a [0-9]* first value$' "$DIR/wkeys.out"
RC=$?
cp "$DIR/wkeys.out" "$DIR/out"
check "--watch-keys prints the keys there first" "$RC"
bg eph --put cli.up here --ephemeral
EPID=$BG
for ((i = 0; i < 50; i++)); do
    grep -q '^put cli\.up [0-9]* here$' "$DIR/wkeys.out" && break
    sleep 0.1
done
grep -q '^put cli\.up [0-9]* here$' "$DIR/wkeys.out"
check "--put --ephemeral holds the key while it runs" $?
bg_kill "$EPID"
bg_wait "$WKPID" 5
RC=$BGRC
cp "$DIR/wkeys.out" "$DIR/out"
[ "$BGRC" -eq 0 ] && [ "$(sed -n 3p "$DIR/wkeys.out" | cut -d' ' -f1,2)" = "del cli.up" ]
check "--watch-keys prints 'del KEY VERSION' when the ephemeral key goes" $?
cli --keys 'cli.*'
[ "$RC" -eq 0 ] && [ "$(echo "$OUT" | grep -c '^cli\.')" = 1 ]
check "--keys lists the keys left" $?
cli --del cli.a
[ "$RC" -eq 0 ]
check "--del deletes" $?
cli --get cli.a
[ "$RC" -eq 1 ] && grep -q "no such key" "$DIR/err"
check "--get of a deleted key fails with 'no such key'" $?

# --- JSON, always valid ----------------------------------------------------------------

# json_lines FILE [PYTHON-ASSERTION...]: every line of FILE is JSON, and
# each assertion about them (lines) holds.
json_lines() {
    python3 - "$@" <<'EOF'
import json, sys
path, checks = sys.argv[1], sys.argv[2:]
lines = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
for c in checks:
    assert eval(c, {"lines": lines}), c
EOF
}

bg jl --listen 007 --json --count 2
JLPID=$BG
wait_service 007
printf '\377\376\000binary' >"$DIR/bin"
cli --send 007 - <"$DIR/bin"
cli --send 007 'caf'$'\xc3\xa9'
bg_wait "$JLPID" 5
json_lines "$DIR/jl.out" 'len(lines) == 2' \
    'lines[0]["name"] == "007" and lines[0]["encoding"] == "base64"' \
    '__import__("base64").b64decode(lines[0]["data"]) == b"\xff\xfe\x00binary"' \
    'lines[1]["data"] == "caf\u00e9" and "encoding" not in lines[1]' \
    'isinstance(lines[0]["uid"], int) and lines[0]["kind"] == "send"' 2>"$DIR/err"
check "--listen --json: a name 007 stays a string, a binary payload is base64, UTF-8 is text" $? \
    "$(cat "$DIR/jl.out")"
cli --peers --json=pretty
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d[0]["reason"] is None and isinstance(d[0]["rtt_us"], int)' \
    "$DIR/out" && [ "$(wc -l <"$DIR/out")" -gt 3 ]
check "--peers --json=pretty: indented, numbers as numbers, a missing reason null" $?
raw --key --json --state-dir "$DIR"
python3 -c 'import json,sys; assert len(json.load(open(sys.argv[1]))["key"]) == 40' "$DIR/out"
check "--key --json prints {\"key\": ...}" $?

# --- options where they do nothing --------------------------------------------------------

raw --json
[ "$RC" -eq 2 ] && grep -q -- "--json goes with a verb" "$DIR/err"
check "--json without a verb: a usage error (2), not a daemon" $?
raw --echo --count 3
[ "$RC" -eq 2 ]
check "--echo --count 3 without a verb: a usage error" $?
cli --max-message 1K --send q.one x
[ "$RC" -eq 2 ] && grep -q -- "--max-message is an option of the node" "$DIR/err"
check "--max-message with --send: a usage error, not silently ignored" $?

# --- check, ping, bench, exec, monitor ------------------------------------------------------

cli --check
[ "$RC" -eq 0 ] && grep -q "^ok: node $NODE_NAME answers" "$DIR/out"
check "--check: exit 0, 'ok: node ... answers'" $?
cli --check nobody.holds.this
[ "$RC" -eq 1 ] && grep -q "nobody holds nobody.holds.this" "$DIR/out"
check "--check NAME nobody holds: exit 1" $?
timeout -k 2 "$T" "$NODE" --socket "$DIR/nowhere.sock" --check >"$DIR/out" 2>"$DIR/err"
RC=$?
[ "$RC" -eq 1 ] && grep -q "is ipc-node running" "$DIR/err"
check "--check with no node: exit 1, and why" $?

bg pinged --listen ping.svc --echo
PGPID=$BG
wait_service ping.svc
cli --check ping.svc --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] is True and d["holders"] == 1' "$DIR/out"
check "--check NAME --json: ok, one holder" $?
cli --ping --count 3
[ "$RC" -eq 0 ] && [ "$(grep -c "^from $NODE_NAME: seq=[0-9] time=" "$DIR/out")" -eq 3 ] &&
    grep -q "3 sent, 3 answered" "$DIR/out"
check "--ping --count 3: three round trips to the node and a summary" $?
cli --ping ping.svc --count 2
[ "$RC" -eq 0 ] && grep -q "2 sent, 2 answered" "$DIR/out"
check "--ping NAME: requests its holder answers" $?
bg_kill "$PGPID"
cli --ping nobody.home --count 1
[ "$RC" -eq 1 ] && grep -q "no such name" "$DIR/out"
check "--ping a name nobody holds: exit 1" $?
cli --bench
[ "$RC" -eq 0 ] && grep -qE "^100000 messages of 64 bytes through node $NODE_NAME: [0-9]+ a second" "$DIR/out" &&
    grep -qE "^2000 request round trips .*median [0-9.]+ us, p99" "$DIR/out"
check "--bench: messages a second and request round trips through the node" $? "$(cat "$DIR/out")"

bg upper --listen upper.svc --exec 'tr a-z A-Z; echo done >&2' --count 1
UPID=$BG
wait_service upper.svc
cli --request upper.svc 'make me loud'
[ "$RC" -eq 0 ] && [ "$OUT" = "MAKE ME LOUD" ]
check "--listen --exec CMD: the request's payload on CMD's input, its output the reply" $?
bg_wait "$UPID" 5
grep -q done "$DIR/upper.err"
check "... CMD's stderr is the listener's" $?
bg slowexec --listen slow.exec --exec 'sleep 5' --count 1
SXPID=$BG
wait_service slow.exec
cli --request slow.exec x --timeout 500
[ "$RC" -ne 0 ] && [ "$RC" -ne 124 ]
check "--exec past the request's timeout: the requester times out" $?
bg_wait "$SXPID" 5
grep -q "ran past the request's timeout" "$DIR/slowexec.err"
check "... and the listener says it killed CMD" $? "$(cat "$DIR/slowexec.err")"

bg mon --monitor 'mon.*' --count 2
MPID=$BG
for ((i = 0; i < 50; i++)); do grep -q "monitoring" "$DIR/mon.err" 2>/dev/null && break; sleep 0.1; done
bg monl --listen mon.svc --count 1
MLPID=$BG
wait_service mon.svc
cli --send other.name 'not shown'
cli --send mon.svc 'seen by the monitor'
cli --publish mon.topic 'and this'
bg_wait "$MPID" 5
bg_wait "$MLPID" 5
[ "$(wc -l <"$DIR/mon.out")" -eq 2 ] &&
    grep -qE " send +:[0-9]+@$NODE_NAME -> mon.svc  uid [0-9]+ \(.*\)  19 bytes  seen by the monitor$" "$DIR/mon.out" &&
    grep -qE " publish :[0-9]+@$NODE_NAME -> mon.topic " "$DIR/mon.out" && ! grep -q other.name "$DIR/mon.out"
check "--monitor PATTERN: time, kind, from, to, who, size and bytes of each message routed" $? \
    "$(cat "$DIR/mon.out")"
bg monj --monitor 'mon.*' --count 1 --json
MJPID=$BG
for ((i = 0; i < 50; i++)); do grep -q "monitoring" "$DIR/monj.err" 2>/dev/null && break; sleep 0.1; done
cli --publish mon.topic "$(printf '%0100d' 0)"
bg_wait "$MJPID" 5
json_lines "$DIR/monj.out" 'lines[0]["kind"] == "monitor" and lines[0]["what"] == "publish"' \
    'lines[0]["size"] == 100 and len(lines[0]["data"]) == 64 and lines[0]["to"] == "mon.topic"'
check "--monitor --json: the whole size, the first 64 bytes" $? "$(cat "$DIR/monj.out")"

# --- a restart of the node -------------------------------------------------------

bg relisten --listen r.one --count 1
RLPID=$BG
wait_service r.one
# SIGKILL the node itself, not the timeout(1) that runs it.
read -r NODE_CHILD <"/proc/$NODE_PID/task/$NODE_PID/children"
kill -KILL "$NODE_CHILD"
wait "$NODE_PID" 2>/dev/null
timeout -k 5 300 "$NODE" --socket "$SOCK" --name "$NODE_NAME" --port 0 --state-dir "$DIR" --no-mdns --cluster "cli-$$" 2>>"$DIR/node.log" &
NODE_PID=$!
wait_service r.one
RC=$?
cp "$DIR/relisten.out" "$DIR/out"
cp "$DIR/relisten.err" "$DIR/err"
grep -q "lost the node $NODE_NAME" "$DIR/relisten.err" &&
    grep -qE "node $NODE_NAME back after [0-9]+ ms" "$DIR/relisten.err"
check "--listen outlives a restart of its node, says so on stderr, binds again" \
    $((RC + $?))
cli --send r.one again
bg_wait "$RLPID" 5
RC=$BGRC
cp "$DIR/relisten.out" "$DIR/out"
[ "$BGRC" -eq 0 ] && [ "$(cat "$DIR/relisten.out")" = again ]
check "... and gets what is sent to it after the restart" $?

# --- stop ---------------------------------------------------------------------------

kill -TERM "$NODE_PID"
for ((i = 0; i < 50; i++)); do
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$NODE_PID" 2>/dev/null; then
    kill -KILL "$NODE_PID"
    wait "$NODE_PID" 2>/dev/null
    RC=124
else
    wait "$NODE_PID"
    RC=$?
fi
NODE_PID=
: >"$DIR/out"
cp "$DIR/node.log" "$DIR/err"
[ "$RC" -eq 0 ] && [ ! -e "$SOCK" ]
check "SIGTERM stops the node: exit 0, socket removed" $?

# --- keys -----------------------------------------------------------------------

raw --key --state-dir "$DIR/keys"
KEY=$(cat "$DIR/out")
[ "$RC" -eq 0 ] && [ "${#KEY}" -eq 40 ] && [ -f "$DIR/keys/node.key" ] &&
    [ "$(stat -c %a "$DIR/keys/node.key_secret")" = 600 ] &&
    grep -qF "public-key = \"$KEY\"" "$DIR/keys/node.key"
check "--key makes a key pair (secret mode 0600) and prints its public key" $? "key '$KEY'"
raw --key --state-dir "$DIR/keys"
[ "$RC" -eq 0 ] && [ "$(cat "$DIR/out")" = "$KEY" ]
check "--key again prints the same key" $?
raw --peer "tcp://127.0.0.1:9#${KEY:0:39}" --socket "$DIR/k.sock"
[ "$RC" -eq 2 ] && grep -q -- --peer "$DIR/err"
check "--peer with a key of 39 characters: exit 2, naming --peer" $?
raw --peer "tcp://127.0.0.1:9#$(printf 'g%.0s' {1..64})" --socket "$DIR/k.sock"
[ "$RC" -eq 2 ]
check "--peer with 64 characters that are not hex: exit 2" $?
raw --authorized-keys "$DIR/no-such-dir" --socket "$DIR/k.sock"
[ "$RC" -eq 2 ] && grep -q -- --authorized-keys "$DIR/err"
check "--authorized-keys with a missing directory: exit 2" $?

# --- a config file -----------------------------------------------------------------

mkdir -p "$DIR/cfg"
cat >"$DIR/cfg/node.conf" <<CONF
# options as in --help, without the dashes
name      from-config
port      0
no-mdns
cluster   cli-$$
state-dir $DIR/cfg
peer      tcp://127.0.0.1:9#$KEY   # a pinned key: the '#' in it is not a comment
CONF
timeout -k 5 30 "$NODE" --socket "$DIR/cfg/s" --config "$DIR/cfg/node.conf" 2>"$DIR/cfg.log" &
CFG_PID=$!
BG_PIDS+=("$CFG_PID")
for ((i = 0; i < 50; i++)); do
    timeout -k 2 "$T" "$NODE" --socket "$DIR/cfg/s" --peers >"$DIR/out" 2>"$DIR/err" && break
    sleep 0.1
done
grep -q '^from-config .* self ' "$DIR/out"
check "--config FILE: options from the file (the node is named from-config)" $?
grep -F 'tcp://127.0.0.1:9 ' "$DIR/out" | grep -qF " static " &&
    [ "$(grep -F 'tcp://127.0.0.1:9 ' "$DIR/out" | awk '{ print $8 }')" = "$KEY" ]
check "--config: 'peer tcp://HOST:PORT#KEY' is a static peer with that key" $? "$(cat "$DIR/out")"

# Why a peer is not up: nothing answers at 127.0.0.1:9. Said in REASON
# once the first dial goes unanswered (5 s for a static peer), and
# step by step by --diagnose.
for ((i = 0; i < 100; i++)); do
    timeout -k 2 "$T" "$NODE" --socket "$DIR/cfg/s" --peers --json >"$DIR/out" 2>"$DIR/err"
    python3 - "$DIR/out" <<'EOF' && break
import json, sys
rows = [r for r in json.load(open(sys.argv[1])) if r["address"] == "tcp://127.0.0.1:9"]
sys.exit(0 if rows and rows[0]["reason"] and "no handshake" in rows[0]["reason"] else 1)
EOF
    sleep 0.1
done
RC=$?
check "--peers: REASON says why a dead static peer is not up (no handshake)" "$RC"
cli --socket "$DIR/cfg/s" --diagnose 127.0.0.1:9
[ "$RC" -eq 0 ] && grep -q "^peer .* at tcp://127.0.0.1:9$" "$DIR/out" &&
    grep -q "known through: static" "$DIR/out" && grep -q "key: .*given with --peer" "$DIR/out" &&
    grep -q "state: connecting" "$DIR/out" && grep -q "why not up: no handshake" "$DIR/out"
check "--diagnose ADDRESS: how it is known, its key, its state, why it is not up" $?
cli --socket "$DIR/cfg/s" --diagnose no-such-peer
[ "$RC" -eq 0 ] && grep -q "no-such-peer: not known" "$DIR/out" && grep -q "cluster" "$DIR/out"
check "--diagnose of a peer nobody knows says so, and what to look at" $?
bg_kill "$CFG_PID"

printf 'port 0\nbogus-option 1\n' >"$DIR/cfg/bad.conf"
raw --socket "$DIR/cfg/s2" --config "$DIR/cfg/bad.conf"
[ "$RC" -eq 2 ] && grep -q 'bad.conf:2' "$DIR/err" && grep -q bogus-option "$DIR/err"
check "--config with an unknown option: exit 2, naming the file, line and option" $?

# --- config files of any kind, and a refusal's reason --------------------------------

# start_cfg TAG ARGS...: a node with ARGS (its socket $DIR/TAG.sock, log
# $DIR/TAG.log, bounded to 30 s) that answers --peers within 5 s; its pid in
# CFG_PID. Returns non-zero if it never answered.
start_cfg() {
    local tag=$1 i
    shift
    timeout -k 5 30 "$NODE" --socket "$DIR/$tag.sock" "$@" 2>"$DIR/$tag.log" &
    CFG_PID=$!
    BG_PIDS+=("$CFG_PID")
    for ((i = 0; i < 50; i++)); do
        timeout -k 2 "$T" "$NODE" --socket "$DIR/$tag.sock" --peers >"$DIR/out" 2>"$DIR/err" &&
            return 0
        kill -0 "$CFG_PID" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

# A comment line of more than 1,023 bytes: a reader of 1,024-byte lines
# would take its tail, 'name injected', for an option.
{
    printf 'name from-long-line\nport 0\nno-mdns\ncluster cli-%s\nstate-dir %s\n' "$$" "$DIR/cfg"
    printf '#%s' "$(head -c 1022 /dev/zero | tr '\0' x)"
    printf 'name injected\n'
} >"$DIR/cfg/long.conf"
start_cfg long --config "$DIR/cfg/long.conf"
grep -q '^from-long-line[[:space:]].*[[:space:]]self[[:space:]]' "$DIR/out"
check "--config: a comment of 1,036 bytes ending in 'name injected' is a comment" $? \
    "$(head -c 300 "$DIR/out")" "$(tail -n 3 "$DIR/long.log")"
bg_kill "$CFG_PID"

# (The other options keep a node that would take these files anyway to
# this test's own directory and ports.)
SAFE=(--port 0 --no-mdns --cluster "cli-$$" --state-dir "$DIR/cfg")
raw --socket "$DIR/cfg/s3" "${SAFE[@]}" --config "$DIR/cfg"
[ "$RC" -eq 2 ] && grep -q -- "$DIR/cfg" "$DIR/err" && grep -qi directory "$DIR/err"
check "--config DIR: exit 2, saying it is a directory" $?

start=$(date +%s%N)
timeout -k 1 5 "$NODE" --socket "$DIR/cfg/s4" "${SAFE[@]}" --config /dev/zero >"$DIR/out" \
    2>"$DIR/err"
RC=$?
took=$((($(date +%s%N) - start) / 1000000))
[ "$RC" -eq 2 ] && grep -q /dev/zero "$DIR/err"
check "--config /dev/zero: exit 2 at once, naming it (${took} ms)" $?

printf 'port 0\nno-mdns\ncluster cli-%s\nstate-dir %s\nverbose\n' "$$" "$DIR/cfg" \
    >"$DIR/cfg/verbose.conf"
start_cfg verbose --config "$DIR/cfg/verbose.conf"
check "--config: 'verbose' is taken in a config file" $? "$(tail -n 3 "$DIR/verbose.log")"
bg_kill "$CFG_PID"

# One client is the limit and one is connected: the next is told why.
start_cfg one --name one --port 0 --state-dir "$DIR/cfg" --no-mdns --cluster "cli-$$" \
    --max-clients 1
st=$?
if [ "$st" -eq 0 ]; then
    # The probe of start_cfg has gone; the listener takes the one place.
    timeout -k 2 30 "$NODE" --socket "$DIR/one.sock" --listen one.svc >/dev/null 2>&1 &
    ONE_LISTEN=$!
    BG_PIDS+=("$ONE_LISTEN")
    sleep 0.5
    # Five times: the refusal may come before the verb's HELLO is written.
    for ((i = 0; i < 5 && st == 0; i++)); do
        timeout -k 2 "$T" "$NODE" --socket "$DIR/one.sock" --stats >"$DIR/out" 2>"$DIR/err"
        RC=$?
        # EUSERS: the node's "too many clients", or libc's words for it.
        [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] &&
            grep -qiE "too many (clients|users)" "$DIR/err" &&
            ! grep -qi "connection lost" "$DIR/err"
        st=$?
    done
    bg_kill "$ONE_LISTEN"
fi
check "--max-clients 1, one connected: --stats fails with EUSERS, not 'connection lost'" $st
bg_kill "$CFG_PID"

summary
