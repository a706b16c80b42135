#!/usr/bin/env bash
# Loads dist/task0 into small C hosts (host.c) built against SQLite
# amalgamations below, at and above the extension's floor, and checks that
# an old host gets the documented refusal (and survives it) while the others
# run the queue. One line per host; exits non-zero on any unexpected result.
#
# The amalgamations come from old releases of the libsqlite3-sys crate, which
# ship `sqlite3/sqlite3.c`: cargo downloads each crate once (a throwaway
# project per version, since two versions of a `links` crate cannot share
# one), and the sources and host binaries are cached under target/hosts/, so
# only the first run compiles anything.
#
# Environment: TASK_EXT (extension path without suffix, default dist/task0),
# HOSTS_CACHE (default target/hosts).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EXT=${TASK_EXT:-$ROOT/dist/task0}
CACHE=${HOSTS_CACHE:-$ROOT/target/hosts}
HOST_C=$ROOT/tests/hosts/host.c
JOBS=$(nproc 2>/dev/null || echo 2)

# label | libsqlite3-sys version that bundles it | version to relabel it as
# (empty: none). The relabelled host is the 3.35.4 source reporting 3.35.3:
# no crate ships 3.35.0-3.35.3, and the check reads only the version number,
# so this tests the comparison exactly at the floor.
HOSTS=(
  "3.33.0|0.20.1|"
  "3.35.3|0.22.2|3.35.3"
  "3.35.4|0.22.2|"
  "3.36.0|0.23.0|"
  "3.45.0|0.28.0|"
  "3.53.2|0.38.2|"
)

# The floor, as the extension states it.
FLOOR=$(sed -n 's/.*MIN_SQLITE_VERSION_TEXT: &str = "\([0-9.]*\)".*/\1/p' "$ROOT/src/ffi/host.rs")
[[ -n $FLOOR ]] || { echo "cannot read MIN_SQLITE_VERSION_TEXT from src/ffi/host.rs" >&2; exit 2; }

[[ -e $EXT.so || -e $EXT.dylib ]] ||
  { echo "no extension at $EXT.{so,dylib}: run make loadable" >&2; exit 2; }

version_number() { # 3.35.4 -> 3035004
  local IFS=.
  read -r a b c <<<"$1"
  echo $((a * 1000000 + b * 1000 + ${c:-0}))
}

# Copies the amalgamation bundled by libsqlite3-sys $1 into $CACHE/src-$1.
fetch_amalgamation() {
  local v=$1 src=$CACHE/src-$1 proj=$CACHE/fetch-$1
  [[ -s $src/sqlite3.c ]] && return 0
  mkdir -p "$proj/src" "$src"
  echo 'fn main() {}' >"$proj/src/main.rs"
  cat >"$proj/Cargo.toml" <<EOF
[package]
name = "fetch-sqlite"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
libsqlite3-sys = { version = "=$v", features = ["bundled"] }
EOF
  cargo fetch --quiet --manifest-path "$proj/Cargo.toml"
  local manifest
  manifest=$(cargo metadata --quiet --format-version 1 --manifest-path "$proj/Cargo.toml" |
    grep -o "\"manifest_path\":\"[^\"]*libsqlite3-sys-$v/Cargo.toml\"" | head -n1 | cut -d'"' -f4)
  [[ -n $manifest ]] || { echo "libsqlite3-sys $v: source not found after cargo fetch" >&2; return 1; }
  cp "$(dirname "$manifest")/sqlite3/sqlite3.c" "$(dirname "$manifest")/sqlite3/sqlite3.h" "$src/"
}

# Builds $CACHE/host-LABEL/host from the cached amalgamation.
build_host() {
  local label=$1 v=$2 relabel=$3 dir=$CACHE/host-$1
  if [[ -x $dir/host && $dir/host -nt $HOST_C ]]; then return 0; fi
  mkdir -p "$dir"
  cp "$CACHE/src-$v/sqlite3.c" "$CACHE/src-$v/sqlite3.h" "$dir/"
  if [[ -n $relabel ]]; then
    local from
    from=$(sed -n 's/^#define SQLITE_VERSION  *"\([0-9.]*\)".*/\1/p' "$dir/sqlite3.h" | head -n1)
    sed -i -e "s/^#define SQLITE_VERSION  *\"$from\"/#define SQLITE_VERSION \"$relabel\"/" \
      -e "s/^#define SQLITE_VERSION_NUMBER  *$(version_number "$from")\$/#define SQLITE_VERSION_NUMBER $(version_number "$relabel")/" \
      "$dir/sqlite3.c" "$dir/sqlite3.h"
  fi
  gcc -O1 -w -I"$dir" "$HOST_C" "$dir/sqlite3.c" -o "$dir/host.tmp" -ldl -lpthread -lm \
    >"$dir/build.log" 2>&1 || { cat "$dir/build.log" >&2; return 1; }
  mv "$dir/host.tmp" "$dir/host"
}

mkdir -p "$CACHE"
for h in "${HOSTS[@]}"; do
  IFS='|' read -r label v relabel <<<"$h"
  fetch_amalgamation "$v"
done
pids=()
for h in "${HOSTS[@]}"; do
  IFS='|' read -r label v relabel <<<"$h"
  build_host "$label" "$v" "$relabel" &
  pids+=($!)
  while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
done
for p in "${pids[@]}"; do wait "$p" || { echo "a host failed to build" >&2; exit 2; }; done

floor_n=$(version_number "$FLOOR")
bad=0
for h in "${HOSTS[@]}"; do
  IFS='|' read -r label v relabel <<<"$h"
  dir=$CACHE/host-$label
  origin="libsqlite3-sys $v"
  [[ -n $relabel ]] && origin="$origin, relabelled"
  set +e
  out=$(timeout 60 "$dir/host" "$EXT" 2>&1)
  status=$?
  set -e
  echo "$out" >"$dir/last-run.log"
  reported=$(sed -n 's/^sqlite: //p' <<<"$out")
  want_msg="sqlite-task needs SQLite $FLOOR or newer; this host is $label"
  if ((status >= 124)); then
    verdict="FAIL  host died (exit $status: signal or timeout)"
  elif [[ $reported != "$label" ]]; then
    verdict="FAIL  host reports SQLite '$reported', expected $label"
  elif (($(version_number "$label") < floor_n)); then
    if grep -qF "load: rc=1 msg=" <<<"$out" && grep -qF "$want_msg" <<<"$out" &&
      grep -qF "after-refusal: rc=1 no such function: task_version" <<<"$out" &&
      grep -qx "done: ok" <<<"$out" && ((status == 0)); then
      verdict="PASS  refused at load: \"$want_msg\"; host exited normally"
    else
      verdict="FAIL  expected a refusal with \"$want_msg\" (exit $status)"
    fi
  else
    if grep -qx "load: rc=0 msg=" <<<"$out" && grep -qx "row: check_result=ok" <<<"$out" &&
      grep -qF "claimed=1" <<<"$out" && grep -qx "done: ok" <<<"$out" && ((status == 0)); then
      verdict="PASS  loaded; enqueue, claim, progress, complete, tasks table and task_check work"
    else
      verdict="FAIL  expected to load and run the smoke statements (exit $status)"
    fi
  fi
  printf '%-7s %-38s %s\n' "$label" "($origin)" "$verdict"
  if [[ $verdict == FAIL* ]]; then
    bad=1
    sed 's/^/    | /' <<<"$out"
  fi
done
if ((bad)); then
  echo "hosts: unexpected results (floor $FLOOR); logs in $CACHE/host-*/last-run.log"
  exit 1
fi
echo "hosts: all as expected (floor $FLOOR)"
