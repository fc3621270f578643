#!/usr/bin/env bash
# Three difusor nodes on this machine behind HAProxy, configured by the recipes of
# examples/cluster/ (difusor-primary.toml, difusor-replica.toml, haproxy.cfg) with only
# addresses, ports and paths rewritten for loopback. node1 receives a state-size site package
# in its watched folder and feeds node2 and node3 (`replica_of`, HTTPS, a bearer token).
#   - requests/s through HAProxy over 1, 2 and 3 nodes: wrk, HTTP/1.1 keep-alive, 64
#     connections, /json/main.json, each request from one of 10,000 visitors (its address in
#     X-Forwarded-For, as a cache tier in front sends it; HAProxy keeps each on one node);
#   - the skew over N cortes published back to back at node1: for each corte, the time
#     between the first and the last node to make it live, from each node's journal
#     (`difusor history --json`, `live_at`): min, median, p90, max;
#   - a node killed (kill -9) under load and restarted: the requests wrk saw fail.
# Ends with one line: `cluster: nodes=3 cortes=N skew_max_ms=N failed_requests=N`.
#
# On one machine the three nodes, HAProxy and wrk share the same cores: the requests/s show
# what HAProxy and its health checks cost and that the load spreads, not what three
# machines serve (each node would have all of a machine's cores; see docs/capacity.md).
#
# Usage: bench/cluster.sh [seconds per run] [cortes]   (defaults 10, 100)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
cortes=${2:-100}

need=()
for tool in haproxy wrk socat curl python3; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --quiet --bin difusor --example bench_package
bin=$PWD/target/release/difusor
gen=$PWD/target/release/examples/bench_package
recipes=$PWD/examples/cluster

