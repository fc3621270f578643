#!/usr/bin/env bash
# Fuzzes every target of fuzz/ (cargo-fuzz, libFuzzer) for a given time each, and prints per
# target the runs, execs/s, coverage and crashes found, then one summary line:
#   fuzz: targets=N seconds_each=N crashes=N
#
# Usage: bench/fuzz.sh [seconds per target, default 600]
# Environment:
#   FUZZ_TARGETS    the targets to run (default: all of them, in the order below)
#   FUZZ_JOBS       targets run at the same time (default 1), each under `nice -n 19`
#   FUZZ_SANITIZER  address or none (default: address when the toolchain ships the ASan
#                   runtime, none otherwise)
#
# Only the stable toolchain is needed: cargo-fuzz passes `-Z` flags to rustc, which a stable
# rustc accepts with RUSTC_BOOTSTRAP=1. Corpora grow under fuzz/corpus/<target>/ (not in git),
# seeded from fuzz/seeds/<target>/, the shared fixtures (/work/shared/fixtures or
# $DIFUSOR_FIXTURES) and the profiles; crashes land in fuzz/artifacts/<target>/ and logs in
# fuzz/logs/<target>.log. Exit status: 0 when no target crashed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
jobs=${FUZZ_JOBS:-1}
fixtures=${DIFUSOR_FIXTURES:-/work/shared/fixtures}
read -r -a targets <<<"${FUZZ_TARGETS:-package evidence prep_csv request_path config_file}"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
if [[ -n ${FUZZ_SANITIZER:-} ]]; then
  sanitizer=$FUZZ_SANITIZER
elif compgen -G "$sysroot/lib/rustlib/$host/lib/*rt.asan*" >/dev/null; then
  sanitizer=address
else
  sanitizer=none
fi
# The same flags for build and run, so `run` does not build again. 16 codegen units build
# several times faster than cargo-fuzz's default of 1, for slightly slower runs.
fuzz_flags=(--fuzz-dir fuzz --sanitizer "$sanitizer" --codegen-units 16)

echo "== seeding fuzz/corpus/"
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" fuzz/logs
  cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
done
# The real package, and the head of each real CSV (a corpus of 1 MB inputs is slow to mutate).
if [[ -d $fixtures ]]; then
  [[ -d fuzz/corpus/package ]] && cp -n "$fixtures"/real/*.zip fuzz/corpus/package/ 2>/dev/null || true
  if [[ -d fuzz/corpus/prep_csv ]]; then
    cp -n "$fixtures"/derived/*.csv fuzz/corpus/prep_csv/ 2>/dev/null || true
    for csv in "$fixtures"/real/*.csv; do
      [[ -e $csv ]] && head -c 16384 "$csv" >"fuzz/corpus/prep_csv/head-$(basename "$csv")"
    done
  fi
fi
[[ -d fuzz/corpus/config_file ]] && cp -n profiles/*.toml fuzz/corpus/config_file/

echo "== building (sanitizer: $sanitizer)"
cargo fuzz build "${fuzz_flags[@]}" >/dev/null

run_one() {
  local t=$1
  # -rss_limit_mb: a package within the default limits stays far below it, so passing it is a
  # finding (an allocation the limits did not stop). -timeout: one input taking 30 s is one too.
  nice -n 19 cargo fuzz run "${fuzz_flags[@]}" "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -timeout=30 \
    >"fuzz/logs/$t.log" 2>&1 || true
}

echo "== fuzzing ${#targets[@]} targets, ${seconds} s each, $jobs at a time"
touch fuzz/logs/.started
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

total_crashes=0
printf '%-14s %12s %9s %8s %8s %8s %8s\n' target runs execs/s cov ft corpus crashes
for t in "${targets[@]}"; do
  log="fuzz/logs/$t.log"
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  crashes=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' \
    -o -name 'timeout-*' -o -name 'leak-*' \) -newer fuzz/logs/.started | wc -l)
  total_crashes=$((total_crashes + crashes))
  printf '%-14s %12s %9s %8s %8s %8s %8s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "$corpus" "$crashes"
  if ((crashes > 0)); then
    find "fuzz/artifacts/$t" -type f -newer fuzz/logs/.started -printf '  found: %p\n'
    grep -m1 -E 'panicked at|ERROR: (AddressSanitizer|libFuzzer)' "$log" | sed 's/^/  /' || true
  fi
done
echo "fuzz: targets=${#targets[@]} seconds_each=$seconds crashes=$total_crashes"
((total_crashes == 0))
