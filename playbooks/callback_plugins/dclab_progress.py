# dclab's stdout callback for `ctl lab install`: Ansible's default output,
# which ctl keeps as the full log, plus one machine-readable event per line
# (prefixed with a record separator) from which ctl prints a progress line
# per play and host and times each chapter.
import json
import time

from ansible.plugins.callback.default import CallbackModule as DefaultCallback

DOCUMENTATION = """
    name: dclab_progress
    type: stdout
    short_description: default output plus events for ctl lab install
    description:
      - Ansible's default output, with one JSON event per play, host result and failure.
    extends_documentation_fragment:
      - default_callback
    requirements:
      - set as stdout callback
"""

MARK = "\x1edclab "


class CallbackModule(DefaultCallback):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "dclab_progress"

    def __init__(self):
        super().__init__()
        # Not _play or _task: the default callback keeps its own there.
        self._dclab_play = None

    def _event(self, kind, **fields):
        fields["event"] = kind
        fields["time"] = time.time()
        # Straight to stdout: the display may wrap or colour long lines.
        print(MARK + json.dumps(fields, sort_keys=True), flush=True)

    def v2_playbook_on_play_start(self, play):
        super().v2_playbook_on_play_start(play)
        self._dclab_play = play.get_name().strip()
        self._event("play", play=self._dclab_play)

    def _result(self, status, result):
        self._event(
            "result",
            status=status,
            play=self._dclab_play,
            task=result._task.get_name().strip(),
            host=result._host.get_name(),
            changed=bool(result._result.get("changed", False)),
            msg=_message(result._result) if status in ("failed", "unreachable") else "",
        )

    def v2_runner_on_ok(self, result):
        super().v2_runner_on_ok(result)
        self._result("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        super().v2_runner_on_failed(result, ignore_errors)
        self._result("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_unreachable(self, result):
        super().v2_runner_on_unreachable(result)
        self._result("unreachable", result)

    def v2_runner_on_skipped(self, result):
        super().v2_runner_on_skipped(result)
        self._result("skipped", result)

    def v2_playbook_on_stats(self, stats):
        super().v2_playbook_on_stats(stats)
        hosts = {h: stats.summarize(h) for h in sorted(stats.processed.keys())}
        self._event("stats", hosts=hosts)


def _message(result):
    # A loop's own message says only that an item failed: take the item's.
    for item in result.get("results", []) or []:
        if isinstance(item, dict) and item.get("failed"):
            label = item.get("item")
            return f"item {label}: {_message(item)}"[:500]
    parts = [str(result.get("msg", "")).strip()]
    for key in ("stderr", "stdout"):
        text = str(result.get(key, "")).strip()
        if text:
            parts.append(text.splitlines()[-1])
            break
    return " / ".join(p for p in parts if p)[:500]