work=$(mktemp -d)
base=$((20000 + RANDOM % 10000))
# node i (1..3): public base+10i, admin +1, health +2, feed +3; HAProxy base, base+1 (TLS),
# base+2 (statistics).
port() { echo $((base + 10 * $1 + $2)); }
pids=()
cleanup() {
  for p in "${pids[@]}" ${wrkpid:-}; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

# Secrets and files the recipes name, under $work/etc.
mkdir -p "$work/etc"
"$bin" init --self-signed --dir "$work/pki" >/dev/null 2>&1
cp "$work/pki/tls/cert.pem" "$work/etc/node.pem"; cp "$work/pki/tls/key.pem" "$work/etc/node.key"
cp "$work/pki/tls/cert.pem" "$work/etc/cluster-ca.pem"
head -c 32 /dev/urandom | base64 >"$work/etc/feed.token"
: >"$work/etc/institute.keys"
cat "$work/pki/tls/cert.pem" "$work/pki/tls/key.pem" >"$work/etc/prep.pem"

# node1 from the primary's file; node2 and node3 from the replica's, written for 10.0.0.2.
node_config() { # index recipe recipe_address
  local i=$1 addr=$3
  sed -e "s#/etc/difusor/#$work/etc/#g" \
      -e "s#$addr:8080#127.0.0.1:$(port "$i" 0)#" \
      -e "s#$addr:9181#127.0.0.1:$(port "$i" 2)#" \
      -e "s#$addr:9443#127.0.0.1:$(port "$i" 3)#" \
      -e "s#10.0.0.1:9443#127.0.0.1:$(port 1 3)#" \
      -e "s#^sftp_listen = .*#sftp_listen = \"\"#" \
      -e "s#http://10.0.0.10:6081/#http://127.0.0.1:$((base + 9))/#" \
      "$recipes/$2" >"$work/node$i.toml"
}
node_config 1 difusor-primary.toml 10.0.0.1
node_config 2 difusor-replica.toml 10.0.0.2
node_config 3 difusor-replica.toml 10.0.0.2
start_node() { # index
  local i=$1
  "$bin" serve --config "$work/node$i.toml" --data-dir "$work/node$i" \
    --listen "127.0.0.1:$(port "$i" 0)" --admin-listen "127.0.0.1:$(port "$i" 1)" \
    --publish-start "" --corte-future-margin "" --corte-window-margin "" --settle 200ms \
    --rate-per-address 0 2>>"$work/node$i.log" &
  pids[$i]=$!
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$(port "$i" 1)/status" && return; sleep 0.1; done
  echo "node$i did not start:"; tail -20 "$work/node$i.log"; exit 1
}
live() { # index: the node's live corte
  curl -s "http://127.0.0.1:$(port "$1" 1)/status" | python3 -c 'import json,sys; l=json.load(sys.stdin)["live"]; print(l["corte"] if l else "")'
}
wait_live() { # index corte
  for _ in $(seq 600); do [ "$(live "$1")" = "$2" ] && return; sleep 0.05; done
  echo "node$1 never served corte $2:"; tail -20 "$work/node$1.log"; exit 1
}
deliver() { # corte: a state-size complete site package renamed into node1's watched folder
  "$gen" "$work/next.zip" "$1" 5000 4
  mv "$work/next.zip" "$work/node1/entrada/${1}_PREP.zip"
}
corte_id() { # n: the corte n minutes after 2024-06-02 20:00
  local m=$((20 * 60 + $1))
  printf '20240602_%02d%02d' $((m / 60 % 24)) $((m % 60))
}

start_node 1
deliver "$(corte_id 0)"
wait_live 1 "$(corte_id 0)"
start_node 2
start_node 3
wait_live 2 "$(corte_id 0)"; wait_live 3 "$(corte_id 0)"

sed -e "s#^    bind :80\$#    bind 127.0.0.1:$base#" \
    -e "s#bind :443 ssl crt /etc/haproxy/certs/prep.pem#bind 127.0.0.1:$((base + 1)) ssl crt $work/etc/prep.pem#" \
    -e "s#/run/haproxy/admin.sock#$work/admin.sock#" \
    -e "s#bind 127.0.0.1:8404#bind 127.0.0.1:$((base + 2))#" \
    -e "s#server node1 10.0.0.1:8080#server node1 127.0.0.1:$(port 1 0) port $(port 1 2)#" \
    -e "s#server node2 10.0.0.2:8080#server node2 127.0.0.1:$(port 2 0) port $(port 2 2)#" \
    -e "s#server node3 10.0.0.3:8080#server node3 127.0.0.1:$(port 3 0) port $(port 3 2)#" \
    "$recipes/haproxy.cfg" >"$work/haproxy.cfg"
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids[0]=$!
api() { echo "$1" | socat stdio "$work/admin.sock"; }
state() { # server: its status in HAProxy
  api "show stat" | awk -F, -v s="$1" '$1 == "nodes" && $2 == s {print $18}'
}
sessions() { # server: requests HAProxy sent it
  api "show stat" | awk -F, -v s="$1" '$1 == "nodes" && $2 == s {print $8}'
}
wait_state() { # server status
  for _ in $(seq 300); do [ "$(state "$1")" = "$2" ] && return; sleep 0.1; done
  echo "HAProxy: $1 never $2"; cat "$work/haproxy.log"; exit 1
}
for _ in $(seq 100); do [ -S "$work/admin.sock" ] && break; sleep 0.1; done
for n in node1 node2 node3; do wait_state "$n" UP; done

# Each request from one of 10,000 visitors, as a cache tier forwards them.
cat >"$work/visitors.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  local v = (n * 7919) % 10000
  return wrk.format(nil, nil, {["X-Forwarded-For"] = string.format("10.9.%d.%d", math.floor(v / 100), v % 100)})
end
LUA
url="http://127.0.0.1:$base/json/main.json"
wrk_run() { # seconds [url]: wrk's output
  wrk -t2 -c64 -d"$1s" --latency -s "$work/visitors.lua" -H 'Accept-Encoding: gzip, br' "${2:-$url}" 2>&1
}
requests() { awk '/ requests in / {print $1}'; }
cpu_ms() { # pid: CPU time (user + system) it has used, ms
  awk -v t="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / t)}' "/proc/$1/stat"
}
rps() { awk '/Requests\/sec/ {printf "%.0f", $2}'; }
p99() { awk '/^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.2f", v}'; }
failed() { # wrk's output: responses >= 400 and socket errors
  awk '/Non-2xx or 3xx responses/ {n += $NF} /Socket errors/ {gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) n += $i} END {print n + 0}'
}

# measure label [url]: wrk against url (HAProxy's by default): requests/s, p99, failures,
# the requests each node got, and the CPU time HAProxy and the nodes spent per request.
measure() {
  local before=(0 "$(sessions node1)" "$(sessions node2)" "$(sessions node3)")
  local cpu=("$(cpu_ms "${pids[0]}")" "$(cpu_ms "${pids[1]}")" "$(cpu_ms "${pids[2]}")" "$(cpu_ms "${pids[3]}")")
  local out split="" i
  out=$(wrk_run "$secs" "${2:-$url}")
  for i in 1 2 3; do split="$split node$i $(( $(sessions "node$i") - before[i] ))"; done
  printf '%-44s %8s req/s  p99 %7s ms  failed %s  (through HAProxy, per node:%s)\n' \
    "$1:" "$(rps <<<"$out")" "$(p99 <<<"$out")" "$(failed <<<"$out")" "$split"
  local haproxy_cpu=$(( $(cpu_ms "${pids[0]}") - cpu[0] ))
  local nodes_cpu=$(( $(cpu_ms "${pids[1]}") + $(cpu_ms "${pids[2]}") + $(cpu_ms "${pids[3]}") - cpu[1] - cpu[2] - cpu[3] ))
  awk -v r="$(requests <<<"$out")" -v h="$haproxy_cpu" -v d="$nodes_cpu" 'BEGIN {
    printf "%-44s CPU per 1,000 requests: HAProxy %.1f ms, difusor %.1f ms (one core would answer: HAProxy %.0f req/s, difusor %.0f req/s)\n",
      "", h * 1000 / r, d * 1000 / r, (h > 0 ? r * 1000 / h : 0), (d > 0 ? r * 1000 / d : 0) }'
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -sr); HAProxy $(haproxy -v | awk 'NR==1 {print $3}'); ${secs}s per run; date: $(date -u +%F)"
echo "three nodes, HAProxy and wrk on the same $(nproc) cores: the figures show what the balancer costs and that the load spreads, not what three machines serve"
# What a visitor's browser transfers (body and headers, brotli where offered): the first
# visit's files, then each re-read of main.json.
weight() { # paths…: bytes
  local total=0 p
  for p in "$@"; do
    total=$((total + $(curl -s -o /dev/null -H 'Accept-Encoding: gzip, br' -w '%{size_download} + %{size_header}' "http://127.0.0.1:$base$p" | awk '{print $1 + $3}')))
  done
  echo "$total"
}
echo "a first visit (index.html, css/prep.css, js/prep.js, json/main.json): $(weight /index.html /css/prep.css /js/prep.js /json/main.json) bytes; each re-read of json/main.json: $(weight /json/main.json) bytes; the package of a state-size corte: $(stat -c %s "$work/node1/archivo"/*/* 2>/dev/null | sort -n | tail -1) bytes"
for n in 1 2 3; do
  for i in 1 2 3; do
    if [ "$i" -le "$n" ]; then api "enable server nodes/node$i" >/dev/null; wait_state "node$i" UP
    else api "disable server nodes/node$i" >/dev/null; wait_state "node$i" MAINT; fi
  done
  # New visitors each run: none is held to a node by an earlier run.
  api "clear table nodes" >/dev/null
  measure "through HAProxy, $n node(s)"
