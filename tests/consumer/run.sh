#!/bin/sh
# run.sh BUILD_DIR CONSUMER_SOURCE CMAKE CC: installs the build into a temporary prefix and builds
# and runs the consumer program against it twice: find_package(kvtier), then pkg-config.
set -eu
build=$1 src=$2 cmake=$3 cc=$4
tmp=$(mktemp -d /tmp/kvtier-consumer-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$cmake" --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" || {
  cat "$tmp/install.log"; exit 1; }
libdir=$(dirname "$(find "$tmp/prefix" -name 'libkvtier.so' | head -n 1)")
test -f "$tmp/prefix/include/kvtier/kvtier.h"

echo "== find_package(kvtier)"
"$cmake" -S "$src" -B "$tmp/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_C_COMPILER="$cc" \
  >"$tmp/configure.log" || { cat "$tmp/configure.log"; exit 1; }
"$cmake" --build "$tmp/b" >"$tmp/build.log" || { cat "$tmp/build.log"; exit 1; }
LD_LIBRARY_PATH="$libdir" "$tmp/b/consumer" "$tmp/store1"

echo "== pkg-config kvtier"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs kvtier)
echo "pkg-config: $flags"
# shellcheck disable=SC2086
"$cc" -std=c99 -Wall -Werror "$src/consumer.c" $flags -o "$tmp/consumer-pc"
LD_LIBRARY_PATH="$libdir" "$tmp/consumer-pc" "$tmp/store2"

if [ -x /usr/bin/python3 ]; then
  echo "== python: import kvtier from the prefix (no KVTIER_LIBRARY)"
  pkgdir=$(dirname "$(find "$tmp/prefix" -path '*/kvtier/__init__.py' | head -n 1)")
  (unset KVTIER_LIBRARY; cd "$tmp" && PYTHONPATH=$(dirname "$pkgdir") /usr/bin/python3 -c \
    "import kvtier, sys; print('kvtier', kvtier.version(), 'from', kvtier.__file__)")
fi
echo "consumer builds ok"
