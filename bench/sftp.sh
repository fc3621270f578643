#!/usr/bin/env bash
# Upload throughput of a 200 MB package with OpenSSH's `sftp` client: into difusor's embedded
# SFTP server (until the close returns, which includes the hand-over: archived, verified and
# published), and into OpenSSH's own sftp server (a private sshd on another port, internal-sftp)
# on the same machine, in the same run. The calls ask for at least 40 MB/s (R1.4).
#
# Usage: bench/sftp.sh [runs]   (default 3; as root, for the private sshd)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}

need=()
for tool in sftp sshd python3; do command -v "$tool" >/dev/null 2>&1 || [ -x /usr/sbin/"$tool" ] || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client openssh-server python3 >/dev/null
fi
cargo build --release --quiet --bin difusor
bin=$PWD/target/release/difusor

work=$(mktemp -d)
port=$((20000 + RANDOM % 10000)); admin=$((port + 1)); sftp_port=$((port + 2)); sshd_port=$((port + 3))
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
  [ -f "$work/sshd.pid" ] && kill "$(cat "$work/sshd.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N "" -f "$work/id_ed25519"
cp "$work/id_ed25519.pub" "$work/authorized_keys"
chmod 600 "$work/authorized_keys"

# One 200 MB package per run (each a new corte): one stored, incompressible member and the
# pages the corte needs.
python3 - "$work/pkg" "$runs" <<'PY'
import os, sys, zipfile
os.makedirs(sys.argv[1], exist_ok=True)
filler = os.urandom(200 * 1000 * 1000)
for i in range(1, int(sys.argv[2]) + 1):
    corte = f"20240602_2{i:03d}"
    with zipfile.ZipFile(os.path.join(sys.argv[1], f"PREP_{corte}.zip"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("index.html", f"<html><body>Corte {corte}</body></html>")
        z.writestr("json/main.json", f'{{"corte":"{corte}"}}')
        z.writestr("datos/relleno.bin", filler)
PY
size=$(stat -c %s "$work/pkg/PREP_20240602_2001.zip")

opts=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR -i "$work/id_ed25519")

# difusor
"$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
  --publish-start "" --max-package-bytes 1GiB \
  --sftp-listen "127.0.0.1:$sftp_port" --sftp-authorized-keys "$work/authorized_keys" \
  2>"$work/difusor.log" &
pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$admin/status" && break; sleep 0.1; done

# OpenSSH's sftp server
mkdir -p /run/sshd "$work/sshd-in"
ssh-keygen -q -t ed25519 -N "" -f "$work/ssh_host_ed25519_key"
cat >"$work/sshd_config" <<CONF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $work/ssh_host_ed25519_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
CONF
/usr/sbin/sshd -f "$work/sshd_config"
for _ in $(seq 50); do [ -f "$work/sshd.pid" ] && break; sleep 0.1; done

mbps() { python3 -c "print(f'{$size / $1 / 1e6:.0f}')"; }
seconds() { # command...: wall time in seconds
  local t0 t1
  t0=$(date +%s.%N); "$@" >/dev/null || { echo "upload failed: $*" >&2; echo nan; return; }; t1=$(date +%s.%N)
  python3 -c "print($t1 - $t0)"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

d=(); o=()
for i in $(seq "$runs"); do
  # Each run a different corte name, so each is a new package (not a duplicate).
  name="PREP_20240602_2$(printf '%03d' "$i").zip"
  pkg="$work/pkg/$name"
  echo "put $pkg $name" >"$work/batch-d"
  d+=("$(seconds sftp "${opts[@]}" -b "$work/batch-d" -P "$sftp_port" instituto@127.0.0.1)")
  echo "put $pkg $work/sshd-in/$name" >"$work/batch-o"
  o+=("$(seconds sftp "${opts[@]}" -b "$work/batch-o" -P "$sshd_port" "$(id -un)"@127.0.0.1)")
  rm -f "$work/sshd-in/$name"
done
dm=$(median "${d[@]}"); om=$(median "${o[@]}")
live=$(curl -s "http://127.0.0.1:$admin/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["live"]["corte"])')
want="20240602_2$(printf '%03d' "$runs")"
[ "$live" = "$want" ] || { echo "difusor did not publish the last upload (live: $live, expected $want)" >&2; cat "$work/difusor.log" >&2; exit 1; }
echo "package: $size bytes; runs: $runs (median)"
echo "difusor embedded SFTP (until delivered): $(python3 -c "print(f'{$dm:.2f}')") s, $(mbps "$dm") MB/s"
echo "OpenSSH sftp server (internal-sftp):     $(python3 -c "print(f'{$om:.2f}')") s, $(mbps "$om") MB/s"
echo "difusor published every upload (live corte $live)"
