#!/usr/bin/env bash
# The same corte served by difusor and by nginx (Debian's, with gzip_static and brotli_static
# and the same precompressed files), both with access logs on and the same number of workers,
# on this machine in the same run:
#   - wrk, HTTP/1.1 keep-alive, Accept-Encoding: gzip, br, /json/main.json and /index.html,
#     64 and 256 connections;
#   - h2load, HTTP/2 over TLS, /json/main.json, 64 connections x 10 streams, and a 1.4 MB
#     results CSV without compression, 16 connections x 4 streams;
#   - new visitors: h2load over TLS in rounds of 64 new connections, each a full handshake
#     (no resumption), two requests (/index.html, /json/main.json) and a close;
#   - many idle visitors: 10,000 keep-alive connections from 40 addresses, each re-reading
#     /json/main.json every 5 s (bench/idle_visitors.py);
#   - wrk again while a new corte goes live every second (difusor: renamed into its intake
#     folder; nginx: unzipped over its document root, as difusores do it today).
# For each server and run: requests/s (handshakes/s for new visitors), p99 latency, the
# server's CPU seconds per 100k requests (utime + stime from /proc/<pid>/stat of the server
# and its workers, before and after the run; per 100k handshakes for new visitors), its peak
# resident memory during the run (sampled every 0.2 s), and the ratios difusor/nginx.
# The idle run also gives the memory each open connection costs.
#
# Usage: bench/serve-vs-nginx.sh [seconds per run] [idle connections]   (default 10, 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
idle=${2:-10000}
workers=$(nproc)

need=()
for tool in nginx wrk h2load curl unzip brotli python3; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
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
worker_rlimit_nofile 20000;
events { worker_connections 16384; }
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

# difusor, same workers, no rate or handshake limit (the load comes from one address).
"$bin" serve --data-dir "$work/d" --workers "$workers" --listen "127.0.0.1:$d_http" \
  --tls-listen "127.0.0.1:$d_https" --tls-cert "$cert" --tls-key "$key" \
  --admin-listen "127.0.0.1:$d_admin" --rate-per-address 0 --tls-handshakes-per-address 0 --settle 200ms --publish-start "" 2>"$work/difusor.log" &
dpid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$d_admin/status" && break; sleep 0.1; done
cp "$work/20240602_2000_PREP.zip" "$work/d/entrada/.p" && mv "$work/d/entrada/.p" "$work/d/entrada/20240602_2000_PREP.zip"
until curl -s -H 'Accept-Encoding: br' -o /dev/null -D - "http://127.0.0.1:$d_http/index.html" | grep -qi '^content-encoding: br'; do sleep 0.1; done
until curl -s -H 'Accept-Encoding: br' -o /dev/null -D - "http://127.0.0.1:$d_http/json/main.json" | grep -qi '^content-encoding: br'; do sleep 0.1; done
for port in $d_http $n_http; do
  curl -s -H 'Accept-Encoding: gzip, br' -o /dev/null -w "port $port: %{http_code} %{size_download} bytes\n" "http://127.0.0.1:$port/json/main.json"
done

