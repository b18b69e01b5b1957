#!/usr/bin/env bash
# Makes this machine ready for ipta and its tests: installs MariaDB (and, with --rsyslog, rsyslog)
# when missing, starts the server when it is not running, creates the ipta user and database and
# the test user. Safe to run again. Needs root (or sudo).
set -euo pipefail

want_rsyslog=0
for a in "$@"; do
  case "$a" in
    --rsyslog) want_rsyslog=1 ;;
    *) echo "provision.sh: unknown option $a" >&2; exit 2 ;;
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

# The openssl command makes the certificates of the TLS test (tests/tls.rs); minimal images lack it.
if [ "$want_rsyslog" -eq 1 ] && ! command -v openssl >/dev/null 2>&1; then
  echo "provision: installing openssl" >&2
  apt_install openssl
fi

sock=/run/mysqld/mysqld.sock
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
CREATE USER IF NOT EXISTS 'ipta'@'localhost' IDENTIFIED BY 'ipta';
CREATE USER IF NOT EXISTS 'ipta'@'127.0.0.1' IDENTIFIED BY 'ipta';
GRANT ALL ON ipta.* TO 'ipta'@'localhost';
GRANT ALL ON ipta.* TO 'ipta'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'ipta_test'@'localhost' IDENTIFIED BY 'ipta_test';
CREATE USER IF NOT EXISTS 'ipta_test'@'127.0.0.1' IDENTIFIED BY 'ipta_test';
GRANT ALL ON *.* TO 'ipta_test'@'localhost' WITH GRANT OPTION;
GRANT ALL ON *.* TO 'ipta_test'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
echo "provision: MariaDB ready on $sock (database ipta, user ipta)" >&2
