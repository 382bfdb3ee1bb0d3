#!/bin/sh
# Checks systemd units with `systemd-analyze verify` (deploy/systemd by default).
#
#   scripts/verify-units.sh [--bin-dir DIR] [UNIT | UNIT_DIR ...]
#
# UNIT is a unit file, UNIT_DIR a directory of them (its *.service files and
# the drop-in directories NAME.service.d/ beside them). A drop-in for a unit
# that is not given (deploy/systemd/libvirtd.service.d/) is checked on this
# machine's copy of that unit, or skipped with a note if it has none.
# --bin-dir DIR: every Exec*= line that runs /usr/local/bin/NAME runs
# DIR/NAME instead, e.g. --bin-dir target/debug: systemd-analyze refuses a
# unit whose binary does not exist.
#
# The units are copied into a temporary directory, which is removed at exit.
# Exit 0: systemd-analyze said nothing about them. Exit 1: it printed an
# error or warning about one of them (it exits 0 after "Unknown key", so
# its output decides) or failed. Exit 2: bad arguments, or no
# systemd-analyze (package systemd).
set -eu

me=verify-units.sh
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
die() {
    echo "$me: $*" >&2
    exit 2
}

root=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir)
            [ $# -ge 2 ] || die "--bin-dir needs a directory"
            bin_dir=$2
            shift 2
            ;;
        --bin-dir=*)
            bin_dir=${1#--bin-dir=}
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        --)
            shift
            break
            ;;
        -*) die "unknown option $1 (--help shows the usage)" ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || set -- "$root/deploy/systemd"

command -v systemd-analyze >/dev/null 2>&1 ||
    die "systemd-analyze not found: install the systemd package (apt-get install systemd)"

if [ -n "$bin_dir" ]; then
    [ -d "$bin_dir" ] || die "--bin-dir $bin_dir is not a directory"
    bin_dir=$(cd "$bin_dir" && pwd)
    case "$bin_dir" in
        *'|'* | *'\'* | *'&'*) die "--bin-dir $bin_dir: '|', '\\' and '&' are not supported in the path" ;;
    esac
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/verify-units.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
units="$tmp/units"
mkdir "$units"
# Every name that marks a line of systemd-analyze's output as about our units.
names="$tmp/names"
echo "$units/" >"$names"
checked=""
notes=""

# Copies one unit file, pointing /usr/local/bin at --bin-dir.
add_unit() {
    name=$(basename "$1")
    case "$name" in
        *.service | *.socket | *.timer | *.target | *.path | *.mount | *.slice) ;;
        *) die "$1: not a unit file (.service, .socket, .timer, ...)" ;;
    esac
    [ ! -e "$units/$name" ] || die "two units named $name"
    if [ -n "$bin_dir" ]; then
        sed -E "s|^(Exec[A-Za-z]*=[-@:+!]*)/usr/local/bin/|\\1$bin_dir/|" "$1" >"$units/$name"
    else
        cp "$1" "$units/$name"
    fi
    echo "$name" >>"$names"
    checked="$checked $1"
}

# Copies a drop-in directory NAME.d; NAME must be given or installed here.
add_dropins() {
    base=$(basename "$1" .d)
    [ ! -e "$units/$base.d" ] || die "two drop-in directories $base.d"
    if [ ! -e "$units/$base" ] && [ ! -e "$(dirname "$1")/$base" ]; then
        for dir in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
            if [ -f "$dir/$base" ]; then
                cp "$dir/$base" "$units/$base"
                echo "$base" >>"$names"
                break
            fi
        done
        if [ ! -e "$units/$base" ]; then
            notes="$notes
$me: note: $1 not checked: this machine has no $base"
            return
        fi
    fi
    mkdir "$units/$base.d"
    for conf in "$1"/*.conf; do
        [ -e "$conf" ] || continue
        cp "$conf" "$units/$base.d/"
        echo "$base.d/$(basename "$conf")" >>"$names"
        checked="$checked $conf"
    done
}

for arg in "$@"; do
    if [ -d "$arg" ]; then
        found=0
        for f in "$arg"/*.service "$arg"/*.socket "$arg"/*.timer; do
            [ -f "$f" ] || continue
            add_unit "$f"
            found=1
        done
        [ "$found" -eq 1 ] || die "$arg holds no unit files"
        for d in "$arg"/*.service.d; do
            [ -d "$d" ] || continue
            add_dropins "$d"
        done
    elif [ -f "$arg" ]; then
        add_unit "$arg"
    else
        die "$arg: no such unit file or directory"
    fi
done

# --man=no: Documentation=man: pages are not looked up (man is often not
# installed). --recursive-errors=no (systemd 250 and later): errors of the
# units ours pull in (a broken unit of this machine) are not ours; what it
# says about them is still shown, as a note.
version=$(systemd-analyze --version | awk 'NR == 1 {print $2}')
set -- --man=no
case "$version" in
    '' | *[!0-9]*) ;;
    *) [ "$version" -lt 250 ] || set -- "$@" --recursive-errors=no ;;
esac
for f in "$units"/*; do
    [ -f "$f" ] && set -- "$@" "$f"
done
rc=0
out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$@" 2>&1) || rc=$?

ours=$(printf '%s\n' "$out" | grep -F -f "$names" || true)
others=$(printf '%s\n' "$out" | grep -v -F -f "$names" | grep -v '^$' || true)
[ -z "$notes" ] || printf '%s\n' "$notes" | sed '/^$/d' >&2
[ -z "$others" ] || printf '%s\n' "$others" | sed "s|^|$me: note, not about these units: |" >&2
if [ -n "$ours" ]; then
    printf '%s\n' "$ours" | sed "s|$units/||g; s|^|$me: |" >&2
    if [ -z "$bin_dir" ] && printf '%s\n' "$ours" | grep -q 'is not executable'; then
        echo "$me: a unit's binary is missing: install it, or point at built ones with --bin-dir target/debug" >&2
    fi
    echo "$me: FAILED: systemd-analyze verify (systemd $version, exit code $rc) found problems in:$checked" >&2
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "$me: FAILED: systemd-analyze verify exited with $rc without naming the units; they were not checked" >&2
    exit 1
fi
echo "$me: ok, systemd-analyze verify (systemd $version) found nothing to report in:$checked"
