#!/usr/bin/env bash
# A whole election night, accelerated: `difusor simulate` delivers a state-size election
# (5,000 casillas; GUB, DIP_LOC, AYUN) into the intake folder of a running `difusor serve`, a
# corte every 2 s, night after night (97 cortes each, 20:00 to 20:00), for the given minutes,
# while wrk reads /json/main.json and / at a steady rate (each connection waits 50 ms between
# requests). Midway the notice is switched on and, a minute later, off; at two thirds the
# server is stopped (SIGTERM) and started again on the same data folder.
#
# Every 10 s (one wrk window): requests, failed requests, p99, the server's RSS and open
# files, the journal's size on disk (the database and its write-ahead log, which SQLite
# reuses after each checkpoint), the live corte. Printed as a table, drawn as an SVG
# chart (gnuplot), and summed up at the end: failed requests (those of the restart's window
# apart: one process stopping and starting cannot answer meanwhile; behind a load balancer
# with two nodes it costs nothing, see bench/cluster.sh), RSS after the first five minutes
# (flat means no growth per corte), and whether every corte delivered went live.
#
# Ends with one line:
#   soak: minutes=N cortes=N cortes_live=N failed_requests=N rss_first_mb=N rss_last_mb=N rss_max_mb=N restart_failed=N
#
# Usage: bench/soak.sh [minutes] [casillas] [chart.svg]   (defaults 30, 5000, soak.svg)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
casillas=${2:-5000}
chart=${3:-soak.svg}

