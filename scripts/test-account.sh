#!/usr/bin/env bash
# Runs a command with a database account that exists only while it runs: the tests' account.
#
#   scripts/test-account.sh [--socket PATH] -- COMMAND [ARGS...]
#
# Creates `ipta_test_<pid>`@localhost with a freshly generated random password (never FILE,
# SUPER or GRANT OPTION), passes it to COMMAND in the environment (IPTA_TEST_USER,
# IPTA_TEST_PASSWORD, IPTA_TEST_SOCKET; never on a command line), and drops the account when
# COMMAND ends, fails or is interrupted. Exits with COMMAND's status; fails when the account
# could not be dropped. Talks to the server as root over its socket (socket authentication).
set -euo pipefail

sock=/run/mysqld/mysqld.sock
while [ $# -gt 0 ]; do
  case "$1" in
    --socket) sock="$2"; shift 2 ;;
    --socket=*) sock="${1#--socket=}"; shift ;;
    --) shift; break ;;
    *) echo "test-account.sh: unknown option $1 (usage: $0 [--socket PATH] -- COMMAND...)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "test-account.sh: no command given" >&2; exit 2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
sql() { $SUDO mariadb --socket="$sock" -N "$@"; }

user="ipta_test_$$"
# 32 characters of [A-Za-z0-9]: safe inside an SQL string literal.
# (No `head` at the end of the pipe: with pipefail, its early exit could fail the pipeline.)
pass=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
pass=${pass:0:32}
[ ${#pass} -eq 32 ] || { echo "test-account.sh: could not generate a password" >&2; exit 1; }

drop() {
  local rc=$?
  trap - EXIT INT TERM
  if ! sql <<<"DROP USER IF EXISTS '$user'@'localhost';"; then
    echo "test-account.sh: could not drop the test account $user" >&2
    rc=1
  elif [ "$(sql <<<"SELECT COUNT(*) FROM mysql.user WHERE User = '$user';")" != 0 ]; then
    echo "test-account.sh: the test account $user is still there" >&2
    rc=1
  fi
  exit "$rc"
}
trap drop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The password travels on the client's stdin, not its command line.
sql <<SQL
CREATE USER '$user'@'localhost' IDENTIFIED BY '$pass';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES,
  LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER,
  REFERENCES, PROCESS ON *.* TO '$user'@'localhost';
SQL

export IPTA_TEST_USER="$user" IPTA_TEST_PASSWORD="$pass" IPTA_TEST_SOCKET="$sock"
"$@"
