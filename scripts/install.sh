#!/bin/sh
# Builds dclab and puts ctl, coordinator and agent on the PATH, with ctl's
# shell completions (run as root):
#
#   scripts/install.sh              build (debug, as the tests use), install into /usr/local/bin
#   scripts/install.sh --no-build   install what target/debug holds
#
# PREFIX (default /usr/local) and BASH_COMPLETION_DIR (default
# /etc/bash_completion.d) change where they go. ctl local up starts the
# coordinator and agents installed beside ctl.
set -eu
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr/local}
bash_dir=${BASH_COMPLETION_DIR:-/etc/bash_completion.d}
build=1
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done
[ "$build" -eq 0 ] || cargo build --workspace --bins
install -d "$prefix/bin" "$bash_dir"
for bin in ctl coordinator agent; do
    install -m 0755 "target/debug/$bin" "$prefix/bin/$bin"
done
"$prefix/bin/ctl" completions bash > "$bash_dir/ctl"
if [ -z "${PREFIX:-}" ]; then
    # zsh and fish find completions here when they are installed.
    [ ! -d /usr/share/zsh/vendor-completions ] || ctl completions zsh > /usr/share/zsh/vendor-completions/_ctl
    [ ! -d /usr/share/fish/vendor_completions.d ] || ctl completions fish > /usr/share/fish/vendor_completions.d/ctl.fish
fi
echo "installed $("$prefix/bin/ctl" --version) into $prefix/bin; bash completions in $bash_dir/ctl (a new shell loads them)"