npid=$(cat "$work/nginx.pid")
hz=$(getconf CLK_TCK)
family() { # a process and its children (nginx's workers)
  local p
  for p in "$@"; do echo "$p"; pgrep -P "$p" 2>/dev/null || true; done
}
ticks() { # CPU time (utime + stime, clock ticks) of the processes and their children
  local total=0 p
  for p in $(family "$@"); do
    total=$((total + $(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0)))
  done
  echo "$total"
}
rss_kb() { # resident memory of the processes and their children, KiB
  local total=0 p
  for p in $(family "$@"); do
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# Clients print "count seconds p99_ms": requests (or handshakes) done, over how long.
run_wrk() { # url connections
  wrk -t2 -c"$2" -d"${secs}s" --latency -H 'Accept-Encoding: gzip, br' "$1" 2>/dev/null | awk '
    / requests in / {n=$1; t=$4; if (t ~ /ms$/) {sub(/ms/,"",t); t=t/1000} else if (t ~ /m$/) {sub(/m/,"",t); t=t*60} else {sub(/s/,"",t)}}
    /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p99=v}
    END {printf "%d %.3f %.2f", n, t, p99}'
}
p99_of_log() { # h2load --log-file lines: start, status, microseconds
  awk '{print $3}' "$1" | sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.2f", a[i]/1000}'
}
run_h2load() { # url [connections] [streams each] [Accept-Encoding, empty for none]
  local log=$work/h2load.log c=${2:-64} m=${3:-10} ae=${4-gzip, br}
  rm -f "$log"
  h2load -D "$secs" -c "$c" -m "$m" -t 2 --log-file="$log" ${ae:+-H "Accept-Encoding: $ae"} "$1" >"$work/h2load.out" 2>&1 || true
  local n; n=$(awk '/^requests:/ {print $8}' "$work/h2load.out")
  echo "${n:-0} $secs $(p99_of_log "$log")"
}
run_new_visitors() { # base URL: rounds of 64 new TLS connections, two requests each
  local log=$work/h2load.log start end handshakes=0
  rm -f "$log"
  start=$(date +%s.%N)
  end=$(awk -v s="$start" -v d="$secs" 'BEGIN {printf "%.3f", s + d}')
  while awk -v e="$end" -v n="$(date +%s.%N)" 'BEGIN {exit !(n < e)}'; do
    h2load -c 64 -n 128 -m 1 -t 2 --log-file="$work/round.log" -H 'Accept-Encoding: gzip, br' \
      "$1/index.html" "$1/json/main.json" >"$work/h2load.out" 2>&1 || true
    cat "$work/round.log" >>"$log"
    grep -q '^requests: 128 total, 128 started, 128 done, 128 succeeded' "$work/h2load.out" \
      || { echo "a round of new visitors failed:" >&2; cat "$work/h2load.out" >&2; }
    handshakes=$((handshakes + 64))
  done
  echo "$handshakes $(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN {printf "%.3f", n - s}') $(p99_of_log "$log")"
}

# measure "pids" client args…  → "rate/s p99_ms cpu_s_per_100k peak_MiB"
measure() {
  local pids=$1; shift
  echo 0 >"$work/peak"
  ( while :; do r=$(rss_kb $pids); [ "$r" -gt "$(cat "$work/peak")" ] && echo "$r" >"$work/peak"; sleep 0.2; done ) &
  local sampler=$! t0 t1 out
  t0=$(ticks $pids)
  out=$("$@")
  t1=$(ticks $pids)
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  read -r n t p99 <<<"$out"
  awk -v n="$n" -v t="$t" -v p="$p99" -v c=$((t1 - t0)) -v hz="$hz" -v m="$(cat "$work/peak")" 'BEGIN {
    printf "%.0f %.2f %.3f %.0f", (t>0?n/t:0), p, (n>0?c/hz/n*100000:0), m/1024 }'
}
row() { # label difusor_result nginx_result
  read -r da dp dc dm <<<"$2"; read -r na np nc nm <<<"$3"
  awk -v l="$1" -v a="$da" -v b="$dp" -v c="$dc" -v d="$dm" -v e="$na" -v f="$np" -v g="$nc" -v h="$nm" 'BEGIN {
    printf "%-44s difusor %7.0f/s p99 %7.2f ms cpu %6.3f s mem %4d MiB | nginx %7.0f/s p99 %7.2f ms cpu %6.3f s mem %4d MiB | ratio cpu %.2f p99 %.2f\n",
      l, a, b, c, d, e, f, g, h, (g>0?c/g:0), (f>0?b/f:0) }'
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -sr); workers: $workers; ${secs}s per run; date: $(date -u +%F)"
echo "cpu: server CPU seconds per 100k requests (per 100k handshakes for new visitors); mem: peak resident memory during the run"
for path in /json/main.json /index.html; do
  for c in 64 256; do
    row "wrk HTTP/1.1 $path c=$c" "$(measure "$dpid" run_wrk "http://127.0.0.1:$d_http$path" "$c")" \
      "$(measure "$npid" run_wrk "http://127.0.0.1:$n_http$path" "$c")"
  done
