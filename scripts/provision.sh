#!/usr/bin/env bash
# Makes this machine ready for ipta and its tests: installs MariaDB (and, with --rsyslog, rsyslog)
# when missing, starts the server when it is not running and creates the database ipta. It
# creates no account: the quick start's `ipta` account (with a generated password) is made by
# scripts/ipta-account.sh, the tests' account lives only while they run (scripts/test-account.sh).
# A leftover `ipta_test` account with the old well-known password is removed. Safe to run again.
# Needs root (or sudo). --socket PATH: another server than /run/mysqld/mysqld.sock.
# --chromium: also Debian's chromium, for the test that opens the HTML report in a real browser
# (tests/it/report_html.rs) and for scripts/report-screenshot.sh.
set -euo pipefail

want_rsyslog=0
want_chromium=0
sock=/run/mysqld/mysqld.sock
while [ $# -gt 0 ]; do
  case "$1" in
    --rsyslog) want_rsyslog=1; shift ;;
    --chromium) want_chromium=1; shift ;;
    --socket) sock="$2"; shift 2 ;;
    --socket=*) sock="${1#--socket=}"; shift ;;
    *) echo "provision.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "provision.sh: run as root or install sudo" >&2; exit 1; fi
fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v mariadbd >/dev/null 2>&1 && ! command -v mysqld >/dev/null 2>&1; then
  echo "provision: installing MariaDB" >&2
  apt_install mariadb-server mariadb-client
fi
if [ "$want_rsyslog" -eq 1 ] && ! command -v rsyslogd >/dev/null 2>&1; then
  echo "provision: installing rsyslog" >&2
  apt_install rsyslog
fi

if [ "$want_chromium" -eq 1 ] && ! command -v chromium >/dev/null 2>&1; then
  echo "provision: installing chromium" >&2
  apt_install chromium
fi

# The openssl command makes the certificates of the TLS test (tests/tls.rs); minimal images lack it.
if [ "$want_rsyslog" -eq 1 ] && ! command -v openssl >/dev/null 2>&1; then
  echo "provision: installing openssl" >&2
  apt_install openssl
fi

if ! $SUDO mariadb-admin --socket="$sock" ping >/dev/null 2>&1; then
  echo "provision: starting MariaDB" >&2
  if ! $SUDO service mariadb start >/dev/null 2>&1; then
    $SUDO mkdir -p /run/mysqld
    $SUDO chown mysql: /run/mysqld 2>/dev/null || true
    $SUDO start-stop-daemon --start --oknodo --background --exec "$(command -v mariadbd || command -v mysqld)" -- --user=mysql
  fi
  for _ in $(seq 1 60); do
    $SUDO mariadb-admin --socket="$sock" ping >/dev/null 2>&1 && break
    sleep 0.5
  done
  $SUDO mariadb-admin --socket="$sock" ping >/dev/null 2>&1 || { echo "provision: MariaDB did not start" >&2; exit 1; }
fi

$SUDO mariadb --socket="$sock" <<'SQL'
CREATE DATABASE IF NOT EXISTS ipta CHARACTER SET utf8mb4;
SQL
# Earlier versions left `ipta_test`/`ipta_test` with every right on every database: any local
# user could use it (and read files through the server). Drop it when it still has that password.
leftover=$($SUDO mariadb --socket="$sock" -N <<'SQL'
SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.user
 WHERE User = 'ipta_test' AND authentication_string = PASSWORD('ipta_test');
SQL
)
for acct in $leftover; do
  echo "provision: dropping the old test account $acct (well-known password)" >&2
  $SUDO mariadb --socket="$sock" <<<"DROP USER $acct;"
done
echo "provision: MariaDB ready on $sock (database ipta)" >&2
