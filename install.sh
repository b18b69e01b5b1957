#!/usr/bin/env bash
# install.sh: installs ipta on this machine (run as root), or into a staging root with DESTDIR.
#
#   ./install.sh                  build the release binaries and install them
#   ./install.sh --no-build       install the binaries already in target/release
#   ./install.sh --uninstall      remove exactly what an earlier install recorded
#   DESTDIR=/tmp/root PREFIX=/usr/local ./install.sh --no-build    staged install
#
# What goes where (PREFIX defaults to /usr/local, SYSCONFDIR to /etc):
#   PREFIX/bin/ipta, PREFIX/bin/ipta-ingest                         0755
#   SYSCONFDIR/rsyslog.d/30-ipta.conf      (from rsyslog/30-ipta.conf; its path of
#                                          ipta-ingest follows PREFIX)  0644
#   SYSCONFDIR/logrotate.d/ipta            (from logrotate/ipta)      0644
#   SYSCONFDIR/ipta.conf   (from etc/ipta.conf.example, never overwritten) 0640 root:<rsyslog's group>
#   PREFIX/share/man/man1/<each man/*.1>                             0644
#   completions/<bin>.bash -> PREFIX/share/bash-completion/completions/<bin>
#   completions/_<bin>     -> PREFIX/share/zsh/site-functions/_<bin>
#   completions/<bin>.fish -> PREFIX/share/fish/vendor_completions.d/<bin>.fish
#   PREFIX/share/doc/ipta/{README.md,LICENSE,ipta.conf.example}    0644
#   PREFIX/share/doc/ipta/rsyslog/<the other rsyslog/*.conf, etc/rsyslog/*.conf>  0644
#                                          (alternatives to install by hand: the file-only
#                                          setup, forwarding from firewalls, the central host)
#   PREFIX/share/ipta/installed.txt        the manifest: "sha256  path" per installed file
#
# The group of ipta.conf is the one rsyslog runs ipta-ingest as, so it can read the password:
# $IPTA_CONF_GROUP if set, else rsyslog's $PrivDropToGroup / privdrop.group.name, else the group
# of $PrivDropToUser / privdrop.user.name (read from $RSYSLOG_CONF, default /etc/rsyslog.conf,
# and the rsyslog.d/*.conf next to it), else that of user syslog if it exists (Ubuntu), else
# root (Debian's rsyslog runs as root).
#
# --uninstall removes the files listed in the manifest; a file under SYSCONFDIR that was changed
# since it was installed (typically ipta.conf with your password) is kept, and said so.
set -euo pipefail
umask 022

PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
DESTDIR=${DESTDIR:-}
RSYSLOG_CONF=${RSYSLOG_CONF:-/etc/rsyslog.conf}

usage() {
  sed -n '2,8s/^# \{0,1\}//p' "$0"
}

die() { echo "install.sh: $*" >&2; exit 1; }

build=1
action=install
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --uninstall) action=uninstall ;;
    --help|-h) usage; exit 0 ;;
    *) echo "install.sh: unknown option $a" >&2; usage >&2; exit 2 ;;
  esac
done

