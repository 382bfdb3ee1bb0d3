#!/bin/sh
# Sets up a fresh Debian 12 machine and runs the demo: the paper's
# isolation test on three simulated hosts, printed as the paper's tables,
# then a lab of containers across those hosts broken on purpose by an
# experiment, with its verdict, HTML report and the lab's picture.
#
#   scripts/demo.sh [--keep] [--no-lab] [--no-baseline]    (see ctl demo --help)
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh --vm
# ctl, coordinator and agent into /usr/local/bin, with completions.
scripts/install.sh
# libvirtd for the lab part, unless one answers already (ctl demo stops
# what it started itself; this one stays for later labs).
scripts/libvirtd.sh
# What this host lacks, each with its fix; nothing, once the above ran.
/usr/local/bin/ctl doctor
exec /usr/local/bin/ctl demo "$@"
