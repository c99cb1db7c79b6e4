#!/bin/sh
# setup.sh: what the benchmarks compare with but the build and the tests
# never need: NATS (nats-server and the nats.c client, for bench_cluster)
# and libdbus (bench_dbus). Installs them on Debian 12, then tells to run
# configure again so that make bench builds with them.
set -eu
pkgs="nats-server libnats-dev libdbus-1-dev dbus"
missing=
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
fi
echo "setup.sh: done; run configure again in your build directory, then make bench"
