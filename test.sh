#!/usr/bin/env bash
# The whole test suite: provisions MariaDB, rsyslog and chromium (for the HTML report's browser
# test) on this machine (installing them when missing), then runs every unit and integration test against the real server.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/provision.sh --rsyslog --chromium
./scripts/ensure-rust.sh
export PATH="$HOME/.cargo/bin:$PATH"
sock=${IPTA_TEST_SOCKET:-/run/mysqld/mysqld.sock}
# The tests' database account exists only while they run: a random password, passed in the
# environment, dropped afterwards (also on failure or Ctrl-C).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
./scripts/test-account.sh --socket "$sock" -- cargo test --release --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
./scripts/check-accounts.sh --socket "$sock"
# One closing line for the whole run (cargo's own last line is the doc tests' "0 passed").
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
echo "$passed passed, $failed failed"
exit "$status"
