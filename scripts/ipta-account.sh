#!/usr/bin/env bash
# The quick start's database account: `ipta`@localhost (and @127.0.0.1) with a generated
# password, saved with the other database settings in the invoking user's ~/.ipta-conf (mode
# 0600, by `ipta --save-db`). A password saved by an earlier run is kept, so running it again
# changes nothing; the well-known password `ipta` is never set.
#
#   scripts/ipta-account.sh [--socket PATH] [--ipta BINARY]
#
# The password goes to the server on the client's stdin and to ipta in its environment, never
# on a command line. Talks to the server as root over its socket (socket authentication).
set -euo pipefail

sock=/run/mysqld/mysqld.sock
sock_given=0
ipta=./target/release/ipta
while [ $# -gt 0 ]; do
  case "$1" in
    --socket) sock="$2"; sock_given=1; shift 2 ;;
    --socket=*) sock="${1#--socket=}"; sock_given=1; shift ;;
    --ipta) ipta="$2"; shift 2 ;;
    *) echo "ipta-account.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
: "${HOME:?ipta-account.sh: HOME is not set}"
conf="$HOME/.ipta-conf"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Only passwords of this alphabet are used (safe inside an SQL string literal).
good() { [[ "$1" =~ ^[A-Za-z0-9]{16,64}$ ]]; }

pass=""
if [ -f "$conf" ] && grep -Eq '^[[:space:]]*db_user[[:space:]]*=[[:space:]]*ipta[[:space:]]*$' "$conf"; then
  pass=$(sed -nE 's/^[[:space:]]*db_pass[[:space:]]*=[[:space:]]*([^[:space:]]*)[[:space:]]*$/\1/p' "$conf" | tail -n 1)
fi
if ! good "$pass"; then
  pass=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  pass=${pass:0:24}
fi
good "$pass" || { echo "ipta-account.sh: could not generate a password" >&2; exit 1; }

$SUDO mariadb --socket="$sock" <<SQL
CREATE DATABASE IF NOT EXISTS ipta CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'ipta'@'localhost' IDENTIFIED BY '$pass';
CREATE USER IF NOT EXISTS 'ipta'@'127.0.0.1' IDENTIFIED BY '$pass';
ALTER USER 'ipta'@'localhost' IDENTIFIED BY '$pass';
ALTER USER 'ipta'@'127.0.0.1' IDENTIFIED BY '$pass';
GRANT ALL ON ipta.* TO 'ipta'@'localhost';
GRANT ALL ON ipta.* TO 'ipta'@'127.0.0.1';
SQL

(
  # export is a shell builtin: the password is on no command line, not even env's.
  export IPTA_DB_HOST=localhost IPTA_DB_USER=ipta IPTA_DB_PASS="$pass" IPTA_DB_NAME=ipta IPTA_DB_TABLE=logs
  if [ "$sock_given" -eq 1 ]; then export IPTA_DB_SOCKET="$sock"; fi
  exec "$ipta" --save-db
)
