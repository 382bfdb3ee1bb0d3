#!/bin/sh
# The dclab serial command loop (protocol in ctl/src/image/mod.rs). One line
# "<id> <command>" in; "DCLAB-BEGIN <id>", the output, "DCLAB-END <id> <rc>" out.
stty -echo 2>/dev/null
echo "DCLAB-READY $(hostname)"
while IFS= read -r line; do
    id="${line%% *}"
    cmd="${line#* }"
    [ "$cmd" = "$line" ] && cmd=
    case "$id" in "" | *[!A-Za-z0-9_.-]*) continue ;; esac
    echo "DCLAB-BEGIN $id"
    sh -c "$cmd" < /dev/null > /tmp/dclab-out 2>&1
    rc=$?
    cat /tmp/dclab-out
    # End the output with a newline so the end marker starts its own line.
    [ -n "$(tail -c 1 /tmp/dclab-out)" ] && echo
    echo "DCLAB-END $id $rc"
done
