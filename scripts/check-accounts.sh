#!/usr/bin/env bash
# After the tests (test.sh): fails when a test account is left on the server, or when the old
# well-known test account `ipta_test`/`ipta_test` still logs in; warns when `ipta` still
# accepts the well-known password `ipta` (an account made by hand after the original's manual
# may rely on it, so it is not changed here; scripts/ipta-account.sh gives it a generated one).
#
#   scripts/check-accounts.sh [--socket PATH]
set -euo pipefail

sock=/run/mysqld/mysqld.sock
while [ $# -gt 0 ]; do
  case "$1" in
    --socket) sock="$2"; shift 2 ;;
    --socket=*) sock="${1#--socket=}"; shift ;;
    *) echo "check-accounts.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Whether USER logs in with PASSWORD (the known passwords only: nothing secret on a command
# line; MYSQL_PWD keeps it off even so).
logs_in() { MYSQL_PWD="$2" mariadb --socket="$sock" --user="$1" -N -e 'SELECT 1' >/dev/null 2>&1; }

fail=0
left=$($SUDO mariadb --socket="$sock" -N <<'SQL'
SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.user WHERE User LIKE 'ipta\_test\_%';
SQL
)
if [ -n "$left" ]; then
  echo "check-accounts: test accounts left on the server: $left" >&2
  fail=1
fi
if logs_in ipta_test ipta_test; then
  echo "check-accounts: ipta_test still logs in with the password ipta_test" >&2
  fail=1
fi
if logs_in ipta ipta; then
  echo "check-accounts: warning: the account ipta accepts the well-known password ipta" \
       "(./scripts/ipta-account.sh gives it a generated one)" >&2
fi
[ "$fail" -eq 0 ] && echo "check-accounts: no test account left" >&2
exit "$fail"
