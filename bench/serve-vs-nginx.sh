#!/usr/bin/env bash
# The same corte served by difusor and by nginx (Debian's, with gzip_static and brotli_static
# and the same precompressed files), both with access logs on and the same number of workers,
# on this machine in the same run:
#   - wrk, HTTP/1.1 keep-alive, Accept-Encoding: gzip, br, /json/main.json and /index.html,
#     64 and 256 connections;
#   - h2load, HTTP/2 over TLS, /json/main.json;
#   - wrk again while a new corte goes live every second (difusor: renamed into its intake
#     folder; nginx: unzipped over its document root, as difusores do it today).
# Prints requests/s, p99 latency, the ratios difusor/nginx and both servers' peak memory.
#
# Usage: bench/serve-vs-nginx.sh [seconds per run]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
workers=$(nproc)

need=()
for tool in nginx wrk h2load curl unzip brotli; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
[ -f /usr/lib/nginx/modules/ngx_http_brotli_static_module.so ] || need+=(libnginx-mod-http-brotli-static)
if [ ${#need[@]} -gt 0 ]; then
  pkgs=()
  for n in "${need[@]}"; do case $n in h2load) pkgs+=(nghttp2-client);; *) pkgs+=("$n");; esac; done
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
cargo build --release --quiet --bin difusor --example bench_package
bin=$PWD/target/release/difusor
gen=$PWD/target/release/examples/bench_package

work=$(mktemp -d)
base=$((20000 + RANDOM % 10000))
d_http=$base; d_https=$((base + 1)); d_admin=$((base + 2)); n_http=$((base + 3)); n_https=$((base + 4))
cleanup() {
  [ -n "${swapper:-}" ] && kill "$swapper" 2>/dev/null || true
  [ -n "${dpid:-}" ] && kill "$dpid" 2>/dev/null || true
  [ -f "$work/nginx.pid" ] && nginx -c "$work/nginx.conf" -s stop 2>/dev/null || true
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

# One state-size site package; both servers get the same files.
"$gen" "$work/20240602_2000_PREP.zip" 20240602_2000 5000 4
"$bin" init --self-signed --dir "$work/tlsdir" >/dev/null
cert=$work/tlsdir/tls/cert.pem; key=$work/tlsdir/tls/key.pem

# nginx: the files unzipped, with .gz and .br beside them as gzip_static/brotli_static want.
mkdir -p "$work/www" "$work/nginx-logs"
unzip -q -o "$work/20240602_2000_PREP.zip" -d "$work/www"
precompress() { for f in "$work/www/index.html" "$work/www/json/main.json"; do gzip -kf9 "$f"; brotli -kf -q 9 "$f"; done; }
precompress
cat >"$work/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_http_brotli_static_module.so;
user root;
worker_processes $workers;
pid $work/nginx.pid;
error_log $work/nginx-logs/error.log;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  access_log $work/nginx-logs/access.log combined;
  keepalive_requests 1000000;
  gzip_static on;
  brotli_static on;
  etag on;
  server {
    listen 127.0.0.1:$n_http;
    listen 127.0.0.1:$n_https ssl http2;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    root $work/www;
    location = /json/main.json { add_header Cache-Control "no-cache, no-store, must-revalidate"; }
  }
}
CONF
nginx -c "$work/nginx.conf"

# difusor, same workers, no rate limit (the load comes from one address).
"$bin" serve --data-dir "$work/d" --workers "$workers" --listen "127.0.0.1:$d_http" \
  --tls-listen "127.0.0.1:$d_https" --tls-cert "$cert" --tls-key "$key" \
  --admin-listen "127.0.0.1:$d_admin" --rate-per-address 0 --settle 200ms --publish-start "" 2>"$work/difusor.log" &
