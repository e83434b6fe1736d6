#!/bin/sh
# Checks a jaildaemon built for FreeBSD (on another system) without running it, with readelf
# of binutils:
#
#   dist/freebsd/check-elf.sh BINARY PROBE
#
# BINARY is the linked daemon, PROBE the probe image it embeds (OUT_DIR/probe of its build).
# The daemon must be a FreeBSD program: branded by its ABI note, loaded by /libexec/ld-elf.so.1,
# linked against FreeBSD's libc.so.7, and importing every libc function the FreeBSD backend
# calls (each `libc::NAME(` in src/sys/freebsd/ and src/sys/posix.rs) as a versioned FreeBSD
# symbol (NAME@FBSD_1.x). Any other strong import without a FreeBSD version fails too.
# The probe must be a static FreeBSD executable of the same machine: EI_OSABI FreeBSD, the
# ABI note, no interpreter, no dynamic section.
# Prints what it checked; exits 1 naming every failed check, 64 on bad usage.
set -eu

[ $# -eq 2 ] || { echo "usage: $0 BINARY PROBE" >&2; exit 64; }
bin=$1
probe=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

for f in "$bin" "$probe"; do
    [ -f "$f" ] || { echo "$0: no such file: $f" >&2; exit 66; }
done
readelf -h "$bin" >/dev/null 2>&1 || { echo "$0: not an ELF file: $bin" >&2; exit 65; }
readelf -h "$probe" >/dev/null 2>&1 || { echo "$0: not an ELF file: $probe" >&2; exit 65; }

machine() { readelf -h "$1" | sed -n 's/^ *Machine: *//p'; }
osabi() { readelf -h "$1" | sed -n 's/^ *OS\/ABI: *//p'; }
# The FreeBSD ABI tag: owner "FreeBSD", type NT_FREEBSD_ABI_TAG (1, which readelf calls
# NT_VERSION), 4 bytes of description (the release).
abi_note() { readelf -nW "$1" | grep -Eq '^ *FreeBSD +0x00000004[[:space:]]+NT_VERSION'; }

echo "$bin: $(machine "$bin"), OS/ABI $(osabi "$bin")"
abi_note "$bin" || fail "$bin: no FreeBSD ABI note (.note.tag): not branded for FreeBSD"
interp=$(readelf -lW "$bin" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]/\1/p')
[ "$interp" = /libexec/ld-elf.so.1 ] \
    || fail "$bin: interpreter is '$interp', not FreeBSD's /libexec/ld-elf.so.1"
needed=$(readelf -dW "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
echo "  libraries: $needed"
case " $needed " in
*" libc.so.7 "*) ;;
*) fail "$bin: does not link FreeBSD's libc.so.7" ;;
esac
for lib in $needed; do
    case $lib in
    libc.so.7 | libthr.so.3 | libm.so.5 | libgcc_s.so.1 | librt.so.1 | libutil.so.9 | \
        libexecinfo.so.1 | libkvm.so.7 | libprocstat.so.1 | libmemstat.so.3 | libdevstat.so.7) ;;
    *) fail "$bin: links $lib, which is not a FreeBSD base library" ;;
    esac
done

# Undefined dynamic symbols as NAME@VERSION (or NAME alone) with their binding.
imports=$(readelf --dyn-syms -W "$bin" | awk '$7 == "UND" && $8 != "" { print $5, $8 }')
calls=$(cat "$src"/src/sys/freebsd/*.rs "$src"/src/sys/posix.rs \
    | grep -o 'libc::[a-z_][a-z0-9_]*(' | sed 's/^libc:://; s/($//' | sort -u)
[ -n "$calls" ] || fail "found no libc calls in $src/src/sys (wrong source tree?)"
checked=""
for name in $calls; do
    version=$(echo "$imports" | awk -v n="$name" '{ split($2, s, "@") } s[1] == n { print s[2] }' | head -1)
    case $version in
    FBSD_*) checked="$checked $name@$version" ;;
    "") fail "$bin: does not import $name, which the FreeBSD backend calls" ;;
    *) fail "$bin: imports $name without a FreeBSD symbol version ('$version')" ;;
    esac
done
echo "  backend imports:$checked"
# A strong import that no FreeBSD library version defines would fail at load time.
unversioned=$(echo "$imports" | awk '$1 != "WEAK" && $2 !~ /@FBSD_1\.[0-9]+$/ { print $2 }' | tr '\n' ' ')
[ -z "$unversioned" ] || fail "$bin: imports without a FreeBSD symbol version: $unversioned"

echo "$probe: $(machine "$probe"), OS/ABI $(osabi "$probe")"
[ "$(machine "$probe")" = "$(machine "$bin")" ] || fail "$probe: machine differs from $bin"
[ "$(osabi "$probe")" = "UNIX - FreeBSD" ] || fail "$probe: EI_OSABI is not FreeBSD"
abi_note "$probe" || fail "$probe: no FreeBSD ABI note (.note.tag)"
readelf -h "$probe" | grep -Eq '^ *Type: +EXEC' || fail "$probe: not a static executable (ET_EXEC)"
! readelf -lW "$probe" | grep -q 'INTERP' || fail "$probe: has an interpreter"
! readelf -lW "$probe" | grep -q 'DYNAMIC' || fail "$probe: has a dynamic section"

[ "$failed" -eq 0 ] || exit 1
echo "ok: $bin and $probe are FreeBSD programs"
