#!/usr/bin/env bash
# test_install.sh: what `make install` ships, into a DESTDIR of the test's
# own: the node, the library and its header, pkg-config, both manuals and
# a page for every call of ipcnet.h, the systemd unit naming the installed
# node, the sysusers entry, the config (not over one already there) and
# its example. Then `make uninstall` leaves no file. Needs TOP_BUILDDIR and
# TOP_SRCDIR (from make check).

set -u
TOP=${TOP_SRCDIR:-.}
BUILD=${TOP_BUILDDIR:-.}
DEST=$(mktemp -d /tmp/ipcnet-install-XXXXXX) || exit 1
trap 'rm -rf "$DEST"' EXIT
# shellcheck source=tests/lib.sh
. "$TOP/tests/lib.sh"

vars=$(make -s -C "$BUILD" -f - print <<'EOF'
include Makefile
print:
	@echo "prefix=$(prefix) bindir=$(bindir) libdir=$(libdir) includedir=$(includedir)"
	@echo "mandir=$(mandir) sysconfdir=$(sysconfdir) docdir=$(docdir)"
	@echo "unitdir=$(systemdsystemunitdir) sysusersdir=$(sysusersdir)"
EOF
)
eval "$(echo "$vars" | tr ' ' '\n' | grep '=')"
# (shellcheck cannot see the variables eval sets)
: "${prefix:?}" "${bindir:?}" "${libdir:?}" "${includedir:?}" "${mandir:?}" \
  "${sysconfdir:?}" "${docdir:?}" "${unitdir:?}" "${sysusersdir:?}"
unitdir=${unitdir//\$\{prefix\}/$prefix}
sysusersdir=${sysusersdir//\$\{prefix\}/$prefix}

make -s -C "$BUILD" install DESTDIR="$DEST" >"$DEST.log" 2>&1
rc=$?
check "make install DESTDIR=... succeeds" "$rc" "$(tail -5 "$DEST.log")"
rm -f "$DEST.log"

[ -x "$DEST$bindir/ipc-node" ] && [ -e "$DEST$libdir/libipcnet.so.1" ] &&
    [ -e "$DEST$includedir/ipcnet.h" ] && [ -e "$DEST$libdir/pkgconfig/ipcnet.pc" ] &&
    [ -e "$DEST$mandir/man8/ipc-node.8" ] && [ -e "$DEST$mandir/man3/ipcnet.3" ]
check "the node, libipcnet.so.1, ipcnet.h, ipcnet.pc and both manuals" $? \
    "$(cd "$DEST" && find . -type f | sort)"

missing=
for f in $(grep -o 'ipcnet_[a-z_]*(' "$TOP/libnet/ipcnet.h" | tr -d '(' | sort -u); do
    [ "$(cat "$DEST$mandir/man3/$f.3" 2>/dev/null)" = '.so man3/ipcnet.3' ] || missing="$missing $f"
    sed -n '/^\.SH NAME/,/^\.SH/p' "$TOP/docs/ipcnet.3" | grep -qw "$f" || missing="$missing $f(NAME)"
done
[ -z "$missing" ]
check "every call of ipcnet.h has its man page (man ipcnet_send) and is named in ipcnet(3)" $? \
    "missing:$missing"

grep -qx "ExecStart=$bindir/ipc-node" "$DEST$unitdir/ipc-node.service" &&
    [ -e "$DEST$sysusersdir/ipc-node.conf" ]
check "the unit names the installed node; the sysusers entry is there" $? \
    "$(grep ExecStart "$DEST$unitdir/ipc-node.service" 2>&1)"
cmp -s "$TOP/dist/ipc-node.conf" "$DEST$sysconfdir/ipc-node/ipc-node.conf" &&
    cmp -s "$TOP/dist/ipc-node.conf" "$DEST$docdir/ipc-node.conf"
check "the config and its example, every default commented" $?

echo "name mine" >"$DEST$sysconfdir/ipc-node/ipc-node.conf"
make -s -C "$BUILD" install DESTDIR="$DEST" >/dev/null 2>&1
[ "$(cat "$DEST$sysconfdir/ipc-node/ipc-node.conf")" = "name mine" ]
check "a second make install keeps the config an administrator wrote" $?
make -s -C "$BUILD" uninstall DESTDIR="$DEST" >/dev/null 2>&1
left=$(cd "$DEST" && find . -type f | sort)
[ "$left" = "./${sysconfdir#/}/ipc-node/ipc-node.conf" ]
check "make uninstall removes every file but a config someone changed" $? "left: $left"

summary
