#!/bin/bash
# What a daemon keeps for its probes: daemon-rss.sh BIN N (as root). Arms N probes in one
# namespace jail, one utility request each, and prints the daemon's RSS with its anonymous
# (kept by the daemon) and file (its binary's and glibc's pages, shared) parts, in KiB.
set -eu
BIN=$1 N=$2
D=$(mktemp -d)
S=$((500000 + $$))
trap 'kill $(cat $D/p 2>/dev/null) 2>/dev/null; pkill -9 -f "^sleep $S\$"; rm -rf $D' EXIT
$BIN -D -F -f $D/s -p $D/p -C /dev/null -S $D/state 2>$D/log &
unshare --pid --mount --fork --mount-proc sleep $S >/dev/null 2>&1 &
sleep 0.5
JP=$(pgrep -f "^sleep $S\$" | tail -1)
for ((i = 0; i < N; i++)); do $BIN -c true -j $JP -t RSS$i -f $D/s >/dev/null; done
awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s %s KiB  ", $1, $2} END {print ""}' /proc/$(cat $D/p)/status
