#!/usr/bin/env bash
# The whole test suite: provisions MariaDB and rsyslog on this machine (installing them when
# missing), then runs every unit and integration test against the real server.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/provision.sh --rsyslog
./scripts/ensure-rust.sh
export PATH="$HOME/.cargo/bin:$PATH"
export IPTA_TEST_SOCKET=${IPTA_TEST_SOCKET:-/run/mysqld/mysqld.sock}
cargo test --release --locked
