"""The backlog of changes for the coordinator.

Precommit records an entry in the Neutron call's own transaction, so an
entry exists exactly when its change committed. After the commit a worker
(worker.py) pushes entries oldest first; an entry leaves the journal once
the coordinator holds what it says. While the coordinator is unreachable
the oldest entry stays at the head and everything behind it waits, in
order; Neutron meanwhile goes on recording. An entry the coordinator
refuses (bad input, a conflict) cannot succeed by retrying: it is marked
failed with the coordinator's message, logged, and the journal moves on;
the full sync repairs whatever that leaves out of step.
"""

import dataclasses
import json
import logging
import threading
import time

from networking_dclab import journal_store as store
from networking_dclab import push
from networking_dclab.client import CoordinatorError

LOG = logging.getLogger(__name__)

# Errors that are neither "down" nor "refused" (INTERNAL, PERMISSION_DENIED
# after a certificate mix-up, ...) are retried this often, then failed.
MAX_ATTEMPTS = 5
FAILED_KEPT_SECONDS = 7 * 24 * 3600


@dataclasses.dataclass
class DrainResult:
    pushed: int = 0
    failed: int = 0
    # Set when the head entry must wait: the coordinator is unreachable.
    blocked_by: CoordinatorError = None


class Journal:
    def __init__(self, engine):
        self.engine = engine
        store.create_tables(engine)
        self._work = threading.Event()

    # Recording, inside Neutron's transaction (`session` is the plugin
    # context's session).

    def record_network(self, session, spec):
        store.record(session, push.ENSURE_NETWORK, spec.name, spec.payload(), spec.tenant)

    def record_network_delete(self, session, tenant, name):
        store.record(session, push.DELETE_NETWORK, name, {"tenant": tenant, "name": name},
                     tenant)

    def record_port(self, session, spec):
        store.record(session, push.PUT_PORT, spec.name, spec.payload())

    def record_port_delete(self, session, name):
        store.record(session, push.DELETE_PORT, name, {"name": name})

    def has_pending(self, tenant=None):
        """Whether entries wait (only network changes of `tenant`, if given),
        as other transactions committed them."""
        with self.engine.connect() as conn:
            return store.pending_count(conn, tenant) > 0

    def wait_settled(self, tenant, timeout):
        """Waits until no network change of `tenant` is pending; False if
        some still is after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.has_pending(tenant):
            if time.monotonic() >= deadline:
                return False
            self.wake()
            time.sleep(0.02)
        return True

    # After the commit.

    def wake(self):
        """A new entry committed: let the worker push it now."""
        self._work.set()

    def wait_for_work(self, timeout):
        """True when woken before `timeout`."""
        woken = self._work.wait(timeout)
        self._work.clear()
        return woken

    def drain(self, client, keep_going=lambda: True):
        """Pushes entries in order until none is left, the head must wait,
        or `keep_going` says stop (the worker lost its lease)."""
        result = DrainResult()
        while keep_going():
            with self.engine.connect() as conn:
                entry = store.oldest_pending(conn)
            if entry is None:
                return result
            try:
                push.apply(client, entry.operation, json.loads(entry.payload))
            except CoordinatorError as e:
                if not self._give_up(entry, e):
                    result.blocked_by = e
                    return result
                result.failed += 1
                continue
            with self.engine.begin() as conn:
                store.remove(conn, entry.seq)
            result.pushed += 1
            LOG.debug("pushed journal entry %s: %s %s", entry.seq, entry.operation,
                      entry.object_name)
        return result

    def _give_up(self, entry, error):
        """Marks a refused entry failed (True), or notes a retry (False)."""
        give_up = error.refused or (not error.unavailable and entry.attempts + 1 >= MAX_ATTEMPTS)
        with self.engine.begin() as conn:
            if give_up:
                store.mark_failed(conn, entry.seq, str(error))
            else:
                store.note_attempt(conn, entry.seq, str(error))
        if give_up:
            LOG.error("dclab coordinator refused %s %s (journal entry %s): %s; "
                      "the full sync will retry what Neutron still has",
                      entry.operation, entry.object_name, entry.seq, error)
        else:
            LOG.debug("journal entry %s (%s %s) must wait: %s",
                      entry.seq, entry.operation, entry.object_name, error)
        return give_up

    def prune(self):
        with self.engine.begin() as conn:
            store.prune_failed(conn, time.time() - FAILED_KEPT_SECONDS)

    def entries(self, state=None):
        with self.engine.connect() as conn:
            return store.entries(conn, state)
