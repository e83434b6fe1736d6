#!/usr/bin/env bash
# root-subids.sh FILE...: gives root the subordinate ids 100000 to 165535 in each FILE
# (/etc/subuid, /etc/subgid), which the tests' user-namespaced jails map to their root, without
# damaging what the files hold. dist/test-setup.sh runs it; tests/packaging.rs runs it on copies.
#
# - A root range that covers those ids already is enough: LXD's package, for one, adds
#   root:100000:10000001. The line this script once added beside such a range,
#   root:100000:65536, is then removed: Incus maps each of root's ranges into its unprivileged
#   containers, and newuidmap refuses the overlapping pair (Invalid argument).
# - A range of anyone else, or a root range that does not cover them, overlapping those ids
#   stops the script with an error naming the line, and the file is left as it was: which ids
#   go to whom is the administrator's choice.
# - Otherwise root:100000:65536 is appended.
# Prints one line for each file it changed; running it again changes nothing.
set -euo pipefail
first=100000
count=65536
ours="root:$first:$count"

for file in "$@"; do
    [ -e "$file" ] || install -m 0644 /dev/null "$file"
    # One verdict: covered (by a root range; "redundant" when our own line is beside it),
    # present (our line alone), clash (the overlapping lines) or absent.
    verdict=$(awk -F: -v first="$first" -v end="$((first + count))" -v ours="$ours" '
        $0 == ours { has_ours = 1; next }
        NF == 3 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ {
            start = $2 + 0; stop = start + $3
            if (($1 == "root" || $1 == "0") && start <= first && stop >= end) { covered = 1; next }
            if (start < end && stop > first) { clash = clash " " $0 }
        }
        END {
            if (covered) print (has_ours ? "redundant" : "covered")
            else if (has_ours) print "present"
            else if (clash != "") print "clash" clash
            else print "absent"
        }' "$file")
    case $verdict in
    covered | present) ;;
    redundant)
        kept=$(mktemp "$file.XXXXXX")
        grep -vxF "$ours" "$file" > "$kept" || true
        chmod --reference="$file" "$kept" && chown --reference="$file" "$kept"
        mv "$kept" "$file"
        echo "$file: removed $ours, which another of root's ranges covers"
        ;;
    clash\ *)
        echo "$file: ${verdict#clash } overlaps ids $first to $((first + count - 1))," \
            "which the tests' jails map to their root; not adding $ours beside it. Give root" \
            "one range that covers those ids, or move the other range" >&2
        exit 1
        ;;
    absent)
        echo "$ours" >> "$file"
        echo "$file: added $ours"
        ;;
    esac
done
