#!/bin/bash
# The daemon's own share of an arming request: daemon-cpu.sh BIN N (as root, perf installed).
# Counts the daemon's CPU time, page faults and context switches (its children not included)
# while a bash loop arms N probes in one namespace jail; prints each per request.
set -eu
BIN=$1 N=$2
. "$(dirname "$0")/rig.sh"
start_rig "$BIN"
for i in 1 2 3; do $BIN -c true -j $JP -t W$i -f $D/s; done
perf stat --no-inherit -e task-clock,page-faults,context-switches -p "$(cat $D/p)" -o $D/stat -- \
  bash -c "for ((i = 0; i < $N; i++)); do $BIN -c true -j $JP -t P\$i -f $D/s >/dev/null; done"
awk -v n=$N '/task-clock/ {printf "CPU %.1f us per request\n", $1 * 1000 / n}
  /page-faults|context-switches/ {printf "%s %.1f per request\n", $2, $1 / n}' $D/stat
