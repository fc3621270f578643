#!/usr/bin/env bash
# Installs the .deb given (as root, on a machine where nothing else is called difusor),
# checks what it installed, removes it, then purges it. Used by CI after
# packaging/build-deb.sh; works without systemd running (a container, a chroot).
#
#   packaging/check-deb.sh target/debian/difusor_*.deb
set -euo pipefail
deb=${1:?usage: check-deb.sh <difusor .deb>}

fail() { echo "check-deb: $*" >&2; exit 1; }

if dpkg -s difusor >/dev/null 2>&1; then
  fail "difusor is already installed here; this check installs and purges it"
fi
if [ -e /var/lib/difusor ]; then
  fail "/var/lib/difusor exists (data of an earlier install?); this check would remove it"
fi

echo "== dpkg -i $deb"
dpkg -i "$deb"

echo "== installed files"
difusor --version
[ -f /etc/difusor/difusor.toml ] || fail "/etc/difusor/difusor.toml is missing"
grep -qx '/etc/difusor/difusor.toml' /var/lib/dpkg/info/difusor.conffiles \
  || fail "/etc/difusor/difusor.toml is not a conffile"
grep -qx 'data_dir = "/var/lib/difusor"' /etc/difusor/difusor.toml \
  || fail "the packaged configuration does not keep its data in /var/lib/difusor"
getent passwd difusor >/dev/null || fail "no difusor user"
getent group difusor >/dev/null || fail "no difusor group"
[ "$(stat -c '%U:%G %a' /var/lib/difusor)" = "difusor:difusor 750" ] \
  || fail "/var/lib/difusor is $(stat -c '%U:%G %a' /var/lib/difusor), not difusor:difusor 750"
systemd-analyze verify --man=no /lib/systemd/system/difusor.service
man -l /usr/share/man/man1/difusor.1.gz 2>/dev/null | grep -q 'difusor' || fail "the manual page does not render"
man -l /usr/share/man/man1/difusor-serve.1.gz 2>/dev/null | grep -q -- '--data-dir' \
  || fail "difusor-serve(1) does not list the settings"
[ -s /usr/share/bash-completion/completions/difusor ] || fail "no bash completion"

echo "== reinstall keeps the user"
dpkg -i "$deb"

echo "== dpkg -r"
dpkg -r difusor
[ ! -e /usr/bin/difusor ] || fail "/usr/bin/difusor is still there after dpkg -r"
[ -f /etc/difusor/difusor.toml ] || fail "dpkg -r removed the configuration (only purge does)"
getent passwd difusor >/dev/null || fail "dpkg -r removed the user (only purge does)"

echo "== dpkg --purge"
touch /var/lib/difusor/kept
dpkg --purge difusor
[ ! -e /etc/difusor/difusor.toml ] || fail "purge left /etc/difusor/difusor.toml"
! getent passwd difusor >/dev/null || fail "purge left the difusor user"
[ -e /var/lib/difusor/kept ] || fail "purge removed the data in /var/lib/difusor"
rm -rf /var/lib/difusor
echo "check-deb: ok"
