#!/usr/bin/env bash
# Throughput of `difusor inspect` on a national-size results CSV (~170,000 actas, the size of
# one INE federal election), in MB/s on one core; median of several runs.
#
# Side by side, in the same run, what an analyst would otherwise use: a Python script with
# the csv module that recomputes the same summary, party totals and counts
# (bench/recompute_summary.py). Both are pinned to one CPU with taskset.
#
# Usage: bench/inspect.sh [runs] [actas]   (default 5 runs, 170000 actas)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
actas=${2:-170000}

cargo build --release --quiet --bin difusor --example bench_csv
bin=target/release/difusor
gen=target/release/examples/bench_csv

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
csv="$work/NAC_PRES_2024.csv"
"$gen" "$csv" "$actas"
size=$(stat -c %s "$csv")

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }
pin() { if command -v taskset >/dev/null 2>&1; then taskset -c 0 "$@"; else "$@"; fi; }

# Both must find the generated summary true to its rows (exit status 0) before being timed.
pin "$bin" inspect "$csv" >"$work/difusor.txt"
pin python3 bench/recompute_summary.py "$csv" >"$work/python.txt"

measure() { # label command...
  local label=$1; shift
  local times=()
  for _ in $(seq "$runs"); do
    local t0; t0=$(now_ns)
    pin "$@" >/dev/null
    times+=($(( ($(now_ns) - t0) / 1000000 )))
  done
  local ms; ms=$(printf '%s\n' "${times[@]}" | median)
  printf '%-22s median %6s ms  %7.1f MB/s   (runs: %s)\n' "$label" "$ms" \
    "$(awk -v s="$size" -v ms="$ms" 'BEGIN{print s/1e6/(ms/1000)}')" "${times[*]}"
}

printf 'file: %d actas, %.1f MB\n' "$actas" "$(awk -v s="$size" 'BEGIN{print s/1e6}')"
measure "difusor inspect" "$bin" inspect "$csv"
measure "difusor inspect --json" "$bin" inspect --json "$csv"
measure "python3 csv module" python3 bench/recompute_summary.py "$csv"
