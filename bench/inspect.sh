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

if [ ! -x /usr/bin/time ]; then apt-get update -qq && apt-get install -y -qq time >/dev/null; fi

cargo build --release --quiet --bin difusor --example bench_csv
bin=target/release/difusor
gen=target/release/examples/bench_csv

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
csv="$work/NAC_PRES_2024.csv"
"$gen" "$csv" "$actas"
size=$(stat -c %s "$csv")

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }
pin() { if command -v taskset >/dev/null 2>&1; then taskset -c 0 "$@"; else "$@"; fi; }

# Both must find the generated summary true to its rows (exit status 0) before being timed.
pin "$bin" inspect "$csv" >"$work/difusor.txt"
pin python3 bench/recompute_summary.py "$csv" >"$work/python.txt"

# Each run is timed by GNU time: wall time, and CPU time (user + system) which a machine
# shared with other work disturbs far less. MB/s per core is the file's size over the CPU time.
measure() { # label command...
  local label=$1; shift
  local walls=() cpus=()
  for _ in $(seq "$runs"); do
    pin /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" >/dev/null
    read -r wall user sys <"$work/time"
    walls+=("$(awk -v t="$wall" 'BEGIN{printf "%.0f", t*1000}')")
    cpus+=("$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.0f", (u+s)*1000}')")
  done
  local wall cpu
  wall=$(printf '%s\n' "${walls[@]}" | median)
  cpu=$(printf '%s\n' "${cpus[@]}" | median)
  printf '%-22s wall %5s ms %6.1f MB/s | CPU %5s ms %6.1f MB/s per core  (CPU ms: %s)\n' \
    "$label" "$wall" "$(awk -v s="$size" -v ms="$wall" 'BEGIN{print s/1e6/(ms/1000)}')" \
    "$cpu" "$(awk -v s="$size" -v ms="$cpu" 'BEGIN{print s/1e6/(ms/1000)}')" "${cpus[*]}"
}

printf 'file: %d actas, %.1f MB; medians of %d runs\n' "$actas" "$(awk -v s="$size" 'BEGIN{print s/1e6}')" "$runs"
measure "difusor inspect" "$bin" inspect "$csv"
measure "difusor inspect --json" "$bin" inspect --json "$csv"
measure "python3 csv module" python3 bench/recompute_summary.py "$csv"
