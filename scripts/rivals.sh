# rivals.sh — sourced by callgrind_pair.sh, cache_cost.sh, reuse_age.sh, idle_rss.sh and
# trace_replay.sh: `rival_libs` prints the path of each of jemalloc, mimalloc and tcmalloc
# (minimal) that the dynamic linker's cache holds, 64-bit, one a line (as bench/run.py's
# ldconfig_path finds them). awk reads the whole list: leaving at the first match could kill
# ldconfig with SIGPIPE, which pipefail made fatal.
rival_libs() {
  local so
  for so in libjemalloc.so.2 libmimalloc.so.2 libtcmalloc_minimal.so.4; do
    ldconfig -p | awk -v s="$so" '$1 == s && $2 ~ /64/ && !f {print $NF; f = 1}'
  done
}
# `default_libs LAB`: the allocators a counting script compares when given none, one a line: LAB
# (a Labyrinth build's library), the installed rivals, and glibc (the word, for no preload).
default_libs() {
  printf '%s\n' "$1"
  rival_libs
  echo glibc
}