need=()
for tool in wrk curl gnuplot python3; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=("${need[@]/gnuplot/gnuplot-nox}")
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
cargo build --release --quiet --bin difusor
bin=$PWD/target/release/difusor

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
admin=$((port + 1))
pids=()
cleanup() {
  for p in "${pids[@]}" ${server:-}; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/difusor.toml" <<EOF
data_dir = "$work/data"
listen = ["127.0.0.1:$port"]
admin_listen = "127.0.0.1:$admin"
# A drill: results public at once, and simulated cortes of future nights taken.
publish_start = ""
publish_end = ""
corte_future_margin = ""
settle = "200ms"
EOF

# Starts the server in the background (its pid in $work/server.pid) and waits until its
# admin listener answers.
start_server() {
  "$bin" serve --config "$work/difusor.toml" >>"$work/server.log" 2>&1 &
  echo $! >"$work/server.pid"
  for _ in $(seq 300); do
    curl -fs -o /dev/null "http://127.0.0.1:$admin/status" && return 0
    sleep 0.1
  done
  echo "the server did not start; its log:" >&2
  cat "$work/server.log" >&2
  exit 1
}
start_server
server=$(cat "$work/server.pid")
mkdir -p "$work/data/entrada"

# The institute: night after night, two days apart so corte names never repeat.
(
  night=0
  while true; do
    fecha=$(date -d "2027-06-06 + $((2 * night)) days" +%F)
    "$bin" simulate --out "$work/data/entrada" --casillas "$casillas" \
      --elecciones GUB,DIP_LOC,AYUN --fecha "$fecha" --every 2s 2>>"$work/simulate.log"
    night=$((night + 1))
  done
) &
pids+=($!)

# Visitors come once the first corte is live (before it, every path answers 503).
for _ in $(seq 600); do
  curl -fs -o /dev/null "http://127.0.0.1:$port/json/main.json" && break
  sleep 0.1
done

# The visitors: a steady rate, most reading main.json, some the page.
cat >"$work/steady.lua" <<'EOF'
local paths = {"/json/main.json", "/json/main.json", "/json/main.json", "/"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
delay = function() return 50 end
EOF

ms() { # wrk latency (12.3us, 4.5ms, 1.2s) in ms
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else print "nan" }'
}

samples=$work/samples.tsv
printf 'min\trequests\tfailed\tp99_ms\trss_mb\tfds\tjournal_mb\twal_mb\tlive_corte\tevent\n' >"$samples"
windows=$((minutes * 6))
notice_on=$((windows / 2)); notice_off=$((notice_on + 6)); restart=$((windows * 2 / 3))
restart_failed=0
for w in $(seq 1 "$windows"); do
  event=-
  if [ "$w" -eq "$notice_on" ]; then
    "$bin" notice on --text "Simulacro: difusión suspendida un minuto" --config "$work/difusor.toml" >/dev/null
    event=notice-on
  elif [ "$w" -eq "$notice_off" ]; then
    "$bin" notice off --config "$work/difusor.toml" >/dev/null
    event=notice-off
  fi
  if [ "$w" -eq "$restart" ]; then
    # The restart happens inside this window: its failures are counted apart.
    (
      sleep 3
      kill -TERM "$server"
      while kill -0 "$server" 2>/dev/null; do sleep 0.05; done
      date +%s%N >"$work/stopped"
      start_server
      date +%s%N >"$work/started"
    ) &
    restarter=$!
  fi
  out=$(wrk -t1 -c32 -d10s --timeout 5s --latency -s "$work/steady.lua" "http://127.0.0.1:$port" 2>&1 || true)
  if [ "$w" -eq "$restart" ]; then
    wait "$restarter"
    server=$(cat "$work/server.pid")
    down_ms=$(( ($(cat "$work/started") - $(cat "$work/stopped")) / 1000000 ))
    event=restart
  fi
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  socket=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  failed=$(( ${socket:-0} + ${non2xx:-0} ))
  if [ "$w" -eq "$restart" ]; then restart_failed=$failed; fi
  p99=$(ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$server/status")
  fds=$(ls "/proc/$server/fd" | wc -l)
  journal=$(stat -c %s "$work/data/bitacora.sqlite" | awk '{printf "%.1f", $1 / 1e6}')
  wal=$(stat -c %s "$work/data/bitacora.sqlite-wal" 2>/dev/null | awk '{printf "%.1f", $1 / 1e6}')
  live=$(curl -s -o /dev/null -D - "http://127.0.0.1:$port/json/main.json" | awk -F': ' 'tolower($1) == "x-prep-corte" {gsub("\r", "", $2); print $2}')
  printf '%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(awk -v w="$w" 'BEGIN {print w / 6}')" \
    "${requests:-0}" "$failed" "$p99" "$rss" "$fds" "$journal" "${wal:-0}" "${live:-notice}" "$event" >>"$samples"
  tail -n 1 "$samples"
done
kill "${pids[@]}" 2>/dev/null || true
pkill -f "$bin simulate --out $work" 2>/dev/null || true
sleep 3 # the last corte delivered is taken

# Every corte the institute delivered must have gone live.
sed 's/\x1b\[[0-9;]*m//g' "$work/simulate.log" | grep -o 'corte delivered corte=[0-9_]*' | cut -d= -f2 |
  sort -u >"$work/delivered"
"$bin" history --json --events 0 --config "$work/difusor.toml" |
  python3 -c 'import json, sys; [print(c["corte_id"]) for c in json.load(sys.stdin)["cortes"]]' |
  sort -u >"$work/live"
cortes=$(wc -l <"$work/delivered")
cortes_live=$(comm -12 "$work/delivered" "$work/live" | wc -l)
missing=$(comm -23 "$work/delivered" "$work/live" | head -5 | tr '\n' ' ')

echo
column -t -s $'\t' "$samples"
echo
kinds=$(python3 - "$work/data/bitacora.sqlite" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(" ".join(f"{k}={n}" for k, n in db.execute("select kind, count(*) from events group by kind order by kind")))
EOF
)
echo "journal events by kind: $kinds"
if [ -n "$missing" ]; then echo "cortes delivered and never live (first five): $missing"; fi

gnuplot <<EOF
set terminal svg size 900,720 dynamic font "sans,11"
set output "$chart"
set datafile separator "\t"
set key off
set xlabel "minutes"
set grid
set multiplot layout 4,1 title "difusor soak: $minutes min, a corte every 2 s ($casillas casillas), steady load"
set ylabel "RSS (MB)"; set yrange [0:*]
plot "$samples" every ::1 using 1:5 with lines lw 2 lc rgb "#1f77b4"
set ylabel "p99 (ms)"
plot "$samples" every ::1 using 1:4 with lines lw 2 lc rgb "#d62728"
set ylabel "open files"
plot "$samples" every ::1 using 1:6 with lines lw 2 lc rgb "#2ca02c"
set ylabel "journal (MB)"
set key top left
plot "$samples" every ::1 using 1:7 with lines lw 2 lc rgb "#9467bd" title "database", "" every ::1 using 1:8 with lines lw 1 dt 2 lc rgb "#8c564b" title "write-ahead log"
unset multiplot
EOF
echo "chart: $chart"

summary=$(awk -F'\t' -v restart="$restart" -v skip=30 'NR > 1 {
    w = NR - 1
    if (w != restart) failed += $3
    if (w > skip) { if (first == "") first = $5; last = $5; if ($5 > max) max = $5 }
  } END { printf "failed_requests=%d rss_first_mb=%s rss_last_mb=%s rss_max_mb=%s", failed, first, last, max }' "$samples")
echo "the restart: the server was down ${down_ms} ms (stop to admin listener answering); its window saw $restart_failed failed requests"
echo "soak: minutes=$minutes cortes=$cortes cortes_live=$cortes_live $summary restart_failed=$restart_failed"
