#!/bin/bash
# What a daemon keeps for its probes: daemon-rss.sh BIN N (as root). Arms N probes in one
# namespace jail, one utility request each, and prints the daemon's RSS with its anonymous
# (kept by the daemon) and file (its binary's and glibc's pages, shared) parts, in KiB.
set -eu
BIN=$1 N=$2
. "$(dirname "$0")/rig.sh"
start_rig "$BIN"
for ((i = 0; i < N; i++)); do $BIN -c true -j $JP -t RSS$i -f $D/s >/dev/null; done
awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s %s KiB  ", $1, $2} END {print ""}' /proc/$(cat $D/p)/status
