#!/usr/bin/env bash
# Runs a command and says where the machine's CPU went while it ran: the command's own (user
# and system, with its children) and the database server's (`mariadbd` or `mysqld`, from
# /proc). The figures behind README's "what bounds these figures" come from it.
#
#   scripts/cpu-split.sh COMMAND [ARGS...]
#
# Prints one line on stderr, e.g. `wall 5.87 s, command 1.52 s CPU (user 1.41, sys 0.11),
# server 5.45 s CPU, peak memory 62 MiB`; the command's output goes where it would. Exits with
# the command's status. The server's figure counts everything it did meanwhile: run it on an
# otherwise idle server.
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi
pid=$(pidof mariadbd || pidof mysqld || true)
pid=${pid%% *}
if [ -z "$pid" ]; then
  echo "cpu-split.sh: no mariadbd or mysqld process found" >&2
  exit 2
fi
tck=$(getconf CLK_TCK)
# Fields 14 and 15 of /proc/PID/stat: user and system time, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
s0=$(ticks)
set +e
/usr/bin/time -o "$out" -f "%e %U %S %M" "$@"
rc=$?
set -e
s1=$(ticks)
read -r wall user sys rss < <(tail -n 1 "$out")
awk -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v d=$((s1 - s0)) -v t="$tck" 'BEGIN {
  printf "wall %.2f s, command %.2f s CPU (user %.2f, sys %.2f), server %.2f s CPU, peak memory %d MiB\n",
    w, u + s, u, s, d / t, r / 1024 }' >&2
exit "$rc"
