#!/usr/bin/env bash
# Makes the README's pictures of `ipta -a --format html`: docs/report-html.png (desktop width)
# and docs/report-html-phone.png (phone width), with the project's own commands only: the
# workload generator (examples/genlog.rs) writes a day of firewall log, ipta imports it into a
# scratch database and renders the page, headless chromium photographs it.
#
#   scripts/report-screenshot.sh [OUT_DIR]      (default docs/)
#
# Needs MariaDB (scripts/provision.sh) and chromium (scripts/provision.sh --chromium). The
# database account exists only while the script runs (scripts/test-account.sh), the scratch
# database and files are removed at the end. The page itself is kept as OUT_DIR/report-html.html
# only with KEEP_HTML=1.
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir=$(realpath -m "${1:-docs}")
if [ -z "${IPTA_TEST_USER:-}" ]; then
  exec ./scripts/test-account.sh -- "$0" "$@"
fi
export PATH="$HOME/.cargo/bin:$PATH"
chromium=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$chromium" ] || { echo "report-screenshot: chromium not found (scripts/provision.sh --chromium)" >&2; exit 1; }
cargo build --release --quiet --bin ipta --example genlog
mkdir -p "$out_dir"
work=$(mktemp -d)
db="ipta_shot_$$"
ipta() {
  # A private HOME and no system config: only what this script says counts.
  HOME="$work" IPTA_SYSTEM_CONFIG="$work/none.conf" IPTA_DB_PASS="$IPTA_TEST_PASSWORD" \
    ./target/release/ipta --db-socket "$IPTA_TEST_SOCKET" -u "$IPTA_TEST_USER" -d "$db" "$@"
}
cleanup() {
  ipta --analyze-interactive >/dev/null 2>&1 <<<"DROP DATABASE IF EXISTS \`$db\`;" || true
  rm -rf "$work"
}
trap cleanup EXIT
# A day and a half of log at two lines a second, RFC 3339 stamps (no year to guess).
./target/release/examples/genlog 250000 --seed 11 --style 3339 --rate 2 >"$work/fw.log"
ipta --create-db >/dev/null
ipta --create-table >/dev/null
ipta -i "$work/fw.log" >/dev/null
ipta -a --format html -o "$work/report.html"
shot() {
  # --virtual-time-budget lets the page's script run before the picture is taken.
  "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --virtual-time-budget=2000 --window-size="$1" --screenshot="$2" "file://$work/report.html" >/dev/null 2>&1
  [ -s "$2" ] || { echo "report-screenshot: chromium made no $2" >&2; exit 1; }
  echo "report-screenshot: wrote $2"
}
shot 1200,2000 "$out_dir/report-html.png"
shot 412,2400 "$out_dir/report-html-phone.png"
if [ "${KEEP_HTML:-0}" = 1 ]; then cp "$work/report.html" "$out_dir/report-html.html"; fi
