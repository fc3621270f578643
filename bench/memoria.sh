#!/usr/bin/env bash
# Speed of `difusor memoria` on a state-size election night's access log, side by side with
# GoAccess (what a difusor runs today) on the same file in the same run: lines per second and
# peak memory of each.
#
# The log (examples/bench_log.rs) is Combined Log Format, in time order, with a population of
# visitors polling json/main.json through a 24-hour night. It is read twice per tool: as the
# current day's plain `access.log`, and as rotated `access-YYYY-MM-DD.log.gz` files (how the
# logs are a week after the election, when the memoria is made).
#
# difusor's time is the whole command: reading, every figure, the report, the CSV and JSON
# files, the PDF, the copy of the logs into bitacoras/ (gzipped) and SHA256SUMS. GoAccess's is a JSON
# report with its default panels.
#
# GoAccess runs once per variant (a 10-million-line log takes it minutes).
#
# Usage: bench/memoria.sh [lines] [runs]   (default 10000000 lines, 3 runs of difusor; medians)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-10000000}
runs=${2:-3}

need=()
command -v goaccess >/dev/null 2>&1 || need+=(goaccess)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; fi

cargo build --release --quiet --bin difusor --example bench_log
bin=$PWD/target/release/difusor

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plain/bitacoras" "$work/rotated/bitacoras"
log="$work/plain/bitacoras/access.log"
target/release/examples/bench_log "$log" "$lines"
size=$(stat -c %s "$log")
# The same lines as the server leaves them after midnight: one gzipped file per local day
# (the generated night begins 2024-06-02 20:00 -0600).
awk -v dir="$work/rotated/bitacoras" '{ print > (dir "/access-2024-06-" substr($4, 2, 2) ".log") }' "$log"
gzip -1 "$work"/rotated/bitacoras/access-*.log

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

measure() { # runs label command...
  local n=$1 label=$2; shift 2
  local walls=() rss=()
  for i in $(seq "$n"); do
    rm -rf "$work/out" "$work/report.json"
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || { cat "$work/stderr"; exit 1; }
    read -r wall kib <"$work/time"
    walls+=("$wall"); rss+=("$kib")
  done
  local wall kib
  wall=$(printf '%s\n' "${walls[@]}" | median)
  kib=$(printf '%s\n' "${rss[@]}" | median)
  printf '%-34s %8.2f s %12.0f lines/s   peak memory %6.0f MiB   (wall s: %s)\n' \
    "$label" "$wall" "$(awk -v n="$lines" -v s="$wall" 'BEGIN{print n/s}')" \
    "$(awk -v k="$kib" 'BEGIN{print k/1024}')" "${walls[*]}"
  echo "$wall" >"$work/last"
}

period=(--from 2024-06-02 --to 2024-06-04)
printf 'log: %d lines, %.0f MB (Combined); %d cores; difusor: medians of %d runs\n' \
  "$lines" "$(awk -v s="$size" 'BEGIN{print s/1e6}')" "$(nproc)" "$runs"
measure "$runs" "difusor memoria (access.log)" "$bin" memoria --data-dir "$work/plain" "${period[@]}" --out "$work/out"
d_plain=$(cat "$work/last")
measure "$runs" "difusor memoria (rotated .gz)" "$bin" memoria --data-dir "$work/rotated" "${period[@]}" --out "$work/out"
d_gz=$(cat "$work/last")
# The PDF is printed by a headless Chromium, a fixed cost whatever the log's size; without
# Chromium on PATH the same command makes everything but the PDF.
measure "$runs" "difusor memoria (rotated .gz, no PDF)" env PATH=/nonexistent "$bin" memoria --data-dir "$work/rotated" "${period[@]}" --out "$work/out"
measure 1 "goaccess (access.log)" goaccess "$log" --log-format=COMBINED -o "$work/report.json"
g_plain=$(cat "$work/last")
measure 1 "goaccess (rotated .gz, via zcat)" sh -c "zcat $work/rotated/bitacoras/*.gz | goaccess - --log-format=COMBINED -o $work/report.json"
g_gz=$(cat "$work/last")
printf 'difusor is %.1f× faster than GoAccess on access.log, %.1f× on the rotated .gz files\n' \
  "$(awk -v a="$g_plain" -v b="$d_plain" 'BEGIN{print a/b}')" "$(awk -v a="$g_gz" -v b="$d_gz" 'BEGIN{print a/b}')"
