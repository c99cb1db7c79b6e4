#!/usr/bin/env bash
# test_systemd.sh: ipc-node as systemd runs it, without systemd running.
#
# The unit and the sysusers entry as systemd's own tools read them
# (systemd-analyze verify, systemd-sysusers --root); readiness through a
# datagram socket standing in for $NOTIFY_SOCKET; log lines in the
# journal's format when JOURNAL_STREAM names stderr, with a timestamp when
# not, and still on stderr with --syslog; the default config file, in a
# private mount namespace so that the host's is never touched; the
# shipped example config, every line uncommented, accepted. Needs
# $IPC_NODE, $TOP_SRCDIR and $SYSCONFDIR (from make check). Stops
# everything it starts by pid.

set -u
NODE=${IPC_NODE:-./ipc-node}
TOP=${TOP_SRCDIR:-.}
SYSCONF=${SYSCONFDIR:-/usr/local/etc}
DIR=$(mktemp -d /tmp/ipcnet-sd-XXXXXX) || exit 1
PIDS=()
# shellcheck source=tests/lib.sh
. "$TOP/tests/lib.sh"

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

# start TAG ENV... -- ARGS...: a node in $DIR/TAG (socket, state), stderr in
# $DIR/TAG.err, pid in PID; the environment given as VAR=VALUE before --.
start() {
    local tag=$1 env=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do env+=("$1"); shift; done
    shift
    mkdir -p "$DIR/$tag"
    env "${env[@]}" "$NODE" --socket "$DIR/$tag/node.sock" --state-dir "$DIR/$tag/state" \
        --name "$tag" --port 0 --no-mdns --no-drop --cluster "sd-$$" "$@" \
        2>"$DIR/$tag.err" &
    PID=$!
    PIDS+=("$PID")
}