done
row "h2load HTTP/2+TLS /json/main.json c=64 m=10" "$(measure "$dpid" run_h2load "https://127.0.0.1:$d_https/json/main.json")" \
  "$(measure "$npid" run_h2load "https://127.0.0.1:$n_https/json/main.json")"
csv=/datos/ENT_GUB_2024.csv # 1.4 MB, sent as it is (no Accept-Encoding): frames under flow control
row "h2load HTTP/2+TLS $csv c=16 m=4" "$(measure "$dpid" run_h2load "https://127.0.0.1:$d_https$csv" 16 4 "")" \
  "$(measure "$npid" run_h2load "https://127.0.0.1:$n_https$csv" 16 4 "")"
row "new TLS visitors (handshakes/s, 2 requests)" "$(measure "$dpid" run_new_visitors "https://127.0.0.1:$d_https")" \
  "$(measure "$npid" run_new_visitors "https://127.0.0.1:$n_https")"

# Many idle visitors: every connection open and in use, then the steady state measured.
run_idle() { # pid port → "rate/s p99_ms cpu_s_per_100k peak_MiB KiB_per_connection"
  local before open t0 t1 result
  before=$(rss_kb "$1")
  coproc IDLE { python3 bench/idle_visitors.py 127.0.0.1 "$2" /json/main.json "$idle" 5 "$((secs * 2))"; }
  read -r _ open <&"${IDLE[0]}"
  open_kb=$(rss_kb "$1"); t0=$(ticks "$1")
  echo go >&"${IDLE[1]}"
  read -r result <&"${IDLE[0]}"
  t1=$(ticks "$1"); wait "$IDLE_PID" 2>/dev/null || true
  read -r _ n _ failed _ _ _ p99 _ <<<"$result"
  [ "$failed" = 0 ] || echo "idle visitors: $failed requests failed" >&2
  awk -v n="$n" -v t="$((secs * 2))" -v p="$p99" -v c=$((t1 - t0)) -v hz="$hz" -v m="$open_kb" -v b="$before" -v o="$open" 'BEGIN {
    printf "%.0f %.2f %.3f %.0f %.1f", n/t, p, (n>0?c/hz/n*100000:0), m/1024, (m-b)/o }'
}
ulimit -n "$(ulimit -Hn)"
d_idle=$(run_idle "$dpid" "$d_http"); n_idle=$(run_idle "$npid" "$n_http")
row "$idle idle keep-alive visitors, 5 s re-read" "$d_idle" "$n_idle"
printf 'memory per open connection: difusor %s KiB, nginx %s KiB\n' "$(echo "$d_idle" | awk '{print $5}')" "$(echo "$n_idle" | awk '{print $5}')"

# A new corte every second, for both, while wrk runs.
( i=1; while true; do
    m=$((20 * 60 + i)); minute=$(printf '20240602_%02d%02d' $((m / 60 % 24)) $((m % 60)))
    "$gen" "$work/next.zip" "$minute" 5000 4
    cp "$work/next.zip" "$work/d/entrada/.n" && mv "$work/d/entrada/.n" "$work/d/entrada/${minute}_PREP.zip"
    unzip -q -o "$work/next.zip" -d "$work/www" && precompress
    i=$((i + 1)); sleep 1
  done ) &
swapper=$!
row "wrk /json/main.json c=64, a corte/second" "$(measure "$dpid" run_wrk "http://127.0.0.1:$d_http/json/main.json" 64)" \
  "$(measure "$npid" run_wrk "http://127.0.0.1:$n_http/json/main.json" 64)"
kill "$swapper" 2>/dev/null || true; swapper=

printf 'access log lines: difusor %s, nginx %s\n' \
  "$(cat "$work"/d/bitacoras/access.log 2>/dev/null | wc -l)" "$(wc -l <"$work/nginx-logs/access.log")"
