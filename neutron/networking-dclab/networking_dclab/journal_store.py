"""The journal's tables, in SQLAlchemy Core.

In neutron-server they live in Neutron's own database: an entry is
inserted through the session of the Neutron call's transaction (precommit),
so it commits or rolls back with the change it describes. The worker reads
and deletes entries through an engine of the same database. Tests use a
sqlite file through the same code.

The tables are created with `create_all(checkfirst=True)` when the driver
starts, rather than through an alembic branch of neutron-db-manage: two
small tables that only this driver reads, whose schema has not changed
yet. The day a column changes, that needs a real migration branch.
"""

import json
import time

import sqlalchemy as sa

metadata = sa.MetaData()

PENDING = "pending"
FAILED = "failed"

# Unix time in seconds. A plain Float is MySQL's 4-byte FLOAT, which holds
# today's time to about 2 minutes: leases then expired at random. FLOAT(53)
# is a DOUBLE there, and sqlite's REAL anyway.
SECONDS = sa.Float(precision=53)

# seq orders the entries: the worker pushes them oldest first.
journal = sa.Table(
    "dclab_journal", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
              primary_key=True, autoincrement=True),
    sa.Column("operation", sa.String(32), nullable=False),
    sa.Column("object_name", sa.String(64), nullable=False),
    # Set for network changes: a subnet check waits for its tenant's.
    sa.Column("tenant", sa.String(64)),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", SECONDS, nullable=False),
    sa.Index("ix_dclab_journal_state_seq", "state", "seq"),
)

# One row: which worker (of all neutron-server processes and hosts) pushes
# entries and runs the full sync, until when. One pusher keeps the order.
lease = sa.Table(
    "dclab_journal_lease", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("expires_at", SECONDS, nullable=False),
)
LEASE_NAME = "worker"


def create_tables(engine):
    try:
        metadata.create_all(engine, checkfirst=True)
    except sa.exc.DatabaseError:
        # Another process created them between the check and the create.
        metadata.create_all(engine, checkfirst=True)


def record(conn, operation, object_name, payload, tenant=None):
    """Inserts an entry through `conn` (a Session or Connection), inside
    the caller's transaction."""
    conn.execute(journal.insert().values(
        operation=operation, object_name=object_name, tenant=tenant,
        payload=json.dumps(payload, sort_keys=True), state=PENDING,
        attempts=0, created_at=time.time()))


def pending_count(conn, tenant=None):
    """Pending entries, or only the network changes of `tenant`."""
    query = sa.select(sa.func.count()).select_from(journal).where(journal.c.state == PENDING)
    if tenant is not None:
        query = query.where(journal.c.tenant == tenant)
    return conn.execute(query).scalar()


def oldest_pending(conn):
    query = (sa.select(journal).where(journal.c.state == PENDING)
             .order_by(journal.c.seq).limit(1))
    return conn.execute(query).first()


def entries(conn, state=None):
    query = sa.select(journal).order_by(journal.c.seq)
    if state is not None:
        query = query.where(journal.c.state == state)
    return conn.execute(query).fetchall()


def remove(conn, seq):
    conn.execute(journal.delete().where(journal.c.seq == seq))


def note_attempt(conn, seq, error):
    conn.execute(journal.update().where(journal.c.seq == seq).values(
        attempts=journal.c.attempts + 1, last_error=error))


def mark_failed(conn, seq, error):
    conn.execute(journal.update().where(journal.c.seq == seq).values(
        state=FAILED, attempts=journal.c.attempts + 1, last_error=error))


def prune_failed(conn, older_than):
    conn.execute(journal.delete().where(journal.c.state == FAILED)
                 .where(journal.c.created_at < older_than))


def take_lease(engine, holder, ttl):
    """Takes or renews the worker lease; False while another holder's runs."""
    now = time.time()
    with engine.begin() as conn:
        renewed = conn.execute(
            lease.update()
            .where(lease.c.name == LEASE_NAME)
            .where(sa.or_(lease.c.holder == holder, lease.c.expires_at < now))
            .values(holder=holder, expires_at=now + ttl))
        if renewed.rowcount == 1:
            return True
        taken = conn.execute(sa.select(lease.c.name).where(lease.c.name == LEASE_NAME)).first()
        if taken is not None:
            return False
    try:
        with engine.begin() as conn:
            conn.execute(lease.insert().values(name=LEASE_NAME, holder=holder,
                                               expires_at=now + ttl))
        return True
    except Exception as e:  # another process inserted it first
        if _is_duplicate(e):
            return False
        raise


def _is_duplicate(error):
    """SQLAlchemy's IntegrityError, or oslo.db's DBDuplicateEntry, which is
    what it becomes on an engine of Neutron's (oslo.db wraps it)."""
    if isinstance(error, sa.exc.IntegrityError):
        return True
    try:
        from oslo_db import exception as db_exc
    except ImportError:
        return False
    return isinstance(error, db_exc.DBDuplicateEntry)


def release_lease(engine, holder):
    with engine.begin() as conn:
        conn.execute(lease.delete().where(lease.c.name == LEASE_NAME)
                     .where(lease.c.holder == holder))
