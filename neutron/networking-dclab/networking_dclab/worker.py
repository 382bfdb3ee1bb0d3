"""The thread that pushes the journal and runs the full sync.

Every neutron-server process (API and RPC workers, on every controller)
runs one; a lease row in the database lets one of them at a time push and
sync, so entries reach the coordinator in order. Each step reads the
coordinator's Status (is it up? was its store reset?), drains the journal,
then syncs when due. While the coordinator is down, steps back off
exponentially up to `backoff_max` seconds. Between idle steps the worker
looks for pending entries every `poll_interval` seconds (one COUNT query):
entries committed by another process (neutron-api's uWSGI workers, which
run no worker of their own) cannot wake it, and waiting out a whole idle
interval would put up to that much into every port's time to applied.
"""

import logging
import os
import socket
import threading
import time
import uuid

from networking_dclab import journal_store
from networking_dclab.client import CoordinatorError
from networking_dclab.sync import SyncSchedule

LOG = logging.getLogger(__name__)


class Worker:
    def __init__(self, journal, client_factory, synchronizer=None, *, sync_interval=60.0,
                 sync_retry=5.0, idle_interval=2.0, backoff_start=0.25, backoff_max=30.0,
                 lease_ttl=30.0, poll_interval=0.2):
        """`client_factory()` makes a client.Coordinator; it is called in the
        worker's own process (a gRPC channel does not survive a fork)."""
        self.journal = journal
        self._client_factory = client_factory
        self._synchronizer = synchronizer
        self.schedule = SyncSchedule(sync_interval, sync_retry)
        self._idle = idle_interval
        self._poll = poll_interval
        # Set by a step that ended healthy and idle; only then is polling
        # the journal useful (a back-off's wait may equal the idle one).
        self._idle_now = False
        self._backoff_start = backoff_start
        self._backoff_max = backoff_max
        self._backoff = backoff_start
        self._lease_ttl = lease_ttl
        self._lease_renewed = 0.0
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._client = None
        self._thread = None
        self._pid = None
        self._stop = threading.Event()

    # Life cycle.

    def ensure_running(self):
        """Starts the thread in this process unless it runs already (after
        a fork the parent's thread is gone: the child starts its own)."""
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        if self._pid != os.getpid():
            self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            self._client = None
        self._pid = os.getpid()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dclab-journal", daemon=True)
        self._thread.start()

    def stop(self, timeout=10.0):
        self._stop.set()
        self.journal.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            journal_store.release_lease(self.journal.engine, self.holder)
        except Exception:  # the database may be gone at shutdown
            LOG.debug("could not release the journal lease", exc_info=True)
        if self._client is not None:
            self._client.close()
            self._client = None

    def _run(self):
        while not self._stop.is_set():
            self._idle_now = False
            try:
                wait = self.step()
            except Exception:
                LOG.exception("dclab journal worker step failed; retrying")
                wait = self._backoff_max
            self._wait(wait, poll=self._idle_now)

    def _wait(self, wait, poll):
        """Up to `wait` seconds; less when woken in this process or, with
        `poll` (the worker is idle, holds the lease and the coordinator
        answers), when another process committed an entry."""
        deadline = time.monotonic() + wait
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self.journal.wait_for_work(min(left, self._poll) if poll else left):
                return
            try:
                if poll and self.journal.has_pending():
                    return
            except Exception:  # the database away for a moment: wait on
                LOG.debug("could not look for pending entries", exc_info=True)

    # One step: returns how long to wait before the next.

    def step(self):
        if not self._renew_lease(force=True):
            return self._lease_ttl / 3
        client = self._ensure_client()
        try:
            self.schedule.observe(client.status())
            drained = self.journal.drain(client, keep_going=self._renew_lease)
            if drained.blocked_by is not None:
                return self._back_off(drained.blocked_by)
            self._maybe_sync(client)
        except CoordinatorError as e:
            if not e.unavailable:
                raise
            return self._back_off(e)
        self._backoff = self._backoff_start
        self._idle_now = True
        return self._idle

    def _maybe_sync(self, client):
        why = self.schedule.due()
        if why is None or self._synchronizer is None:
            return
        report = self._synchronizer.run(client, why)
        self.schedule.synced(report)
        self.schedule.observe(client.status())
        self.journal.prune()

    def _back_off(self, error):
        wait = self._backoff
        self._backoff = min(self._backoff * 2, self._backoff_max)
        LOG.warning("dclab coordinator unavailable (%s); retrying in %.1f s", error, wait)
        return wait

    def _ensure_client(self):
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _renew_lease(self, force=False):
        now = time.monotonic()
        if not force and now - self._lease_renewed < self._lease_ttl / 3:
            return True
        held = journal_store.take_lease(self.journal.engine, self.holder, self._lease_ttl)
        if held:
            self._lease_renewed = now
        return held

    def wait_drained(self, timeout):
        """True once the journal has no pending entry (for tests and tools)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.journal.has_pending():
                return True
            time.sleep(0.05)
        return False
