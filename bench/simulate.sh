#!/usr/bin/env bash
# Time and size to generate one corte with `difusor simulate` (site package + data package,
# each with its .sha256, written into a folder), at state size (5,000 casillas; GUB, DIP_LOC,
# AYUN) and national size (170,000 casillas; PRES, DIP_FED, SEN). The corte is taken at
# 04:00 of election night (8 h after 20:00), when most actas are captured; median of runs.
#
# Usage: bench/simulate.sh [runs]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}

cargo build --release --quiet --bin difusor
bin=target/release/difusor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| size | casillas × elections | data package (zip) | site package (zip) | CSV unpacked | time, median of $runs |"
echo "|---|---|---|---|---|---|"
for spec in "state 5000 GUB,DIP_LOC,AYUN" "national 170000 PRES,DIP_FED,SEN"; do
  read -r label casillas elecciones <<<"$spec"
  times=()
  for _ in $(seq "$runs"); do
    rm -rf "$work/out"
    start=$(date +%s%N)
    "$bin" simulate --out "$work/out" --casillas "$casillas" --elecciones "$elecciones" \
      --fecha 2027-06-06 --desde 8h --cortes 1 --every 0s 2>/dev/null
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000000 )))
  done
  data=$(find "$work/out" -name '*_PREP_CAMP.zip')
  site=$(find "$work/out" -name '*_PREP_SITIO_*.zip')
  mkdir -p "$work/x" && rm -rf "$work/x"/*
  (cd "$work/x" && unzip -qo "$data" && for z in *.zip; do unzip -qo "$z" -d "${z%.zip}"; done)
  csv=$(find "$work/x" -name '*.csv' ! -name '*CANDIDATURA*' -printf '%s\n' | awk '{s+=$1} END {print s}')
  mb() { awk -v b="$1" 'BEGIN {printf "%.1f MB", b / 1e6}'; }
  med=$(printf '%s\n' "${times[@]}" | median)
  echo "| $label | $casillas × 3 | $(mb "$(stat -c %s "$data")") | $(mb "$(stat -c %s "$site")") | $(mb "$csv") | **${med} ms** (${times[*]}) |"
done
