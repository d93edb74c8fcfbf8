#!/bin/bash
# postgres.sh — PostgreSQL under the preload: initdb, a server whose postmaster forks a backend
# per connection and its background workers, and a SQL workload (bulk insert, jsonb, index build,
# a sort in 64 kB of work memory, update, VACUUM FULL) through psql. psql's output must match the
# glibc run, and no server process may die on a signal. Skipped without PostgreSQL's binaries, or
# as root without a "postgres" user to run them (the server refuses root).
. "$(dirname "$0")/lib.sh"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ] || [ ! -x "$bin/psql" ]; then
    echo "postgres: PostgreSQL server binaries not installed; skipped"
    exit 77
fi
as=()
if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1 || ! command -v runuser >/dev/null; then
        echo "postgres: running as root with no postgres user (or no runuser); skipped"
        exit 77
    fi
    as=(runuser -u postgres --)
    chmod 711 "$lab_tmp"
fi
script=$(cd "$(dirname "$0")" && pwd)/postgres_workload.sh
# the postgres user may not be able to read the checkout or enter the current directory (a
# checkout under /root): the workload script goes into its own directory, and runs from there
cd "$lab_tmp" || exit 1
# ... nor the library under test, in the build tree: the server loads a copy
if [ -n "${LAB_PRELOAD:-}" ] && [ ${#as[@]} -gt 0 ]; then
    cp "$LAB_PRELOAD" "$lab_tmp/preload.so" && chmod 755 "$lab_tmp/preload.so" || exit 1
    LAB_PRELOAD=$lab_tmp/preload.so
fi
for mode in ref lab; do
    mkdir "$lab_tmp/$mode" && cp "$script" "$lab_tmp/$mode/workload.sh" || exit 1
    if [ ${#as[@]} -gt 0 ]; then chown -R postgres "$lab_tmp/$mode" || exit 1; fi
    lab_run "$mode" sql "${as[@]}" bash "$lab_tmp/$mode/workload.sh" "$lab_tmp/$mode" "$bin"
done
lab_compare sql
lab_finish