case "$PREFIX" in /*) ;; *) die "PREFIX must be an absolute path, not '$PREFIX'" ;; esac
case "$SYSCONFDIR" in /*) ;; *) die "SYSCONFDIR must be an absolute path, not '$SYSCONFDIR'" ;; esac
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo ./install.sh), or set DESTDIR for a staged install"
fi

src=$(cd "$(dirname "$0")" && pwd)
manifest_path="$PREFIX/share/ipta/installed.txt"
manifest="$DESTDIR$manifest_path"

sha() { sha256sum <"$1" | cut -d' ' -f1; }

# ---------------------------------------------------------------------------------------------
uninstall() {
  [ -f "$manifest" ] || die "no manifest $manifest_path: nothing was installed by install.sh with PREFIX=$PREFIX"
  local kept=0 line sum path f
  while IFS= read -r line || [ -n "$line" ]; do
    sum=${line%%  *}
    path=${line#*  }
    # Only absolute paths without ".." components: a damaged manifest must not remove elsewhere.
    case "$path" in /*) ;; *) echo "skipped bad manifest line: $line" >&2; continue ;; esac
    case "/$path/" in */../*) echo "skipped bad manifest line: $line" >&2; continue ;; esac
    f="$DESTDIR$path"
    if [ ! -e "$f" ] && [ ! -L "$f" ]; then
      echo "already gone: $path"
      continue
    fi
    case "$path" in
      "$SYSCONFDIR"/*)
        if [ "$(sha "$f")" != "$sum" ]; then
          echo "kept $path: it was changed since installation (remove it yourself if unwanted)"
          kept=$((kept + 1))
          continue
        fi ;;
    esac
    rm -f -- "$f"
    echo "removed $path"
  done <"$manifest"
  rm -f -- "$manifest"
  echo "removed $manifest_path"
  rmdir -- "$DESTDIR$PREFIX/share/ipta" "$DESTDIR$PREFIX/share/doc/ipta/rsyslog" \
    "$DESTDIR$PREFIX/share/doc/ipta" 2>/dev/null || true
  if [ -z "$DESTDIR" ]; then
    echo "restart rsyslog so it stops running ipta-ingest: systemctl restart rsyslog"
  fi
  [ "$kept" -eq 0 ] || echo "$kept changed configuration file(s) kept"
}

# ---------------------------------------------------------------------------------------------
# The group rsyslog runs as (see the header).
conf_group() {
  if [ -n "${IPTA_CONF_GROUP:-}" ]; then echo "$IPTA_CONF_GROUP"; return; fi
  local files=() g u
  [ -f "$RSYSLOG_CONF" ] && files+=("$RSYSLOG_CONF")
  for f in "$(dirname "$RSYSLOG_CONF")"/rsyslog.d/*.conf; do [ -f "$f" ] && files+=("$f"); done
  if [ "${#files[@]}" -gt 0 ]; then
    g=$(sed -n -e 's/^[[:space:]]*\$PrivDropToGroup[[:space:]]\{1,\}\([^[:space:]#]\{1,\}\).*/\1/p' \
               -e 's/.*privdrop\.group\.name[[:space:]]*=[[:space:]]*"\([^"]\{1,\}\)".*/\1/p' "${files[@]}" | tail -n 1)
    u=$(sed -n -e 's/^[[:space:]]*\$PrivDropToUser[[:space:]]\{1,\}\([^[:space:]#]\{1,\}\).*/\1/p' \
               -e 's/.*privdrop\.user\.name[[:space:]]*=[[:space:]]*"\([^"]\{1,\}\)".*/\1/p' "${files[@]}" | tail -n 1)
    if [ -n "$g" ]; then echo "$g"; return; fi
    if [ -n "$u" ] && id -gn "$u" >/dev/null 2>&1; then id -gn "$u"; return; fi
  fi
  if id syslog >/dev/null 2>&1; then id -gn syslog; return; fi
  echo root
}

new_manifest=""
cleanup() { [ -z "$new_manifest" ] || rm -f -- "$new_manifest"; }
trap cleanup EXIT

record() { printf '%s  %s\n' "$(sha "$DESTDIR$1")" "$1" >>"$new_manifest"; }

# put MODE SOURCE DEST: installs one file and records it.
put() {
  install -D -m "$1" -- "$2" "$DESTDIR$3"
  record "$3"
  echo "installed $3"
}

