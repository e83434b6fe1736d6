# Sourced by the scripts beside it (as root): `start_rig BIN` starts a daemon of BIN on a socket
# of its own ($D/s, pidfile $D/p) and one namespace jail, whose pid it sets in JP; all is
# stopped and removed at exit.
start_rig() {
  D=$(mktemp -d)
  S=$((400000 + $$ % 100000))
  trap 'kill $(cat $D/p 2>/dev/null) 2>/dev/null; pkill -9 -f "^sleep $S\$"; rm -rf $D' EXIT
  $1 -D -F -f $D/s -p $D/p -C /dev/null -S $D/state 2>$D/log &
  unshare --pid --mount --fork --mount-proc sleep $S >/dev/null 2>&1 &
  sleep 0.5
  JP=$(pgrep -f "^sleep $S\$" | tail -1)
}
