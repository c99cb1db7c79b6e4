#!/bin/sh
# run.sh: fuzzes for a while, one target after the other:
#   wire   the local codec (tests/fuzz/fuzz_wire.c, libnet/wire.c)
#   proto  the node-to-node codec (tests/fuzz/fuzz_proto.c, node/proto.c)
#   peer   the node's handling of sequences of peer messages: cluster,
#          directory, delivery, requests, client queues (tests/fuzz/fuzz_peer.c)
# each from its own seed corpus, tests/fuzz/corpus/<target>/.
#
# An automake test: exit 0 passed, 1 a fuzzer found a crash, 77 skipped
# (no clang with libFuzzer), 99 hard error. Environment:
#   TOP_SRCDIR    the source tree (default: two levels above this script)
#   CLANG         the clang to build with; empty means skip
#   FUZZ_SECONDS  how long to fuzz each target (default 20; 0 runs the seed
#                 corpus only)
#   FUZZ_TARGETS  which targets to run (default "wire proto peer")
# A crashing input is kept in the current directory (crash-*, leak-*,
# timeout-*, oom-*; the log says which target it crashed) and printed in
# hex, so that the log alone tells it.

set -u

top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
seconds=${FUZZ_SECONDS:-20}
targets=${FUZZ_TARGETS:-wire proto peer}

case $seconds in
    '' | *[!0-9]*)
        echo "run.sh: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2
        exit 99 ;;
esac

if [ -z "${CLANG:-}" ]; then
    echo "SKIP: CLANG is empty (configure found no clang): cannot build the fuzzers"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
# Leave through the EXIT trap on a signal too, so the temp dir goes.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# A clang without the libFuzzer runtime is a missing tool, not a failure.
cat >"$tmp/probe.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void) data;
    (void) size;
    return 0;
}
EOF
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$tmp/probe.c" \
        -o "$tmp/probe" >"$tmp/probe.log" 2>&1; then
    echo "SKIP: '$CLANG' cannot build with -fsanitize=fuzzer,address,undefined:"
    sed -n '1,5s/^/  /p' "$tmp/probe.log"
    exit 77
fi

if [ "$seconds" -eq 0 ]; then
    howlong=-runs=0
else
    howlong=-max_total_time=$seconds
fi

# Builds and runs one target; returns 0, 1 (a crash) or 99 (hard error).
fuzz() {
    name=$1
    shift
    dir=$tmp/$name
    mkdir "$dir" "$dir/corpus" || return 99

    # From here on, a build failure is our code's fault: a hard error.
    "$CLANG" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -D_GNU_SOURCE -I "$top/libnet" -I "$top/node" -I "$top/discovery" \
        -I "$top/tests/node" "$top/tests/fuzz/fuzz_$name.c" "$@" \
        -o "$dir/fuzz_$name" || return 99

    # libFuzzer adds what it finds to its first corpus directory: a copy
    # keeps the source tree as it was.
    seeds=0
    for f in "$top/tests/fuzz/corpus/$name/"*; do
        [ -f "$f" ] || continue
        cp "$f" "$dir/corpus/" || return 99
        seeds=$((seeds + 1))
    done
    echo "run.sh: $name: $seeds seed inputs from $top/tests/fuzz/corpus/$name, fuzzing for ${seconds}s"

    # libFuzzer's own failure code is 77, which automake reads as "skipped":
    # any failure is turned into 1 below.
    "$dir/fuzz_$name" "$howlong" -timeout=5 -rss_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="$dir/" "$dir/corpus"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        return 0
    fi

    echo "FAIL: fuzz_$name stopped with status $rc"
    for f in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
        [ -f "$f" ] || continue
        kept=$(basename "$f")
        cp "$f" "./$kept" && echo "input kept as ./$kept; replay: fuzz_$name ./$kept"
        echo "input ($(wc -c <"$f") bytes, first 4 KiB in hex):"
        head -c 4096 "$f" | od -An -tx1
    done
    return 1
}

status=0
for t in $targets; do
    case $t in
        wire)  fuzz wire "$top/libnet/wire.c" ;;
        proto) fuzz proto "$top/node/proto.c" "$top/libnet/wire.c" ;;
        peer)
            # The node without its main, options and CLI, and its libraries.
            libs=$(pkg-config --cflags --libs libczmq libzmq avahi-client) || exit 99
            sources=
            for f in "$top"/node/*.c; do
                case $f in */main.c|*/options.c|*/cli.c|*/cli_tools.c|*/cli_store.c|*/json.c) ;; *) sources="$sources $f" ;; esac
            done
            # shellcheck disable=SC2086  # lists of words, on purpose
            fuzz peer $sources "$top"/discovery/*.c "$top/libnet/wire.c" "$top/libnet/paths.c" \
                $libs ;;
        *)     echo "run.sh: unknown fuzz target '$t'" >&2; exit 99 ;;
    esac
    rc=$?
    # A hard error wins over a crash; either makes the whole run fail, but
    # the other targets still run.
    if [ "$rc" -eq 99 ]; then
        status=99
    elif [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
        status=1
    fi
done
exit $status
