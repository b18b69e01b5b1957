#!/usr/bin/env bash
# README's quick start, on a fresh Debian or Ubuntu machine (as root, or a user with sudo):
# installs and starts MariaDB when needed, builds ipta, creates the database ipta and the user
# ipta with a generated password (saved in ~/.ipta-conf, mode 0600), creates the packet table,
# imports the sample log of examples/ and prints the analysis.
# Running it again is harmless: every step checks before it acts, and importing the same log
# twice adds no row.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*" >&2; }

step "MariaDB: install when missing, start when stopped, create the database ipta"
./scripts/provision.sh

step "Build tools and Rust"
./scripts/ensure-rust.sh
export PATH="$HOME/.cargo/bin:$PATH"

step "Build (release)"
cargo build --release --locked --bins
IPTA=./target/release/ipta

# The account ipta gets a generated password (kept from an earlier run), never the well-known
# `ipta`; it is saved with the other settings (database ipta, table logs on the local server)
# in ~/.ipta-conf, which the commands below read. Settings in the environment would win over
# the file: they are cleared.
unset IPTA_DB_HOST IPTA_DB_PORT IPTA_DB_SOCKET IPTA_DB_USER IPTA_DB_PASS IPTA_DB_NAME IPTA_DB_TABLE \
  IPTA_DB_TLS IPTA_DB_TLS_CA IPTA_CONFIG
step "Database user ipta (generated password, saved in ~/.ipta-conf)"
./scripts/ipta-account.sh --ipta "$IPTA"

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
