#!/bin/sh
# Install into a scratch prefix, then build and run a consumer through
# pkg-config exactly as a user would.
# usage: check.sh BUILD_DIR SOURCE_DIR [SANITIZERS]
set -eu
build=$1 src=$2 san=${3:-none}
# A sanitized library needs a consumer built with the same runtime.
sanflags=
[ "$san" = none ] || sanflags="-fsanitize=$san"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --destdir "$tmp/root" --quiet >/dev/null
prefix=$(meson introspect "$build" --buildoptions |
         sed -n 's/.*"name": "prefix", "value": "\([^"]*\)".*/\1/p')
[ -n "$prefix" ] || prefix=/usr/local
root="$tmp/root$prefix"
pc=$(find "$root" -name schedctl.pc | head -n 1)
[ -n "$pc" ] || { echo "schedctl.pc not installed"; exit 1; }
[ -x "$root/bin/schedctl" ] || { echo "schedctl command not installed"; exit 1; }
[ -f "$root/include/schedctl.h" ] || { echo "schedctl.h not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
cc $sanflags $(pkg-config --cflags schedctl) "$src/tests/install/example.c" \
   -o "$tmp/example" $(pkg-config --libs schedctl)
libdir=$(pkg-config --variable=libdir schedctl)
LD_LIBRARY_PATH="$libdir" "$tmp/example"
LD_LIBRARY_PATH="$libdir" "$root/bin/schedctl" --version
