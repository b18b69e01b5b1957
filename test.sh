#!/usr/bin/env bash
# The whole test suite: provisions MariaDB and rsyslog on this machine (installing them when
# missing), then runs every unit and integration test against the real server.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/provision.sh --rsyslog
./scripts/ensure-rust.sh
export PATH="$HOME/.cargo/bin:$PATH"
sock=${IPTA_TEST_SOCKET:-/run/mysqld/mysqld.sock}
# The tests' database account exists only while they run: a random password, passed in the
# environment, dropped afterwards (also on failure or Ctrl-C).
./scripts/test-account.sh --socket "$sock" -- cargo test --release --locked
./scripts/check-accounts.sh --socket "$sock"
