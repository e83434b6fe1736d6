#!/bin/bash
# Two builds side by side: ab.sh BIN_A BIN_B N (as root). Each build runs its own daemon; one
# namespace jail; each iteration arms one probe through A, one through B, and runs /bin/true,
# each timed by bash. Prints the mean per iteration of each and the ratios.
set -eu
export LC_ALL=C # $EPOCHREALTIME writes the locale's decimal point
A=$1 B=$2 N=$3
D=$(mktemp -d)
S=$((300000 + $$))
trap 'kill $(cat $D/a/p $D/b/p 2>/dev/null) 2>/dev/null; pkill -9 -f "^sleep $S\$"; rm -rf $D' EXIT
mkdir -p $D/a $D/b
$A -D -F -f $D/a/s -p $D/a/p -C /dev/null -S $D/a/state 2>$D/a/log &
$B -D -F -f $D/b/s -p $D/b/p -C /dev/null -S $D/b/state 2>$D/b/log &
unshare --pid --mount --fork --mount-proc sleep $S >/dev/null 2>&1 &
sleep 0.5
JP=$(pgrep -f "^sleep $S\$" | tail -1)
for i in 1 2 3; do
  $A -c true -j $JP -t WA$i -f $D/a/s
  $B -c true -j $JP -t WB$i -f $D/b/s
done
ta=0 tb=0 tt=0
for ((i = 0; i < N; i++)); do
  t0=${EPOCHREALTIME/./}; $A -c true -j $JP -t A$i -f $D/a/s >/dev/null
  t1=${EPOCHREALTIME/./}; $B -c true -j $JP -t B$i -f $D/b/s >/dev/null
  t2=${EPOCHREALTIME/./}; /bin/true
  t3=${EPOCHREALTIME/./}
  ta=$((ta + t1 - t0)) tb=$((tb + t2 - t1)) tt=$((tt + t3 - t2))
done
echo "A $((ta / N)) us  B $((tb / N)) us  true $((tt / N)) us" \
  " A/true $(echo "scale=3; $ta/$tt" | bc)  B/true $(echo "scale=3; $tb/$tt" | bc)  B/A $(echo "scale=3; $tb/$ta" | bc)"