done
measure "node1 directly, no HAProxy" "http://127.0.0.1:$(port 1 0)/json/main.json"

# Skew: cortes published back to back at node1 (each delivered once node1 made the previous
# one live); every node must make every one live.
for c in $(seq 1 "$cortes"); do
  deliver "$(corte_id "$c")"
  wait_live 1 "$(corte_id "$c")"
done
last=$(corte_id "$cortes")
wait_live 2 "$last"; wait_live 3 "$last"
# skew [corte]: "count min median p90 max" in ms over the last $cortes cortes, or for one corte.
skew() {
  for i in 1 2 3; do
    "$bin" history --json --events 1 --data-dir "$work/node$i" >"$work/history$i.json"
  done
  python3 - "$work" "$cortes" "${1:-}" <<'PY'
import json, sys
from datetime import datetime
work, cortes, only = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def at(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))
live = []
for i in (1, 2, 3):
    h = json.load(open(f"{work}/history{i}.json"))
    live.append({c["corte_id"]: at(c["live_at"]) for c in h["cortes"]})
ids = [only] if only else sorted(live[0])[-cortes:]
missing = [(i + 1, c) for c in ids for i in range(3) if c not in live[i]]
if missing:
    print(f"cortes some node never made live: {missing[:5]}", file=sys.stderr)
    sys.exit(1)
