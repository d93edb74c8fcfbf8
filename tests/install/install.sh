#!/usr/bin/env bash
# install.sh BUILD_DIR — what the README's "cmake --install" promises, checked: the build installed
# under a prefix other than the configured one, then the page-pool example built against it both
# through pkg-config and through find_package(labyrinth 0.1), and run. (The .pc file once named the
# configured prefix, so pkg-config pointed elsewhere; no version file made find_package with a
# version fail: found by review.)
set -u
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
ok() { echo "install: $*"; }
fail() { echo "install: FAIL $*"; failed=1; }

if ! cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/log" 2>&1; then
    cat "$tmp/log"
    echo "install: FAIL cmake --install"
    exit 1
fi
pc=$(find "$tmp/prefix" -name labyrinth.pc | head -n 1)
if [ -z "$pc" ]; then
    echo "install: FAIL no labyrinth.pc installed"
    exit 1
fi
libdir=$(dirname "$(find "$tmp/prefix" -name 'liblabyrinth.so' | head -n 1)")

if command -v pkg-config >/dev/null; then
    flags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags --libs labyrinth)
    # shellcheck disable=SC2086
    if cc -o "$tmp/pc_consumer" "$src/consumer.c" $flags 2>"$tmp/cc.err" &&
        LD_LIBRARY_PATH=$libdir "$tmp/pc_consumer"; then
        ok "pkg-config ($flags): built and ran"
    else
        fail "pkg-config: $flags: $(head -c 400 "$tmp/cc.err")"
    fi
else
    echo "install: pkg-config missing, its part skipped"
fi

if cmake -S "$src" -B "$tmp/cb" -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/cm.log" 2>&1 &&
    cmake --build "$tmp/cb" >>"$tmp/cm.log" 2>&1 && LD_LIBRARY_PATH=$libdir "$tmp/cb/consumer"; then
    ok "find_package(labyrinth 0.1): built and ran"
else
    fail "find_package(labyrinth 0.1): $(tail -c 600 "$tmp/cm.log")"
fi
exit $failed
