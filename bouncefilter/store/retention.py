"""Retention: deleting what is older than the configured days, in short transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

from bouncefilter.store.db import Writing
from bouncefilter.store.outbox import DEAD, DONE, PENDING, SENDING

#: Rows deleted per transaction, so a purge never holds the write lock for long (pipes
#: wait at most their busy timeout for it).
PURGE_BATCH = 2000


class Purged(NamedTuple):
    """How many rows :func:`purge` deleted, per table (a bounce's outbox rows go with it);
    ``events``: settled outbox rows of suppression events."""

    bounces: int = 0
    raw_messages: int = 0
    messages: int = 0
    events: int = 0


#: Raw messages older than the cut-off that no pending outbox row still needs.
_OLD_RAW = (
    "SELECT r.id FROM raw_messages r WHERE r.received_at < ? AND NOT EXISTS ("
    " SELECT 1 FROM bounces b JOIN outbox o ON o.bounce_id = b.id"
    f" WHERE b.raw_id = r.id AND o.state IN ('{PENDING}', '{SENDING}')) LIMIT ?"
)
#: Outbox rows of suppression events that are settled (done or dead) and old.
_OLD_EVENTS = (
    f"SELECT id FROM outbox WHERE history_id IS NOT NULL AND state IN ('{DONE}', '{DEAD}') AND queued_at < ? LIMIT ?"
)


def purge(conn: sqlite3.Connection, now: float, days: int, raw_days: int) -> Purged:
    """Delete bounces (with their outbox rows) and sent messages older than ``days``, and
    raw messages older than ``raw_days``, counted back from ``now`` (epoch seconds).

    A raw message that a pending outbox row still needs (the forwarder re-sends it) is
    kept until that row is done; rows that pointed at a deleted raw message keep
    everything else. The suppression list and its history are never purged (an address
    can be explained however long ago it was listed); a suppression event's outbox row
    goes once it is settled (done or dead) and queued more than ``days`` ago, never
    while it is still to be sent. Works in batches of :data:`PURGE_BATCH` rows, each its own short
    transaction, so pipes never wait long for it.
    """
    before, raw_before = now - days * 86400, now - raw_days * 86400
    return Purged(
        bounces=_in_batches(
            conn, "SELECT id FROM bounces WHERE received_at < ? LIMIT ?", before,
            ("DELETE FROM outbox WHERE bounce_id = ?", "DELETE FROM bounces WHERE id = ?"),
        ),
        raw_messages=_in_batches(
            conn, _OLD_RAW, raw_before,
            ("UPDATE bounces SET raw_id = NULL WHERE raw_id = ?", "DELETE FROM raw_messages WHERE id = ?"),
        ),
        messages=_in_batches(
            conn, "SELECT message_key FROM messages WHERE sent_at < ? LIMIT ?", before,
            ("DELETE FROM messages WHERE message_key = ?",),
        ),
        events=_in_batches(conn, _OLD_EVENTS, before, ("DELETE FROM outbox WHERE id = ?",)),
    )


def _in_batches(conn: sqlite3.Connection, select: str, before: float, statements: Sequence[str]) -> int:
    """Until ``select`` (parameters: cut-off, batch size) finds no more ids, run each of
    ``statements`` for each id found, one transaction per batch; the number of ids."""
    total = 0
    while True:
        with Writing(conn):
            ids = conn.execute(select, (before, PURGE_BATCH)).fetchall()
            for statement in statements:
                conn.executemany(statement, ids)
        total += len(ids)
        if len(ids) < PURGE_BATCH:
            return total
