#!/usr/bin/env bash
# Hostile and crowded visitors against difusor and nginx, on this machine in the same run.
#
#   1. Silent connections: 20,000 connections that never send a byte, from 80 loopback
#      addresses (127.0.0.2 … 127.0.0.81), each reopened as soon as the server closes it,
#      for the attack's length, while a steady visitor opens a new connection and asks for
#      /json/main.json every 50 ms. Prints the visitor's success rate and p99 before, during
#      and after the attack, against:
#        - difusor with its defaults;
#        - difusor with max_connections 10,000, so that the attack fills the cap and idle
#          connections must give way;
#        - nginx as Debian ships it (worker_processes auto, worker_connections 768,
#          client_header_timeout 60 s, keepalive_timeout 75 s) serving the same files.
#      For difusor it also prints what /status said during the attack (the admin listener
#      must keep answering) and its peak memory.
#   2. Carrier NAT: 2,000 pages open behind one address (127.0.0.1), each loading its six
#      files over up to six connections within the first five seconds, then re-reading
#      json/main.json every 2 s over a kept-alive connection (what the simulated site's
#      page does), for 30 s, against difusor's defaults and nginx: answers by status, the
#      share of 429, and the requests that got no answer.
#
# The site is the complete site package `difusor simulate` makes (5,000 casillas, PRES,
# DIP_FED, SEN). Installs nginx and python3 if missing; run as root (it raises the open-file
# limit to hold 20,000 sockets on each side).
#
# Usage: bench/hostile.sh [seconds of attack]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
before=10
after=10
crowd_pages=2000
crowd_secs=30

need=()
for tool in nginx python3 curl; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Each process may hold as many descriptors as the hard limit allows (root may raise it);
# the attack is spread over four processes of 5,000 connections.
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt 16384 ]; then
  echo "the open-file limit is $(ulimit -n); at least 16384 are needed: run as root" >&2
  exit 1
fi

cargo build --release --quiet --bin difusor
bin=$PWD/target/release/difusor
tool=$PWD/bench/hostile.py

work=$(mktemp -d)
base=$((20000 + RANDOM % 10000))
cleanup() {
  for f in "$work"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && nginx -c "$work/nginx.conf" -s stop 2>/dev/null || true
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" simulate --out "$work/paquetes" --casillas 5000 --elecciones PRES,DIP_FED,SEN \
  --cortes 1 --every 0s 2>/dev/null
site=$(ls "$work"/paquetes/*_SITIO_COMPLETO_*.zip)

# difusor: name, public port, admin port, extra flags. Waits until the site is served.
start_difusor() {
  local name=$1 port=$2 admin=$3
  shift 3
  "$bin" serve --data-dir "$work/$name" --listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$admin" --publish-start "" --settle 200ms "$@" \
    2>"$work/$name.log" &
  echo $! >"$work/$name.pid"
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$admin/status" && break; sleep 0.1; done
  cp "$site" "$work/$name/entrada/.p" && mv "$work/$name/entrada/.p" "$work/$name/entrada/$(basename "$site")"
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/json/main.json")" = 200 ]; do sleep 0.1; done
}
stop_difusor() {
  kill "$(cat "$work/$1.pid")" 2>/dev/null || true
  while kill -0 "$(cat "$work/$1.pid")" 2>/dev/null; do sleep 0.1; done
  rm -f "$work/$1.pid"
}

# nginx as Debian ships it, serving the same files (workers run as root only to read the
# temporary folder).
mkdir -p "$work/www" "$work/nginx-logs"
python3 -m zipfile -e "$site" "$work/www"
n_port=$((base + 10))
cat >"$work/nginx.conf" <<CONF
user root;
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-logs/error.log;
events { worker_connections 768; }
http {
  sendfile on;
  tcp_nopush on;
  types_hash_max_size 2048;
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log $work/nginx-logs/access.log;
  gzip on;
  server { listen 127.0.0.1:$n_port; root $work/www; }
}
CONF
nginx -c "$work/nginx.conf"

peak_mib() { awk '/VmHWM/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

# The silent attack against one server, with the visitor before, during and after.
silent_attack() { # label port [admin port]
  local label=$1 port=$2 admin=${3:-}
  local out=$work/visitor-$RANDOM.txt
  echo "== $label: 20,000 silent connections from 80 addresses for ${secs}s"
  python3 "$tool" visitor "$port" 100000 "$out" &
  local visitor=$!
  echo "$visitor" >"$work/visitor.pid"
  local t0 t1 t2 t3
  t0=$(date +%s.%N)
  sleep "$before"
  t1=$(date +%s.%N)
  local part
  local attackers=()
  for part in 0 1 2 3; do
    python3 "$tool" attack "$port" 20000 80 "$secs" "$part" 4 >"$work/attack-$part.txt" &
    attackers+=($!)
  done
  if [ -n "$admin" ]; then
    sleep $((secs * 2 / 3))
    curl -s -o "$work/status.json" -w 'admin /status during the attack: %{http_code} in %{time_total} s\n' \
      --max-time 10 "http://127.0.0.1:$admin/status" || echo "admin /status during the attack: no answer"
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("  open_connections %s of %s, connections_evicted %s, connections_refused %s" % (s["open_connections"], s["max_open_connections"], s["connections_evicted"], s["connections_refused"]))' "$work/status.json" || true
  fi
  wait "${attackers[@]}"
  t2=$(date +%s.%N)
  cat "$work"/attack-*.txt | awk '{held += $1; opened += $2; failed += $3}
    END {printf "  attack: peak %d silent connections held, %d opened (each closed by the server and reopened), %d connect failures\n", held, opened, failed}' 
  sleep "$after"
  t3=$(date +%s.%N)
  kill "$visitor"
  wait "$visitor" 2>/dev/null || true
  rm -f "$work/visitor.pid"
  python3 "$tool" summary "$out" "$t0" "$t1" "$t2" "$t3"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -sr); open files: $(ulimit -n); load average: $(cut -d" " -f1-3 /proc/loadavg); date: $(date -u '+%F %H:%M UTC')"

d_port=$base; d_admin=$((base + 1))
start_difusor defaults "$d_port" "$d_admin"
silent_attack "difusor, defaults" "$d_port" "$d_admin"
echo "  difusor peak memory: $(peak_mib "$(cat "$work/defaults.pid")") MiB"
stop_difusor defaults

c_port=$((base + 2)); c_admin=$((base + 3))
start_difusor capped "$c_port" "$c_admin" --max-connections 10000
silent_attack "difusor, max_connections 10000" "$c_port" "$c_admin"
echo "  difusor peak memory: $(peak_mib "$(cat "$work/capped.pid")") MiB"
stop_difusor capped

silent_attack "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), Debian defaults" "$n_port"

echo "== carrier NAT: $crowd_pages pages behind one address, json/main.json every 2 s, ${crowd_secs}s"
start_difusor crowd "$((base + 4))" "$((base + 5))"
printf 'difusor, defaults: '
python3 "$tool" crowd "$((base + 4))" "$crowd_pages" "$crowd_secs"
curl -s "http://127.0.0.1:$((base + 5))/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("  difusor /status: connections_evicted %s, connections_refused %s" % (s["connections_evicted"], s["connections_refused"]))'
echo "  difusor peak memory: $(peak_mib "$(cat "$work/crowd.pid")") MiB"
stop_difusor crowd
printf 'nginx, Debian defaults: '
python3 "$tool" crowd "$n_port" "$crowd_pages" "$crowd_secs"