# answers TAG: until the node of TAG answers --services (bounded, 5 s).
answers() {
    local i
    for ((i = 0; i < 50; i++)); do
        "$NODE" --socket "$DIR/$1/node.sock" --services >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# stop PID: SIGTERM and a bounded wait.
stop() {
    local i
    kill -TERM "$1" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

if [ ! -x "$NODE" ]; then
    echo "test_systemd.sh: no ipc-node at '$NODE' (set IPC_NODE)" >&2
    exit 1
fi

# --- the unit and the user ------------------------------------------------------

sed -e "s|@bindir@/ipc-node|$(realpath "$NODE")|" "$TOP/dist/ipc-node.service.in" \
    >"$DIR/ipc-node.service"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify --man=no "$DIR/ipc-node.service" >"$DIR/verify.out" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] && [ ! -s "$DIR/verify.out" ]
    check "systemd-analyze verify: the unit has no error and no warning" $? \
        "$(head -5 "$DIR/verify.out")"
else
    not_ok "systemd-analyze is not installed (package systemd)"
fi
grep -q '^Type=notify$' "$DIR/ipc-node.service" &&
    grep -q '^RuntimeDirectory=ipc-node$' "$DIR/ipc-node.service" &&
    grep -q '^StateDirectory=ipc-node$' "$DIR/ipc-node.service"
check "the unit is Type=notify with its runtime and state directories" $?
if command -v systemd-sysusers >/dev/null; then
    mkdir -p "$DIR/root/etc"
    systemd-sysusers --root="$DIR/root" "$(realpath "$TOP/dist/ipc-node.sysusers")" \
        >"$DIR/sysusers.out" 2>&1
    rc=$?
    line=$(grep '^ipc-node:' "$DIR/root/etc/passwd" 2>/dev/null)
    uid=$(echo "$line" | cut -d: -f3)
    [ "$rc" -eq 0 ] && [ -n "$uid" ] && [ "$uid" -lt 1000 ] &&
        grep -q '^ipc-node:' "$DIR/root/etc/group" &&
        [ "$(echo "$line" | cut -d: -f6)" = /var/lib/ipc-node ]
    check "systemd-sysusers makes the system user and group ipc-node (uid ${uid:-?})" $? \
        "$(cat "$DIR/sysusers.out") $line"
else
    not_ok "systemd-sysusers is not installed (package systemd)"
fi

# --- readiness ---------------------------------------------------------------------

# A datagram socket standing in for systemd's: each datagram a line of
# $DIR/notify.log ("|" for a newline inside one).
python3 - "$DIR/notify.sock" "$DIR/notify.log" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
with open(sys.argv[2], "a") as log:
    try:
        while True:
            log.write(s.recv(4096).decode(errors="replace").replace("\n", "|") + "\n")
            log.flush()
    except socket.timeout:
        pass
EOF
LISTENER=$!
PIDS+=("$LISTENER")
for ((i = 0; i < 50; i++)); do [ -S "$DIR/notify.sock" ] && break; sleep 0.1; done
printf 'allow * *\n' >"$DIR/policy"
t0=$(date +%s%N)
start ready NOTIFY_SOCKET="$DIR/notify.sock" -- --policy "$DIR/policy"
READY=$PID
for ((i = 0; i < 100; i++)); do grep -q 'READY=1' "$DIR/notify.log" 2>/dev/null && break; sleep 0.05; done
took=$((($(date +%s%N) - t0) / 1000000))
grep -q "^READY=1|STATUS=node ready serving $DIR/ready/node.sock$" "$DIR/notify.log" && answers ready
check "READY=1 with a STATUS on NOTIFY_SOCKET once it serves (${took} ms after start)" $? \
    "$(cat "$DIR/notify.log" 2>/dev/null) $(tail -3 "$DIR/ready.err")"
kill -HUP "$READY"
for ((i = 0; i < 50; i++)); do [ "$(grep -c 'READY=1' "$DIR/notify.log")" -ge 2 ] && break; sleep 0.1; done
[ "$(sed -n 2p "$DIR/notify.log")" = RELOADING=1 ] && [ "$(sed -n 3p "$DIR/notify.log")" = READY=1 ]
check "SIGHUP: RELOADING=1, then READY=1 once the policy is read again" $? \
    "$(cat "$DIR/notify.log")"
stop "$READY"
for ((i = 0; i < 20; i++)); do grep -q STOPPING=1 "$DIR/notify.log" && break; sleep 0.1; done
[ "$(tail -1 "$DIR/notify.log")" = STOPPING=1 ]
check "SIGTERM: STOPPING=1 before it exits" $? "$(cat "$DIR/notify.log")"

start unready NOTIFY_SOCKET="$DIR/nobody-listens.sock" --
answers unready && grep -q "cannot tell systemd we are ready" "$DIR/unready.err"
check "a NOTIFY_SOCKET nobody listens on: said once, and the node serves anyway" $? \
    "$(tail -3 "$DIR/unready.err")"
stop "$PID"

# --- logs ------------------------------------------------------------------------------

: >"$DIR/journal.err"
jstream=$(stat -L -c '%d:%i' "$DIR/journal.err")
mkdir -p "$DIR/journal"
env JOURNAL_STREAM="$jstream" "$NODE" --socket "$DIR/journal/node.sock" \
    --state-dir "$DIR/journal/state" --name journal --port 0 --no-mdns --no-drop \
    --cluster "sd-$$" 2>>"$DIR/journal.err" &
PID=$!
PIDS+=("$PID")
answers journal
stop "$PID"
lines=$(wc -l <"$DIR/journal.err")
bad=$(grep -cvE '^<[0-7]>[^<]' "$DIR/journal.err")
[ "$lines" -ge 2 ] && [ "$bad" -eq 0 ] && grep -q "^<5>node 'journal' serving" "$DIR/journal.err" &&
    ! grep -qE '^<[0-7]>[0-9]{2,4}-[0-9]{2}-[0-9]{2}' "$DIR/journal.err"
check "JOURNAL_STREAM set to stderr: '<priority>text' lines, no timestamp ($lines lines)" $? \
    "$(head -3 "$DIR/journal.err")"

start plain --
answers plain
stop "$PID"
grep -qE "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} N node 'plain' serving" \
    "$DIR/plain.err" && ! grep -q '^<' "$DIR/plain.err"
check "without it: a timestamp and a level letter" $? "$(head -3 "$DIR/plain.err")"

start logged -- --syslog
answers logged
stop "$PID"
grep -q "node 'logged' serving" "$DIR/logged.err"
check "--syslog adds to stderr: the lines are still there" $? "$(head -3 "$DIR/logged.err")"

# --- config files ------------------------------------------------------------------

# The shipped example, every option uncommented: the node takes all of it.
# (An option line: "# option", two spaces or more, then its value.)
sed -n -e 's|^# \(no-mdns\)  *#.*|\1|p' -e 's|^# \([a-z-]*\)   *\([^ #][^ #]*\).*|\1 \2|p' \
    "$TOP/dist/ipc-node.conf" | grep -v '^#' | grep -v '^$' |
    sed -e "s|^policy .*|policy $DIR/policy|" -e "s|^authorized-keys .*|authorized-keys $DIR|" \
        -e "s|^socket .*|socket $DIR/example.sock|" -e "s|^state-dir .*|state-dir $DIR/example|" \
        -e '/^user /d' -e '/^group /d' -e 's|^port .*|port 0|' >"$DIR/example.conf"
n=$(wc -l <"$DIR/example.conf")
timeout -k 2 10 "$NODE" --config "$DIR/example.conf" --services >"$DIR/example.out" 2>&1
rc=$?
# Parsed, then no node there to answer: 1, not 2 (bad usage).
[ "$rc" -eq 1 ] && [ "$n" -ge 15 ] && grep -q "cannot connect to $DIR/example.sock" "$DIR/example.out"
check "dist/ipc-node.conf: all $n options uncommented are accepted" $? \
    "rc=$rc $(head -3 "$DIR/example.out") $(cat "$DIR/example.conf")"

# The default config: read as root when it exists, overridden by the command
# line, skipped with --no-config or another --config. In a mount namespace
# of its own, over a tmpfs: the host's config directory is never touched.
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
    made=
    [ -d "$SYSCONF/ipc-node" ] || { mkdir -p "$SYSCONF/ipc-node" && made=1; }
    unshare -m --propagation private sh -c '
        mount -t tmpfs none "$1/ipc-node" || exit 9
        printf "name from-default\nmax-clients 7\n" >"$1/ipc-node/ipc-node.conf"
        "$2" --socket "$3/def.sock" --state-dir "$3/def" --port 0 --no-mdns --no-drop \
            --cluster "sd-$$" 2>"$3/def.err" & p=$!
        for i in $(seq 50); do "$2" --socket "$3/def.sock" --stats >"$3/def.stats" 2>/dev/null && break; sleep 0.1; done
        "$2" --socket "$3/def.sock" --peers >"$3/def.peers" 2>&1
        kill -TERM $p; wait $p
        "$2" --no-config --socket "$3/nodef.sock" --state-dir "$3/nodef" --port 0 --no-mdns \
            --no-drop --cluster "sd-$$" 2>"$3/nodef.err" & p=$!
        for i in $(seq 50); do "$2" --socket "$3/nodef.sock" --peers >"$3/nodef.peers" 2>/dev/null && break; sleep 0.1; done
        kill -TERM $p; wait $p
        "$2" --name cmdline --socket "$3/over.sock" --state-dir "$3/over" --port 0 --no-mdns \
            --no-drop --cluster "sd-$$" 2>"$3/over.err" & p=$!
        for i in $(seq 50); do "$2" --socket "$3/over.sock" --peers >"$3/over.peers" 2>/dev/null && break; sleep 0.1; done
        kill -TERM $p; wait $p
    ' sh "$SYSCONF" "$NODE" "$DIR"
    rc=$?
    [ -n "$made" ] && rmdir "$SYSCONF/ipc-node" 2>/dev/null
    [ "$rc" -eq 0 ] && grep -q "from-default" "$DIR/def.peers" &&
        ! grep -q "from-default" "$DIR/nodef.peers" && grep -q cmdline "$DIR/over.peers" &&
        ! grep -q from-default "$DIR/over.peers"
    check "$SYSCONF/ipc-node/ipc-node.conf is read as root; --no-config skips it; the command line overrides it" \
        $? "rc=$rc $(head -2 "$DIR/def.peers") | $(head -2 "$DIR/nodef.peers") | $(head -2 "$DIR/over.peers") $(tail -2 "$DIR/def.err")"
else
    echo "# (not root: the default config file is not tried)"
fi

summary
