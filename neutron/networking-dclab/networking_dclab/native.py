"""What kind of process and thread the driver runs in.

neutron-server and neutron-rpc-server monkey-patch with eventlet and run
every green thread in their main OS thread, whose hub always runs. Debian
runs the API under uWSGI instead (neutron-api: native request threads, 32
per process, each sitting in uWSGI's C code between requests): a green
thread started there runs only while its OS thread happens to be inside
eventlet, and a green event set from another request thread fails
("greenlet.error: cannot switch to a different thread"). So:

- the journal worker runs only in processes that are not uWSGI's; the API
  processes record the journal in Neutron's transactions, and the RPC
  server's worker pushes it (it polls the journal, so nothing waits for a
  wake-up that cannot come);
- gRPC calls go through eventlet's thread pool only in the main OS thread
  of a patched process, where a blocking call would stall every green
  thread; in a native request thread a call just blocks that thread;
- the driver's own lock is a native one, as request threads share it.
"""

import sys
import threading


def _patched_eventlet():
    eventlet = sys.modules.get("eventlet")
    if eventlet is not None and eventlet.patcher.is_monkey_patched("thread"):
        return eventlet
    return None


def threads():
    """The `threading` module whose Thread, Event and Lock are the OS's."""
    eventlet = _patched_eventlet()
    return eventlet.patcher.original("threading") if eventlet else threading


def in_green_main_thread():
    """True in the main OS thread of a monkey-patched process, where a
    blocking call would stall every green thread."""
    eventlet = _patched_eventlet()
    if eventlet is None:
        return False
    # threading.main_thread() is eventlet's unpatched original: its ident is
    # the OS thread's, as is the original _thread.get_ident().
    return eventlet.patcher.original("_thread").get_ident() == threading.main_thread().ident


def runs_journal_worker():
    """False in uWSGI's processes (the embedded `uwsgi` module is there)."""
    return "uwsgi" not in sys.modules
