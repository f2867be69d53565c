#!/usr/bin/env bash
# A PostgreSQL server on this machine for trying the tracking server on a real database and for the
# tests: Debian's postgresql, its data under one folder, listening on 127.0.0.1 only, one database
# `mlflow` owned by role `mlflow` with trust authentication on loopback (a trial, not a production setup:
# see the README for a server others can reach). Installs the package when missing (needs root).
#   scripts/postgres-local.sh start DIR [PORT]  -> prints `export SWEEP_POSTGRES_URI=postgresql://...`
#   scripts/postgres-local.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop}
dir=$(mkdir -p "${2:?folder}" && cd "$2" && pwd)
port=${3:-5432}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
# PostgreSQL refuses to run as root: as root, its processes run as the `postgres` user the package made.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ "$cmd" = stop ]; then
  bin=$(pg_bin)
  [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  exit 0
fi

if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
  [ "$(id -u)" = 0 ] || { echo "postgresql is not installed and this is not root: apt-get install postgresql" >&2; exit 1; }
  # one installer at a time: the SLURM test may be installing on another test worker
  exec 9>/tmp/sweep-apt.lock && flock 9
  apt-get update -qq >/dev/null
  # the package's own cluster is not needed (and cannot start without an init system): no start, no cluster
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main.conf
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  flock -u 9 && exec 9>&-
fi
bin=$(pg_bin)
[ "$(id -u)" = 0 ] && chown postgres "$dir"
if [ ! -f "$dir/data/PG_VERSION" ]; then
  as_pg "$bin/initdb" -D "$dir/data" -U mlflow --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
fi
# the socket in the folder (not /var/run/postgresql, which may not exist); TCP on loopback only
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
if ! as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U mlflow -d postgres -tAc "select 1 from pg_database where datname='mlflow'" | grep -q 1; then
  as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U mlflow mlflow
fi
echo "export SWEEP_POSTGRES_URI=postgresql://mlflow@127.0.0.1:$port/mlflow"
