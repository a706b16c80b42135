#!/usr/bin/env bash
# `make bench` (and `make bench-quick`, with BENCH_QUICK=1): builds the peers from crates.io,
# builds and runs the harness against dist/task0.so, then draws the chart.
#
#   honker    honker-extension 0.5.0: fetched through the pin in bench/peers/honker, then its own
#             cdylib is built from the downloaded crate source with the crate's own Cargo.lock
#   effectum  effectum 0.7.0 in bench/peers/effectum, a separate cargo project (another rusqlite)
#   chart     matplotlib in a venv under bench/target
#
# A full run writes bench/results.json, bench/results-detail.json, bench/results.txt,
# bench/chart.png, then bench/fairness.{json,txt} (bench/fairness.py), bench/wake.{json,txt}
# (bench/wake.py) and bench/pages.{json,txt} (bench/pages.py); a quick run writes the same files
# under bench/target/quick instead.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
T=$ROOT/bench/target
mkdir -p "$T"

if [ ! -f "$ROOT/dist/task0.so" ] && [ ! -f "$ROOT/dist/task0.dylib" ]; then
  echo "bench: dist/task0 is missing; run 'make loadable' first" >&2
  exit 1
fi

step() { printf '\n== %s\n' "$*" >&2; }

step "honker-extension 0.5.0 (crates.io)"
honker_manifest=$(cargo metadata --locked --format-version 1 \
    --manifest-path bench/peers/honker/Cargo.toml |
  python3 -c 'import json, sys
m = json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"]
           if p["name"] == "honker-extension" and p["version"] == "0.5.0"))')
cargo build --release --locked --manifest-path "$honker_manifest" --target-dir "$T/honker"

step "effectum 0.7.0 (crates.io)"
cargo build --release --locked --manifest-path bench/peers/effectum/Cargo.toml \
  --target-dir "$T/effectum"

step "harness"
cargo build --release --locked --manifest-path bench/Cargo.toml --target-dir "$T"

if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then
  OUT=$T/quick
else
  OUT=$ROOT/bench
fi
mkdir -p "$OUT"

step "run (${BENCH_QUICK:+quick, }results in ${OUT#"$ROOT"/})"
EFFECTUM_PEER=$T/effectum/release/effectum-peer
TASK_EXT=$ROOT/dist/task0 \
HONKER_EXT=$T/honker/release/libhonker_ext \
EFFECTUM_PEER=$EFFECTUM_PEER \
EFFECTUM_SQLITE=$("$EFFECTUM_PEER" version) \
BENCH_DIR=$T/db \
BENCH_OUT=$OUT \
  "$T/release/bench"
rm -rf "$T/db"

step "chart"
if [ ! -x "$T/venv/bin/python" ] || ! cmp -s bench/requirements.txt "$T/venv/requirements.txt"; then
  rm -rf "$T/venv"
  python3 -m venv "$T/venv"
  "$T/venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
  cp bench/requirements.txt "$T/venv/requirements.txt"
fi
"$T/venv/bin/python" bench/chart.py "$OUT/results-detail.json" "$OUT/chart.png"

step "fair waits (bench/fairness.py)"
if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then
  FAIR_ARGS=(--tasks 4000 --runs 1)
else
  FAIR_ARGS=(--tasks 20000 --runs 3)
fi
TASK_EXT=$ROOT/dist/task0 "$T/venv/bin/python" bench/fairness.py "${FAIR_ARGS[@]}" \
  --out "$OUT/fairness.json" | tee "$OUT/fairness.txt"

step "waits for a commit (bench/wake.py)"
if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then
  WAKE_ARGS=(--samples 100 --longpoll 60 --idle-secs 2)
else
  WAKE_ARGS=(--samples 400 --longpoll 300 --idle-secs 5)
fi
TASK_EXT=$ROOT/dist/task0 "$T/venv/bin/python" bench/wake.py "${WAKE_ARGS[@]}" \
  --out "$OUT/wake.json" | tee "$OUT/wake.txt"

step "WAL pages by b-tree (bench/pages.py)"
TASK_EXT=$ROOT/dist/task0 "$T/venv/bin/python" bench/pages.py --out "$OUT/pages.json" \
  | tee "$OUT/pages.txt"
echo "bench: wrote ${OUT#"$ROOT"/}/results.json and ${OUT#"$ROOT"/}/chart.png" >&2
