#!/bin/sh
# The first-use path as a newcomer meets it, run by CI: a fresh environment
# (no DCLAB_* variables, nothing but HOME and PATH), the README's set-up
# command, then the commands of the README's tour exactly as written, block
# by block (the OpenStack block excepted: CI's openstack_hpi test installs
# that lab). Everything the tour made is removed, also when a step fails.
set -eu
cd "$(dirname "$0")/.."
fresh() { env -i HOME="$HOME" PATH="$PATH" TERM=dumb "$@"; }

cleanup() {
    fresh sh -c 'ctl lab down pair; ctl local down' >/dev/null 2>&1 || true
    rm -f run.html dclab-demo-lab.html dclab-demo-report.html
}
trap cleanup EXIT

# The README's lines, not a copy: its first sh block is the set-up.
setup=$(awk '/^## The two commands/{on=1} on && /^```sh/{getline; print; exit}' README.md | sed 's/ *#.*//')
echo "== $setup"
fresh sh -eu -c "$setup"
# The demo left its report and the lab's picture, the report headed by it.
for page in dclab-demo-report.html dclab-demo-lab.html; do
    grep -q 'class="node"' "$page" || { echo "first-use: $page has no lab picture" >&2; exit 1; }
done

# The tour's first two sh blocks: isolation, then the lab and experiment.
tour=$(awk '/^## A tour/{on=1} /^## Where/{on=0} on && /^```sh/{b++; inb=1; next} inb && /^```/{inb=0; next} on && inb && b<=2 {print}' README.md)
echo "$tour" | while IFS= read -r line; do
    [ -n "$line" ] || continue
    echo "== $line"
    fresh sh -eu -c "$line" </dev/null
done
grep -q 'class="node"' run.html || { echo "first-use: run.html has no lab picture" >&2; exit 1; }
echo "first-use path: every README command ran"
