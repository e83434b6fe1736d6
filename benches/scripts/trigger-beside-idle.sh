#!/bin/bash
# The daemon's CPU per trigger beside idle probes: trigger-beside-idle.sh BIN NIDLE NTRIG (as
# root, perf installed). NIDLE probes are declared in one namespace jail; a -r probe in another
# is fired NTRIG times from inside its jail (10 ms apart) while perf records the daemon
# (D/perf.data); prints the daemon's user and system ticks (10 ms each) over those triggers.
set -u
BIN=$1; NIDLE=$2; NT=$3; D=${TMPDIR:-/tmp}/trigger-beside-idle; rm -rf $D; mkdir -p $D
unshare --pid --mount --fork --mount-proc sleep 616161 >/dev/null 2>&1 &
unshare --pid --mount --fork --mount-proc sleep 717171 >/dev/null 2>&1 &
sleep 0.5
JA=$(pgrep -f "^sleep 616161$"|tail -1); JB=$(pgrep -f "^sleep 717171$"|tail -1)
python3 -c "
import sys
n=int(sys.argv[1]); ja=sys.argv[2]
with open('$D/conf','w') as f:
    for i in range(n):
        f.write('[[probe]]\njail = \"%s\"\ntitle = \"IDLE%d\"\ncommand = \"true\"\n\n' % (ja,i))
" $NIDLE $JA
ulimit -n 30000 2>/dev/null || true
$BIN -D -F -f $D/s -p $D/p -C $D/conf -S $D/state 2>$D/log &
for i in $(seq 100); do [ -S $D/s ] && $BIN -l -f $D/s 2>/dev/null | grep -q IDLE$((NIDLE-1)) && break; sleep 0.2; done
DP=$(cat $D/p)
$BIN -r -c true -j $JB -t TRIG -f $D/s
sleep 0.3
trig() { nsenter -t $JB -p -m pkill -HUP -x TRIG; }
for i in 1 2 3 4 5; do trig; sleep 0.05; done
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u0 s0 _ < /proc/$DP/stat
perf record -q -g -F 20000 -p $DP -o $D/perf.data -- bash -c "for i in \$(seq $NT); do nsenter -t $JB -p -m pkill -HUP -x TRIG; sleep 0.01; done" 2>/dev/null
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u1 s1 _ < /proc/$DP/stat
echo "idle $NIDLE: daemon ticks user $((u1-u0)) sys $((s1-s0)) over $NT triggers; fired: $(grep -c 'triggered' $D/log)"
kill $DP; sleep 1; pkill -9 -f "^sleep (616161|717171)$"
