#!/usr/bin/env bash
# The Postgres side of the benchmarks (issue 14): `make bench-postgres`, and the last step of
# `make bench`. With BENCH_QUICK=1, one short run of each case, written under bench/target/quick.
#
#   graphile-worker  the version pinned in bench/peers/postgres/package.json, installed there with
#                    `npm ci` (node_modules is not committed; reinstalled when the lock changes)
#   run              bench/postgres.py: a throwaway cluster (PostgreSQL's initdb + pg_ctl on a
#                    temporary directory, Unix socket only), pgbench and graphile-worker, then
#                    the cluster is stopped and deleted; writes postgres.json and postgres.txt
#   compare          bench/compare.py: those figures beside sqlite-task's from the SQLite
#                    harness's results-detail.json, as postgres-vs-sqlite.txt and .png (the
#                    chart needs the matplotlib venv bench/run.sh makes; without it, text only)
#
# Needs PostgreSQL's server binaries (PG_BIN, else the newest /usr/lib/postgresql/*/bin), node
# and npm, and npm's registry the first time.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
T=$ROOT/bench/target
PEER=bench/peers/postgres

step() { printf '\n== %s\n' "$*" >&2; }

step "graphile-worker (npm, $PEER)"
if ! cmp -s "$PEER/package-lock.json" "$PEER/node_modules/.bench-lock.json"; then
  (cd "$PEER" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$PEER/package-lock.json" "$PEER/node_modules/.bench-lock.json"
fi

if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then
  OUT=$T/quick
  ARGS=(--quick)
else
  OUT=$ROOT/bench
  ARGS=()
fi
mkdir -p "$OUT"

step "Postgres run (bench/postgres.py${ARGS[*]:+ ${ARGS[*]}}; results in ${OUT#"$ROOT"/})"
python3 bench/postgres.py "${ARGS[@]}" --out-dir "$OUT"

step "beside sqlite-task (bench/compare.py)"
SQLITE_DETAIL=$OUT/results-detail.json
[ -f "$SQLITE_DETAIL" ] || SQLITE_DETAIL=$ROOT/bench/results-detail.json
PY=python3
[ -x "$T/venv/bin/python" ] && PY=$T/venv/bin/python
"$PY" bench/compare.py --postgres "$OUT/postgres.json" --sqlite "$SQLITE_DETAIL" --out-dir "$OUT"
echo "bench: wrote ${OUT#"$ROOT"/}/postgres.json, postgres.txt and postgres-vs-sqlite.txt" >&2
