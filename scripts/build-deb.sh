#!/usr/bin/env bash
# Builds the Debian package target/debian/ipta_<version>-1_<arch>.deb with cargo-deb
# (cargo install cargo-deb). The package installs the binaries to /usr/bin, so the rsyslog
# snippet, which names /usr/local/bin/ipta-ingest for install.sh, is rewritten for it into
# target/deb-assets/ (the asset Cargo.toml's [package.metadata.deb] points at).
# Extra arguments go to cargo deb (e.g. --output DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || { echo "build-deb.sh: cargo-deb is missing: cargo install cargo-deb" >&2; exit 1; }
for f in rsyslog/30-ipta.conf logrotate/ipta etc/ipta.conf.example; do
  [ -f "$f" ] || { echo "build-deb.sh: $f is missing" >&2; exit 1; }
done
cargo build --release --locked
mkdir -p target/deb-assets
# Man pages and completions from the option definitions (target/deb-assets/man, .../completions).
./target/release/ipta --generate target/deb-assets >/dev/null
sed 's#/usr/local/bin/ipta-ingest#/usr/bin/ipta-ingest#g' rsyslog/30-ipta.conf >target/deb-assets/30-ipta.conf
cargo deb --no-build "$@"