install_all() {
  local bin=$src/target/release
  if [ "$build" -eq 1 ]; then
    if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
      # Build as the user who ran sudo, with their toolchain, not as root in their tree.
      echo "building as $SUDO_USER: cargo build --release --locked"
      sudo -u "$SUDO_USER" -H bash -lc 'cd "$1" && cargo build --release --locked' _ "$src" \
        || die "build failed; build as yourself with 'cargo build --release', then 'sudo ./install.sh --no-build'"
    else
      command -v cargo >/dev/null 2>&1 \
        || die "cargo not found: build with 'cargo build --release' as your user, then run './install.sh --no-build'"
      echo "building: cargo build --release --locked"
      (cd "$src" && cargo build --release --locked)
    fi
  fi
  for b in ipta ipta-ingest; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing: build it (cargo build --release) or drop --no-build"
  done
  [ -f "$src/etc/ipta.conf.example" ] || die "$src/etc/ipta.conf.example is missing"

  new_manifest=$(mktemp)
  local conf="$SYSCONFDIR/ipta.conf" f name

  put 0755 "$bin/ipta" "$PREFIX/bin/ipta"
  put 0755 "$bin/ipta-ingest" "$PREFIX/bin/ipta-ingest"

  # The snippet that runs ipta-ingest; the other rsyslog/*.conf are alternatives to it (only
  # one may be active), shipped as documentation. The snippet names ipta-ingest by its path
  # under /usr/local: follow PREFIX.
  if [ -f "$src/rsyslog/30-ipta.conf" ]; then
    local snippet
    snippet=$(mktemp)
    sed "s#/usr/local/bin/ipta-ingest#$PREFIX/bin/ipta-ingest#g" "$src/rsyslog/30-ipta.conf" >"$snippet"
    put 0644 "$snippet" "$SYSCONFDIR/rsyslog.d/30-ipta.conf"
    rm -f -- "$snippet"
  else
    echo "warning: no rsyslog/30-ipta.conf in $src: rsyslog will not run ipta-ingest" >&2
  fi
  if [ -f "$src/logrotate/ipta" ]; then
    put 0644 "$src/logrotate/ipta" "$SYSCONFDIR/logrotate.d/ipta"
  fi

  if [ -e "$DESTDIR$conf" ] || [ -L "$DESTDIR$conf" ]; then
    echo "kept existing $conf (not overwritten; the template is $PREFIX/share/doc/ipta/ipta.conf.example)"
    # Installed by an earlier run: keep its entry, so --uninstall still knows it (and its
    # original checksum, to tell whether it was edited since).
    if [ -f "$manifest" ]; then
      awk -v p="$conf" 'substr($0, 67) == p' "$manifest" >>"$new_manifest"
    fi
  else
    local group
    group=$(conf_group)
    if ! getent group "$group" >/dev/null 2>&1; then
      echo "warning: group '$group' does not exist here; $conf gets group root" >&2
      group=root
    fi
    install -D -m 0640 -- "$src/etc/ipta.conf.example" "$DESTDIR$conf"
    if ! chgrp "$group" "$DESTDIR$conf" 2>/dev/null; then
      echo "warning: could not give $conf to group '$group' (not root?)" >&2
    fi
    record "$conf"
    echo "installed $conf (mode 0640, group $group)"
  fi

  for f in "$src"/man/*.1; do
    if [ -f "$f" ]; then put 0644 "$f" "$PREFIX/share/man/man1/$(basename "$f")"; fi
  done
  for f in "$src"/completions/*; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    case "$name" in
      *.bash) put 0644 "$f" "$PREFIX/share/bash-completion/completions/${name%.bash}" ;;
      _*.ps1) ;;
      _*) put 0644 "$f" "$PREFIX/share/zsh/site-functions/$name" ;;
      *.fish) put 0644 "$f" "$PREFIX/share/fish/vendor_completions.d/$name" ;;
      *) ;;
    esac
  done
  for f in README.md LICENSE; do
    if [ -f "$src/$f" ]; then put 0644 "$src/$f" "$PREFIX/share/doc/ipta/$f"; fi
  done
  put 0644 "$src/etc/ipta.conf.example" "$PREFIX/share/doc/ipta/ipta.conf.example"
  for f in "$src"/rsyslog/*.conf "$src"/etc/rsyslog/*.conf; do
    if [ -f "$f" ] && [ "$f" != "$src/rsyslog/30-ipta.conf" ]; then
      put 0644 "$f" "$PREFIX/share/doc/ipta/rsyslog/$(basename "$f")"
    fi
  done

  # Files an earlier install put there that this one no longer ships (say, a renamed snippet):
  # keep them in the manifest while they exist, so --uninstall still removes them.
  if [ -f "$manifest" ]; then
    local sum path
    while IFS= read -r line || [ -n "$line" ]; do
      sum=${line%%  *}
      path=${line#*  }
      if ! awk -v p="$path" 'substr($0, 67) == p { found = 1 } END { exit !found }' "$new_manifest" \
        && { [ -e "$DESTDIR$path" ] || [ -L "$DESTDIR$path" ]; }; then
        printf '%s  %s\n' "$sum" "$path" >>"$new_manifest"
      fi
    done <"$manifest"
  fi
  install -D -m 0644 -- "$new_manifest" "$manifest"
  echo "recorded what was installed in $manifest_path (./install.sh --uninstall removes it)"
  if [ -z "$DESTDIR" ]; then
    echo
    echo "next: set the database password in $conf, create the table (ipta --create-table),"
    echo "      and restart rsyslog so it starts ipta-ingest: systemctl restart rsyslog"
  fi
}

case "$action" in
  install) install_all ;;
  uninstall) uninstall ;;
esac
