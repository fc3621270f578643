#!/usr/bin/env bash
# Builds the Debian package: the release binary, the assets it makes from its own command
# line (manual pages, shell completions, the packaged /etc/difusor/difusor.toml), then
# `cargo deb --no-build`. Prints the .deb's path on the last line.
#
#   packaging/build-deb.sh                 # needs cargo-deb: cargo install --locked cargo-deb
#   apt install ./target/debian/difusor_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "cargo-deb is missing: cargo install --locked cargo-deb" >&2
  exit 1
fi

cargo build --release --locked
bin=target/release/difusor
assets=target/debian-assets
rm -rf "$assets"
mkdir -p "$assets/man"
"$bin" generate man --out-dir "$assets/man" >/dev/null
gzip -9n -f "$assets"/man/*.1
for shell in bash zsh fish; do
  "$bin" generate "$shell" --out-dir "$assets" >/dev/null
done
"$bin" generate config --out-dir "$assets" >/dev/null

# Stripped: the release profile keeps line tables for backtraces; the package does not need them.
cargo deb --no-build --locked --strip | tail -n 1
