#!/usr/bin/env bash
# Time from a package's arrival in the intake folder to the first byte of its corte served,
# for a state-size site package (~5,000 actas, 4 elections) and a national-size one
# (~170,000 actas, 3 elections); median of several runs.
#
# Side by side, in the same run, the way difusores do it today: a script that unzips the
# package into nginx's document root (measured from the start of the unzip, so without the
# up to 60 s a cron job waits before it runs).
#
# Usage: bench/ingest.sh [runs]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}

need=()
for tool in nginx curl unzip; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --quiet --bin difusor --example bench_package
bin=target/release/difusor
gen=target/release/examples/bench_package

work=$(mktemp -d)
port=$((20000 + RANDOM % 10000)); admin=$((port + 1)); nginx_port=$((port + 2))
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
  [ -f "$work/nginx.pid" ] && nginx -c "$work/nginx.conf" -s stop 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/www"
cat >"$work/nginx.conf" <<CONF
user root;
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
CONF
nginx -c "$work/nginx.conf"

"$bin" serve --data-dir "$work/d" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
  --settle 200ms --publish-start "" --max-member-bytes 1GiB 2>"$work/difusor.log" &
pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$admin/status" && break; sleep 0.1; done

now_ns() { date +%s%N; }
# Waits until $1 answers with corte $2 in X-PREP-Corte (difusor) or in the body (nginx).
wait_difusor() { until curl -s -o /dev/null -D - "$1" | grep -qi "^x-prep-corte: $2"; do :; done; }
wait_nginx() { until curl -s "$1" | grep -q "$2"; do :; done; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }

minute=0
measure() { # label actas elections
  local label=$1 actas=$2 elections=$3 d_times=() n_times=()
  for run in $(seq "$runs"); do
    minute=$((minute + 1))
    local corte; corte=$(printf '20240602_%02d%02d' $((20 + minute / 60)) $((minute % 60)))
    "$gen" "$work/$corte.zip" "$corte" "$actas" "$elections"
    cp "$work/$corte.zip" "$work/nginx-$corte.zip"
    local size; size=$(stat -c %s "$work/$corte.zip")
    # difusor: the package is renamed into the intake folder, as rsync does.
    local t0; t0=$(now_ns)
    mv "$work/$corte.zip" "$work/d/entrada/${corte}_PREP_SITIO.zip"
    wait_difusor "http://127.0.0.1:$port/json/main.json" "$corte"
    d_times+=($(( ($(now_ns) - t0) / 1000000 )))
    # nginx: unzip over the document root, then the same wait.
    t0=$(now_ns)
    unzip -o -q "$work/nginx-$corte.zip" -d "$work/www"
    wait_nginx "http://127.0.0.1:$nginx_port/json/main.json" "$corte"
    n_times+=($(( ($(now_ns) - t0) / 1000000 )))
    rm -f "$work/nginx-$corte.zip"
  done
  printf '%-10s %6d actas x %d  package %6.1f MB   difusor median %6s ms  (runs: %s)   unzip+nginx median %6s ms  (runs: %s)\n' \
    "$label" "$actas" "$elections" "$(awk -v s="$size" 'BEGIN{print s/1e6}')" \
    "$(printf '%s\n' "${d_times[@]}" | median)" "${d_times[*]}" \
    "$(printf '%s\n' "${n_times[@]}" | median)" "${n_times[*]}"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -sr); date: $(date -u +%F)"
measure state 5000 4
measure national 170000 3