skews = sorted((max(l[c] for l in live) - min(l[c] for l in live)).total_seconds() * 1000 for c in ids)
q = lambda p: skews[min(len(skews) - 1, int(p * len(skews)))]
print(f"{len(ids)} {skews[0]:.0f} {q(0.5):.0f} {q(0.9):.0f} {skews[-1]:.0f}")
PY
}
read -r skew_n skew_min skew_median skew_p90 skew_max <<<"$(skew)"
echo "skew over $skew_n cortes (first to last node live, ms): min $skew_min  median $skew_median  p90 $skew_p90  max $skew_max"

# A node killed under load and restarted: what wrk saw fail.
api "clear table nodes" >/dev/null
wrk_run "$secs" >"$work/kill.out" &
wrkpid=$!
sleep $((secs / 3))
kill -9 "${pids[2]}"; wait "${pids[2]}" 2>/dev/null || true
sleep $((secs / 3))
start_node 2
wait "$wrkpid"; wrkpid=
wait_state node2 UP
failed_requests=$(failed <"$work/kill.out")
printf 'node2 killed (kill -9) at %ds of %ds under load, restarted at %ds: %s req/s, failed requests %s\n' \
  $((secs / 3)) "$secs" $((2 * secs / 3)) "$(rps <"$work/kill.out")" "$failed_requests"

peak() { awk '/VmHWM/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
printf 'peak memory, state-size site: node1 %s MiB, node2 %s MiB (since its restart), node3 %s MiB, HAProxy %s MiB\n' \
  "$(peak "${pids[1]}")" "$(peak "${pids[2]}")" "$(peak "${pids[3]}")" "$(peak "${pids[0]}")"

# One national-size corte (170,000 actas x 3 elections): what it costs the feed and each
# node's memory.
national=$(corte_id $((cortes + 1)))
"$gen" "$work/national.zip" "$national" 170000 3
national_mb=$(awk -v b="$(stat -c %s "$work/national.zip")" 'BEGIN {printf "%.1f", b / 1e6}')
mv "$work/national.zip" "$work/node1/entrada/${national}_PREP.zip"
for i in 1 2 3; do wait_live "$i" "$national"; done
read -r _ _ _ _ national_skew <<<"$(skew "$national")"
printf 'a national-size corte (%s MB package): first to last node live %s ms; peak memory node1 %s MiB, node2 %s MiB, node3 %s MiB\n' \
  "$national_mb" "$national_skew" "$(peak "${pids[1]}")" "$(peak "${pids[2]}")" "$(peak "${pids[3]}")"
sleep 2 # the compressed variants are made after the corte goes live
echo "national site: a first visit $(weight /index.html /css/prep.css /js/prep.js /json/main.json) bytes; each re-read of json/main.json: $(weight /json/main.json) bytes"
api "clear table nodes" >/dev/null
measure "through HAProxy, 3 nodes, national main.json"
echo "cluster: nodes=3 cortes=$skew_n skew_max_ms=$skew_max failed_requests=$failed_requests"
