#!/usr/bin/env bash
# readme_options.sh [--check] — rewrites the option table of README.md (between the markers
# <!-- options:begin --> and <!-- options:end -->) from `labyrinth-options --markdown`;
# with --check, exits 1 when the README's table differs from the code's list.
set -euo pipefail
case ${1:-} in
  ''|--check) ;;
  -h|--help) sed -n '2,4s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *) echo "readme_options.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
tool=${LAB_OPTIONS_TOOL:-${BUILD_DIR:-build}/labyrinth-options}
table=$("$tool" --markdown)
new=$(awk -v table="$table" '
  /<!-- options:begin -->/ { print; print table; skip = 1; next }
  /<!-- options:end -->/   { skip = 0 }
  !skip { print }' README.md)
if [ "${1:-}" = "--check" ]; then
  if [ "$new" != "$(cat README.md)" ]; then
    echo "README.md option table is out of date: run scripts/readme_options.sh" >&2
    exit 1
  fi
  echo "README.md option table matches preload/options.h"
else
  printf '%s\n' "$new" > README.md
fi
