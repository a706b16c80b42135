#!/usr/bin/env bash
# The sqlite3-shell suite: proves the extension works in the real `sqlite3`
# shell (Debian 12's is SQLite 3.40.1), the way users load it.
#
# Each tests/sql/NN_name.sql runs in a fresh shell on a fresh database file
# in a temporary directory, from the repo root (so `.load ./dist/task0`
# works), and its output is diffed against NN_name.expected. Errors are part
# of the output: the shell keeps going after an error in a script read from
# stdin and prints "Runtime error near line N: ..." / "Parse error near line
# N: ..." on stderr; stderr is merged into the same file as stdout. Checked
# on 3.40.1, also with outputs much larger than a stdio buffer: errors and
# rows keep their order between statements. Within one statement that
# prints rows and then fails, the error comes out before those rows, so the
# scripts keep a failing call in a statement of its own.
#
#   bash tests/sql/run.sh                     every file
#   bash tests/sql/run.sh tests/sql/02_errors.sql   some files
#   UPDATE_EXPECTED=1 bash tests/sql/run.sh   rewrite the .expected files
#                                             (then review the diff by hand)
#   SQLITE3=/path/to/sqlite3 bash tests/sql/run.sh   another shell
#
# TASK_TEST_DB is exported to each script with the path of its database, so
# a script can reopen it without the extension loaded (05_*.sql does).
set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

sqlite3_bin="${SQLITE3:-sqlite3}"
if ! command -v "$sqlite3_bin" >/dev/null; then
  echo "run.sh: $sqlite3_bin not found (apt-get install sqlite3, or set SQLITE3)" >&2
  exit 2
fi
if ! compgen -G "dist/task0.*" >/dev/null; then
  echo "run.sh: dist/task0.so is missing; run make loadable first" >&2
  exit 2
fi

if [ "$#" -gt 0 ]; then
  files=("$@")
else
  files=(tests/sql/*.sql)
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/sqlite-task-sql.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "sqlite3 shell: $("$sqlite3_bin" --version | cut -d' ' -f1)"
failed=0
for file in "${files[@]}"; do
  name="$(basename "$file" .sql)"
  expected="tests/sql/$name.expected"
  db="$tmp/$name.db"
  actual="$tmp/$name.out"
  rm -f "$db" "$db-wal" "$db-shm" "$db-journal"
  # -init /dev/null: a user's ~/.sqliterc must not change the output.
  # -batch: no prompts or banner, whatever stdin is.
  rc=0
  TASK_TEST_DB="$db" "$sqlite3_bin" -init /dev/null -batch "$db" <"$file" >"$actual" 2>&1 || rc=$?
  # The shell exits 1 when a statement failed, which these scripts do on
  # purpose; anything else (a signal: 134 abort, 139 segfault) is a crash.
  crashed=""
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
    crashed="the shell exited with status $rc (crash?)"
  fi

  if [ "${UPDATE_EXPECTED:-}" = 1 ]; then
    cp "$actual" "$expected"
    echo "updated $expected${crashed:+ — WARNING: $crashed}"
    [ -z "$crashed" ] || failed=1
    continue
  fi

  if [ ! -f "$expected" ]; then
    echo "FAILED $file: no $expected (create it with UPDATE_EXPECTED=1, then review it)"
    failed=1
  elif ! diff -u --label "$expected" --label "actual output" "$expected" "$actual" >"$tmp/diff"; then
    echo "FAILED $file${crashed:+ ($crashed)}"
    cat "$tmp/diff"
    failed=1
  elif [ -n "$crashed" ]; then
    echo "FAILED $file: $crashed"
    failed=1
  else
    echo "ok     $file ($(grep -c . "$expected") lines)"
  fi
done

if [ "$failed" -ne 0 ]; then
  echo "sqlite3-shell suite: FAILED"
  exit 1
fi
echo "sqlite3-shell suite: ok"
