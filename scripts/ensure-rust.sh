#!/usr/bin/env bash
# Makes sure this machine can build ipta: a C compiler (the TLS and zlib crates compile some C)
# and a Rust toolchain at least as new as Cargo.toml's rust-version. Installs what is missing
# (build-essential with apt, Rust with rustup into the invoking user's ~/.cargo). Safe to run
# again. Callers then put ~/.cargo/bin on their PATH:
#   ./scripts/ensure-rust.sh && export PATH="$HOME/.cargo/bin:$PATH"
set -euo pipefail
cd "$(dirname "$0")/.."

need=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
need=${need:-1.80}
export PATH="$HOME/.cargo/bin:$PATH"

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-rust: please install $* with your package manager" >&2; exit 1
  fi
  if [ "$apt_updated" -eq 0 ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v cc >/dev/null 2>&1; then
  echo "ensure-rust: installing a C compiler (build-essential)" >&2
  apt_install build-essential
fi

have_ok() {
  command -v cargo >/dev/null 2>&1 || return 1
  local have
  have=$(cargo --version | awk '{print $2}')
  [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" = "$need" ]
}

if ! have_ok; then
  if command -v rustup >/dev/null 2>&1; then
    echo "ensure-rust: updating the Rust toolchain (need $need)" >&2
    rustup toolchain install stable --profile minimal >/dev/null
    rustup default stable >/dev/null
  else
    echo "ensure-rust: installing Rust with rustup (need $need; the distribution's may be older)" >&2
    command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
      sh -s -- -y --profile minimal --default-toolchain stable >/dev/null
  fi
  have_ok || { echo "ensure-rust: no cargo >= $need after installing" >&2; exit 1; }
fi
echo "ensure-rust: $(cargo --version)" >&2
