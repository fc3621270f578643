#!/usr/bin/env bash
# HTTPS pull of a 200 MB package: nginx plays the institute's service (HTTPS, `autoindex_format
# json`), and each run a new package and its .sha256 appear in its folder. Measured, in the
# same run, from the moment the package appears:
# - difusor (`pull_url` on the index, polled every 100 ms) until the corte is live: download,
#   sidecar check, archive with fsync, verification and publication;
# - what a difusor's cron script does instead: `curl` the package and its sidecar,
#   `sha256sum -c`, `unzip` into a web root (no fsync, no archive, no polling delay).
#
# Usage: bench/pull.sh [runs]   (default 3; as root, to install nginx if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}

need=()
for tool in nginx curl unzip python3; do command -v "$tool" >/dev/null 2>&1 || [ -x /usr/sbin/"$tool" ] || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx curl unzip python3 >/dev/null
fi
cargo build --release --quiet --bin difusor
bin=$PWD/target/release/difusor
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d)
chmod 755 "$work"   # nginx's workers run as another user
port=$((20000 + RANDOM % 10000)); admin=$((port + 1)); https=$((port + 2))
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" init --dir "$work/tls-maker" --self-signed >/dev/null
mkdir -p "$work/served/prep" "$work/pkg" "$work/logs"

# One 200 MB package per run (each a new corte): one stored, incompressible member and the
# pages the corte needs.
python3 - "$work/pkg" "$runs" <<'PY'
import hashlib, os, sys, zipfile
filler = os.urandom(200 * 1000 * 1000)
for i in range(1, int(sys.argv[2]) + 1):
    name = f"20240602_2{i:03d}_PREP_SITIO_CAMP.zip"
    path = os.path.join(sys.argv[1], name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("index.html", f"<html><body>Corte {i}</body></html>")
        z.writestr("json/main.json", f'{{"corte":"{i}"}}')
        z.writestr("datos/relleno.bin", filler)
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    with open(path + ".sha256", "w") as f:
        f.write(f"{digest}  {name}\n")
PY
size=$(stat -c %s "$work/pkg/20240602_2001_PREP_SITIO_CAMP.zip")

cat >"$work/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/logs/error.log;
daemon on;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  server {
    listen 127.0.0.1:$https ssl;
    ssl_certificate $work/tls-maker/tls/cert.pem;
    ssl_certificate_key $work/tls-maker/tls/key.pem;
    root $work/served;
    location /prep/ { autoindex on; autoindex_format json; }
  }
}
CONF
"$nginx_bin" -c "$work/nginx.conf" -p "$work"

"$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
  --publish-start "" --max-package-bytes 1GiB --evidence-sidecar required \
  --pull-url "https://127.0.0.1:$https/prep/" --pull-ca "$work/tls-maker/tls/cert.pem" \
  --pull-interval 100ms 2>"$work/difusor.log" &
pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$admin/status" && break; sleep 0.1; done

now() { date +%s.%N; }
live() { curl -s "http://127.0.0.1:$admin/status" | python3 -c 'import json,sys; print((json.load(sys.stdin).get("live") or {}).get("corte"))'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
appear() { # name: the sidecar, then the package, renamed into the served folder
  cp "$work/pkg/$1.sha256" "$work/served/prep/.$1.sha256" && mv "$work/served/prep/.$1.sha256" "$work/served/prep/$1.sha256"
  cp "$work/pkg/$1" "$work/served/prep/.$1" && mv "$work/served/prep/.$1" "$work/served/prep/$1"
}

d=(); c=()
for i in $(seq "$runs"); do
  name="20240602_2$(printf '%03d' "$i")_PREP_SITIO_CAMP.zip"
  want="20240602_2$(printf '%03d' "$i")"
  appear "$name"
  t0=$(now)
  until [ "$(live)" = "$want" ]; do
    sleep 0.02
    if python3 -c "import sys; sys.exit(0 if $(now) - $t0 > 120 else 1)"; then
      echo "difusor did not publish $name in 120 s" >&2; cat "$work/difusor.log" >&2; exit 1
    fi
  done
  t1=$(now); d+=("$(python3 -c "print($t1 - $t0)")")

  # The cron script's way, on the same files.
  rm -rf "$work/cron" && mkdir -p "$work/cron/www"
  t0=$(now)
  (cd "$work/cron" &&
    curl -sf --cacert "$work/tls-maker/tls/cert.pem" -O "https://127.0.0.1:$https/prep/$name" &&
    curl -sf --cacert "$work/tls-maker/tls/cert.pem" -O "https://127.0.0.1:$https/prep/$name.sha256" &&
    sha256sum -c --quiet "$name.sha256" && unzip -q -o "$name" -d www)
  t1=$(now); c+=("$(python3 -c "print($t1 - $t0)")")
done
dm=$(median "${d[@]}"); cm=$(median "${c[@]}")
mbps() { python3 -c "print(f'{$size / $1 / 1e6:.0f}')"; }
echo "package: $size bytes over HTTPS from nginx; runs: $runs (median)"
echo "difusor pull, appearance to live corte:          $(python3 -c "print(f'{$dm:.2f}')") s, $(mbps "$dm") MB/s"
echo "curl + sha256sum -c + unzip (cron script's way): $(python3 -c "print(f'{$cm:.2f}')") s, $(mbps "$cm") MB/s"
