#!/bin/bash
# postgres_workload.sh DIR BIN — run by tests/real/postgres.sh as a user postgres accepts (not
# root), BIN holding PostgreSQL's programs: a fresh cluster in DIR, the server on a Unix socket
# there only, a SQL workload through psql (its results on stdout), then a clean stop. Fails if a
# server process died on a signal.
set -eu
dir=$1 bin=$2
"$bin/initdb" -D "$dir/data" -A trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
    { tail -n 20 "$dir/initdb.log" >&2; exit 1; }
"$bin/pg_ctl" -D "$dir/data" -o "-k $dir -c listen_addresses=''" -l "$dir/server.log" -w start >/dev/null ||
    { tail -n 20 "$dir/server.log" >&2; exit 1; }
rc=0
"$bin/psql" -h "$dir" -d postgres -qAt -v ON_ERROR_STOP=1 <<'SQL' || rc=$?
create table t(id int primary key, s text, j jsonb);
insert into t select g, md5(g::text) || repeat('x', g % 300),
    jsonb_build_object('a', g, 'b', array[g, g * 2]) from generate_series(1, 150000) g;
create index on t(s);
select count(*), sum(length(s)), sum((j->>'a')::int) from t;
select md5(string_agg(s, ',' order by s)) from t where id % 97 = 0;
with recursive r(n) as (select 1 union all select n + 1 from r where n < 50000) select sum(n) from r;
select count(distinct s) from (select substr(s, 1, 5) s from t) q;
set work_mem = '64kB';
select md5(string_agg(x::text, ',')) from (select s as x from t order by s desc limit 5000) q;
reset work_mem;
update t set s = s || 'y' where id % 3 = 0;
vacuum full t;
select sum(length(s)), count(*) filter (where s like '%y') from t;
SQL
"$bin/pg_ctl" -D "$dir/data" -w stop >/dev/null || rc=1
if grep -q 'terminated by signal' "$dir/server.log"; then
    echo "a server process died on a signal:" >&2
    grep 'terminated by signal' "$dir/server.log" | head -n 5 >&2
    rc=1
fi
# under the preload (LAB_EXPECT_LABYRINTH=1), the server's own processes must have run on it: their
# exit summaries go to the server's log, not to psql's stderr
if [ -n "${LD_PRELOAD:-}" ] && [ "${LAB_EXPECT_LABYRINTH:-0}" = 1 ]; then
    n=$(grep -c '^labyrinth stats: mallocs' "$dir/server.log" || true)
    echo "server processes that ran on the preload: $n" >&2
    if [ "$n" -eq 0 ]; then
        echo "no 'labyrinth stats:' line in the server's log: did the server run on the preload?" >&2
        rc=1
    fi
fi
exit "$rc"
