#!/bin/sh
# The dclab serial command loop (protocol in agent/src/image/mod.rs). One line
# "<id> <command>" in; "DCLAB-BEGIN <id>", the output as it comes, then a
# newline and "DCLAB-END <id> <rc>" out.
stty -echo -onlcr 2>/dev/null
echo "DCLAB-READY $(hostname)"
reader=
while IFS= read -r line; do
    id="${line%% *}"
    cmd="${line#* }"
    [ "$cmd" = "$line" ] && cmd=
    case "$id" in "" | *[!A-Za-z0-9_.-]*) continue ;; esac
    # The previous command's reader has passed its end line on (the host
    # sends a command only after it): what it still carries comes from what
    # that command left running, and ends here.
    if [ -n "$reader" ] && grep -q dclab-out "/proc/$reader/cmdline" 2>/dev/null; then
        kill "$reader"
    fi
    # The output goes through a pipe, so the command's stdout is no tty,
    # and the end line after it, so the loop need not wait for the pipe to
    # drain (nor for what the command left running with it open).
    rm -f /tmp/dclab-out
    mkfifo /tmp/dclab-out
    cat /tmp/dclab-out &
    reader=$!
    {
        # A newline first: a line left unfinished on the console ends here.
        printf '\nDCLAB-BEGIN %s\n' "$id"
        sh -c "$cmd" < /dev/null 2>&1
        printf '\nDCLAB-END %s %s\n' "$id" "$?"
    } > /tmp/dclab-out
done
