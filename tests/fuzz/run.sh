#!/bin/sh
# run.sh: fuzzes the local wire codec (tests/fuzz/fuzz_wire.c) for a while.
#
# An automake test: exit 0 passed, 1 the fuzzer found a crash, 77 skipped
# (no clang with libFuzzer), 99 hard error. Environment:
#   TOP_SRCDIR    the source tree (default: two levels above this script)
#   CLANG         the clang to build with; empty means skip
#   FUZZ_SECONDS  how long to fuzz (default 20; 0 runs the seed corpus only)
# A crashing input is kept in the current directory (crash-*, leak-*,
# timeout-*, oom-*) and printed in hex, so that the log alone tells it.

set -u

top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
seconds=${FUZZ_SECONDS:-20}

case $seconds in
    '' | *[!0-9]*)
        echo "run.sh: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2
        exit 99 ;;
esac

if [ -z "${CLANG:-}" ]; then
    echo "SKIP: CLANG is empty (configure found no clang): cannot build the fuzzer"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz_wire.XXXXXX") || exit 99
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

# From here on, a build failure is our code's fault: a hard error.
"$CLANG" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -D_GNU_SOURCE -I "$top/libnet" \
    "$top/tests/fuzz/fuzz_wire.c" "$top/libnet/wire.c" \
    -o "$tmp/fuzz_wire" || exit 99

# libFuzzer adds what it finds to its first corpus directory: a copy keeps
# the source tree as it was.
mkdir "$tmp/corpus" || exit 99
seeds=0
for f in "$top/tests/fuzz/corpus/"*; do
    [ -f "$f" ] || continue
    cp "$f" "$tmp/corpus/" || exit 99
    seeds=$((seeds + 1))
done
echo "run.sh: $seeds seed inputs from $top/tests/fuzz/corpus, fuzzing for ${seconds}s"

if [ "$seconds" -eq 0 ]; then
    howlong=-runs=0
else
    howlong=-max_total_time=$seconds
fi

# libFuzzer's own failure code is 77, which automake reads as "skipped":
# any failure is turned into 1 below.
"$tmp/fuzz_wire" "$howlong" -timeout=5 -rss_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$tmp/" "$tmp/corpus"
rc=$?
if [ "$rc" -eq 0 ]; then
    exit 0
fi

echo "FAIL: the fuzzer stopped with status $rc"
for f in "$tmp"/crash-* "$tmp"/leak-* "$tmp"/timeout-* "$tmp"/oom-*; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    cp "$f" "./$name" && echo "input kept as ./$name; replay: fuzz_wire ./$name"
    echo "input ($(wc -c <"$f") bytes, first 4 KiB in hex):"
    head -c 4096 "$f" | od -An -tx1
done
exit 1
