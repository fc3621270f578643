#!/usr/bin/env bash
# Visitors' p99 while the server does slow work on the side: wrk measures `/json/main.json`
# on the public port alone, then while thousands of SFTP connections from an address outside
# `sftp_allow` are refused (each one journaled), then while national-size data packages
# (three results CSVs of 170,000 actas each, every one inspected) arrive in the intake folder,
# then during both.
#
# Each binary given is measured the same way, one after the other, on a data folder of its own
# on the real disk (journal fsyncs cost what they cost there); with none, this checkout's
# release build. To compare with an older build, copy its binary aside first:
#   bench/blocking.sh /tmp/difusor-before target/release/difusor
#
# Usage: bench/blocking.sh [binary...]
#   env: SECONDS_PER_RUN (default 20), SFTP_RATE (connections a second, default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_RUN:-20}
rate=${SFTP_RATE:-1000}

for tool in wrk curl python3 ssh-keygen; do
  command -v "$tool" >/dev/null 2>&1 || { echo "needs $tool" >&2; exit 1; }
done
cargo build --release --quiet --bin difusor --example bench_csv
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(target/release/difusor)

work=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
  [ -n "${flood:-}" ] && kill "$flood" 2>/dev/null || true
  [ -n "${dropper:-}" ] && kill "$dropper" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Three national results CSVs per package, 2 x $packages packages (for two phases); each
# package's rows differ (one acta more), so no package is a duplicate of another.
packages=3
python3 - "$work" $((2 * packages)) target/release/examples/bench_csv <<'PY'
import os, subprocess, sys, zipfile
work, count, gen = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(count):
    corte = f"20240602_21{i:02d}"
    with zipfile.ZipFile(f"{work}/{corte}_PREP_NAC.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for n, election in enumerate(["PRES", "SEN", "DIP_FED"]):
            csv = f"{work}/{election}.csv"
            subprocess.run([gen, csv, str(170000 + 3 * i + n)], check=True)
            z.write(csv, f"{election}_2024.csv")
            os.remove(csv)
PY
ssh-keygen -q -t ed25519 -N "" -f "$work/id_ed25519"
cp "$work/id_ed25519.pub" "$work/authorized_keys"
python3 - "$work/site.zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("index.html", "<html><body>Corte 20240602_2000</body></html>")
    z.writestr("json/main.json", '{"corte":"20240602_2000","actas":' + "1" * 3000 + "}")
PY

# Opens and drops TCP connections to the SFTP port for $2 seconds at $3 a second in all,
# from 8 threads (each at most one connection at a time); prints how many it made.
cat >"$work/flood.py" <<'PY'
import socket, sys, threading, time
port, secs, rate = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
start = time.time()
end = start + secs
made = [0] * 8
def run(k):
    every = 8 / rate
    due = start + k * every / 8
    while due < end:
        now = time.time()
        if due > now:
            time.sleep(due - now)
        due += every
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.close()
            made[k] += 1
        except OSError:
            pass
threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(sum(made))
PY

p99() { awk '$1 == "99%" {print $2}'; }
published() {
  curl -s "http://127.0.0.1:$admin/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"]["published"])'
}
# Runs wrk for the phase; prints its p99.
load() { wrk -t1 -c64 -d"${secs}s" --latency "http://127.0.0.1:$port/json/main.json" | p99; }
# Drops the national packages numbered $1.. ($packages of them) into the intake folder, spread
# over the phase, in the background.
drop_packages() {
  local first=$1
  (
    for i in $(seq "$first" $((first + packages - 1))); do
      local f; f=$(ls "$work"/*_PREP_NAC.zip | sed -n "$((i + 1))p")
      cp "$f" "$data/entrada/.nac.part"
      mv "$data/entrada/.nac.part" "$data/entrada/$(basename "$f")"
      sleep $((secs / (packages + 1)))
    done
  ) &
  dropper=$!
}
# Waits until $1 cortes were published in all.
wait_published() {
  for _ in $(seq 1200); do [ "$(published)" -ge "$1" ] && return; sleep 0.1; done
  echo "timed out waiting for $1 publications" >&2
}

measure() { # binary
  local bin=$1
  data="$work/data-$RANDOM"
  port=$((20000 + RANDOM % 10000)); admin=$((port + 1)); local sftp=$((port + 2))
  "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    --settle 200ms --publish-start "" --corte-future-margin "" --corte-window-margin "" \
    --sftp-listen "127.0.0.1:$sftp" --sftp-authorized-keys "$work/authorized_keys" \
    --sftp-allow 192.0.2.1 2>"$work/difusor.log" &
  pid=$!
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$admin/status" && break; sleep 0.1; done
  cp "$work/site.zip" "$data/entrada/.site.part"
  mv "$data/entrada/.site.part" "$data/entrada/20240602_2000_PREP_SITIO.zip"
  wait_published 1

  local quiet flood_p99 inspect_p99 both_p99 refused_flood refused_both
  quiet=$(load)

  python3 "$work/flood.py" "$sftp" "$secs" "$rate" >"$work/flood.out" & flood=$!
  flood_p99=$(load)
  wait "$flood"; flood=; refused_flood=$(cat "$work/flood.out")

  drop_packages 0
  inspect_p99=$(load)
  wait "$dropper"; wait_published $((1 + packages))

  python3 "$work/flood.py" "$sftp" "$secs" "$rate" >"$work/flood.out" & flood=$!
  drop_packages "$packages"
  both_p99=$(load)
  wait "$flood"; flood=; refused_both=$(cat "$work/flood.out")
  wait "$dropper"; wait_published $((1 + 2 * packages))

  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  printf '%-26s %10s %10s %10s %10s   (SFTP connections refused: %s, %s)\n' \
    "$bin" "$quiet" "$flood_p99" "$inspect_p99" "$both_p99" "$refused_flood" "$refused_both"
}

echo "p99 of wrk -t1 -c64 -d${secs}s --latency /json/main.json, alone and while: $rate refused SFTP connections a second are offered; $packages national packages (3 x 170,000-acta CSVs) arrive; both"
printf '%-26s %10s %10s %10s %10s\n' binary quiet sftp-flood inspection both
for bin in "${bins[@]}"; do
  measure "$bin"
done
