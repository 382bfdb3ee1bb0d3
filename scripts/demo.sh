#!/bin/sh
# Sets up a fresh Debian 12 machine and runs the demo: the paper's
# isolation test on three simulated hosts, printed as the paper's tables.
# Pass --keep to leave the setup running afterwards.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# ctl, coordinator and agent into /usr/local/bin, with completions.
scripts/install.sh
exec /usr/local/bin/ctl demo "$@"
