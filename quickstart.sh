#!/usr/bin/env bash
# README's quick start, on a fresh Debian or Ubuntu machine (as root, or a user with sudo):
# installs and starts MariaDB when needed, creates the ipta user and database, builds ipta,
# creates the packet table, imports the sample log of examples/ and prints the analysis.
# Running it again is harmless: every step checks before it acts, and importing the same log
# twice adds no row.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*" >&2; }

step "MariaDB: install when missing, start when stopped, create user and database ipta"
./scripts/provision.sh

step "Build tools and Rust"
./scripts/ensure-rust.sh
export PATH="$HOME/.cargo/bin:$PATH"

step "Build (release)"
cargo build --release --locked --bins
IPTA=./target/release/ipta

# The quick start uses the defaults (user ipta, password ipta, database ipta, table logs on the
# local server) whatever the invoking user's ~/.ipta-conf says.
export IPTA_DB_HOST=localhost IPTA_DB_USER=ipta IPTA_DB_PASS=ipta IPTA_DB_NAME=ipta IPTA_DB_TABLE=logs

step "Create the packet table"
$IPTA --create-table

# The sample: 3,000 generated lines from New Year's Eve 2025 into 2026. Its stamps have no
# year: the import takes it from the file's modification time and moves to the next year at
# the turn from Dec 31 to Jan 1.
step "Import examples/iptables.log"
$IPTA --import examples/iptables.log

step "Tables"
$IPTA --list-tables

step "Analysis"
$IPTA --analyze

cat >&2 <<'TXT'

Done. Next steps:
  ./target/release/ipta --help                 every option
  ./target/release/ipta -i /var/log/iptables.log   import your firewall log
  ./target/release/ipta -a                     the reports
  sudo install -m 755 target/release/ipta target/release/ipta-ingest /usr/local/bin/
TXT
