#!/bin/sh
# run_tests.sh: the Python package's tests (stdlib unittest) against real
# nodes, with the library and node of a build tree.
#
# make check runs it with TOP_BUILDDIR and IPC_NODE set; by hand, from
# anywhere: bindings/python/run_tests.sh [unittest arguments], with the
# build in build/ (or TOP_BUILDDIR=DIR). An automake test: exit 0 passed,
# 1 failed, 77 skipped (no Python 3.11 or later).
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${TOP_BUILDDIR:-$here/../../build}
IPC_NODE=${IPC_NODE:-$build/ipc-node}
IPCNET_LIBRARY=${IPCNET_LIBRARY:-$build/libnet/.libs/libipcnet.so.1}
PYTHON=${PYTHON:-python3}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "run_tests.sh: no $PYTHON: skipped" >&2
    exit 77
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "run_tests.sh: $("$PYTHON" --version 2>&1) is older than 3.11: skipped" >&2
    exit 77
fi
for f in "$IPC_NODE" "$IPCNET_LIBRARY"; do
    if [ ! -f "$f" ]; then
        echo "run_tests.sh: $f is not there (build first, or set TOP_BUILDDIR)" >&2
        exit 1
    fi
done

# A library built with AddressSanitizer (./configure --enable-sanitizers
# CC=clang) wants its runtime in the process before it: Python has none,
# so load clang's shared one first. Not into the node, which has its own.
if nm -D "$IPCNET_LIBRARY" 2>/dev/null | grep -q ' U __asan_'; then
    rt=$(${CLANG:-clang} -print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null)
    if [ ! -f "$rt" ]; then
        echo "run_tests.sh: $IPCNET_LIBRARY needs the ASan runtime, not found: skipped" >&2
        exit 77
    fi
    LD_PRELOAD=$rt
    IPCNET_TEST_PRELOADED=1
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
    export LD_PRELOAD IPCNET_TEST_PRELOADED ASAN_OPTIONS
fi

export IPC_NODE IPCNET_LIBRARY
PYTHONPATH=$here:$here/tests${PYTHONPATH:+:$PYTHONPATH}
PYTHONDONTWRITEBYTECODE=1       # nothing written into the source tree
export PYTHONPATH PYTHONDONTWRITEBYTECODE

[ $# -gt 0 ] || set -- discover -s "$here/tests" -t "$here/tests" -v
# Bounded: every wait in the tests is, and this bounds them all.
exec timeout -k 10 600 "$PYTHON" -m unittest "$@"