dpid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$d_admin/status" && break; sleep 0.1; done
cp "$work/20240602_2000_PREP.zip" "$work/d/entrada/.p" && mv "$work/d/entrada/.p" "$work/d/entrada/20240602_2000_PREP.zip"
until curl -s -H 'Accept-Encoding: br' -o /dev/null -D - "http://127.0.0.1:$d_http/index.html" | grep -qi '^content-encoding: br'; do sleep 0.1; done
until curl -s -H 'Accept-Encoding: br' -o /dev/null -D - "http://127.0.0.1:$d_http/json/main.json" | grep -qi '^content-encoding: br'; do sleep 0.1; done
for port in $d_http $n_http; do
  curl -s -H 'Accept-Encoding: gzip, br' -o /dev/null -w "port $port: %{http_code} %{size_download} bytes\n" "http://127.0.0.1:$port/json/main.json"
done

peak_kb() { # peak resident memory of a process and its children, KiB
  local total=0 p
  for p in "$@" $(pgrep -P "$1" 2>/dev/null || true); do
    total=$((total + $(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# wrk: prints "requests/s p99_ms"
run_wrk() { # url connections
  wrk -t2 -c"$2" -d"${secs}s" --latency -H 'Accept-Encoding: gzip, br' "$1" 2>/dev/null | awk '
    /Requests\/sec/ {rps=$2}
    /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p99=v}
    END {printf "%.0f %.2f", rps, p99}'
}
# h2load over TLS: prints "requests/s p99_ms"
run_h2load() { # url
  local log=$work/h2load.log
  rm -f "$log"
  h2load -D "$secs" -c 64 -m 10 -t 2 --log-file="$log" -H 'Accept-Encoding: gzip, br' "$1" >"$work/h2load.out" 2>&1 || true
  local rps; rps=$(awk '/^finished in/ {print $4}' "$work/h2load.out")
  local p99; p99=$(awk '{print $3}' "$log" | sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.2f", a[i]/1000}')
  echo "${rps:-0} ${p99:-0}"
}
row() { # label difusor_result nginx_result
  read -r drps dp99 <<<"$2"; read -r nrps np99 <<<"$3"
  awk -v l="$1" -v a="$drps" -v b="$dp99" -v c="$nrps" -v d="$np99" 'BEGIN {
    printf "%-40s difusor %9.0f req/s p99 %7.2f ms | nginx %9.0f req/s p99 %7.2f ms | ratio req/s %.2f p99 %.2f\n",
      l, a, b, c, d, (c>0?a/c:0), (d>0?b/d:0) }'
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -sr); workers: $workers; ${secs}s per run; date: $(date -u +%F)"
for path in /json/main.json /index.html; do
  for c in 64 256; do
    row "wrk HTTP/1.1 $path c=$c" "$(run_wrk "http://127.0.0.1:$d_http$path" "$c")" "$(run_wrk "http://127.0.0.1:$n_http$path" "$c")"
  done
done
row "h2load HTTP/2+TLS /json/main.json c=64 m=10" "$(run_h2load "https://127.0.0.1:$d_https/json/main.json")" "$(run_h2load "https://127.0.0.1:$n_https/json/main.json")"

# A new corte every second, for both, while wrk runs.
( i=1; while true; do
    m=$((20 * 60 + i)); minute=$(printf '20240602_%02d%02d' $((m / 60 % 24)) $((m % 60)))
    "$gen" "$work/next.zip" "$minute" 5000 4
    cp "$work/next.zip" "$work/d/entrada/.n" && mv "$work/d/entrada/.n" "$work/d/entrada/${minute}_PREP.zip"
    unzip -q -o "$work/next.zip" -d "$work/www" && precompress
    i=$((i + 1)); sleep 1
  done ) &
swapper=$!
row "wrk /json/main.json c=64, a corte/second" "$(run_wrk "http://127.0.0.1:$d_http/json/main.json" 64)" "$(run_wrk "http://127.0.0.1:$n_http/json/main.json" 64)"
kill "$swapper" 2>/dev/null || true; swapper=

npid=$(cat "$work/nginx.pid")
printf 'peak memory: difusor %s MiB, nginx (master + workers) %s MiB\n' \
  "$(( $(peak_kb "$dpid") / 1024 ))" "$(( $(peak_kb "$npid") / 1024 ))"
printf 'access log lines: difusor %s, nginx %s\n' \
  "$(cat "$work"/d/bitacoras/access.log 2>/dev/null | wc -l)" "$(wc -l <"$work/nginx-logs/access.log")"
