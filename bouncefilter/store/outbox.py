"""The outbox: what the forwarder must still hand on, claimed under a lease, settled once.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from bouncefilter.store.db import BOOLEAN_COLUMNS, BOUNCE_COLUMNS, Writing

#: Outbox states; the pipe writes ``pending`` rows, the forwarder moves them on:
#: ``sending`` (claimed; ``due_at`` is then when the claim lapses), ``done``, ``dead``.
PENDING = "pending"
SENDING = "sending"
DONE = "done"
DEAD = "dead"


def outbox_rows(conn: sqlite3.Connection, bounce_id: int) -> list[tuple[str, str]]:
    """The outbox rows of one stored bounce, as (target, state) pairs."""
    return conn.execute("SELECT target, state FROM outbox WHERE bounce_id = ? ORDER BY id", (bounce_id,)).fetchall()


class OutboxItem(NamedTuple):
    """One claimed outbox row and what forwarding it needs: the stored bounce row (as
    :func:`bounces` gives it) and the bounced message's original envelope sender."""

    id: int
    target: str
    attempts: int  # this one included
    queued_at: float
    bounce: dict[str, object]
    sender: str = ""
    dedup_key: str = ""


_CLAIM = (
    f"UPDATE outbox SET state = '{SENDING}', claim = ?, due_at = ?, attempts = attempts + 1 WHERE id IN"
    f" (SELECT id FROM outbox WHERE state IN ('{PENDING}', '{SENDING}') AND due_at <= ? AND bounce_id IS NOT NULL"
    " ORDER BY due_at LIMIT ?)"
)


_CLAIMED = (
    "SELECT o.id, o.target, o.attempts, o.queued_at, coalesce(m.sender, ''), b.dedup_key, "
    + ", ".join(f"b.{column}" for column in BOUNCE_COLUMNS)
    + " FROM outbox o JOIN bounces b ON b.id = o.bounce_id LEFT JOIN messages m"
    f" ON m.message_key = b.message_key AND b.message_key != '' WHERE o.claim = ? AND o.state = '{SENDING}'"
    " ORDER BY o.due_at, o.id"
)


def claim_due(conn: sqlite3.Connection, claim: str, now: float, lease: float, limit: int) -> list[OutboxItem]:
    """Claim up to ``limit`` rows due at ``now`` for the forwarder ``claim`` (a string no
    other forwarder uses) until ``now + lease``, oldest due first, and return them.

    Due rows are ``pending`` ones whose time has come and ``sending`` ones whose claim
    has lapsed (their forwarder died). Claiming is one write transaction, so two
    forwarders never claim one row at once; each claim counts as an attempt.
    """
    with Writing(conn):
        conn.execute(_CLAIM, (claim, now + lease, now, limit))
    items = []
    for oid, target, attempts, queued_at, sender, key, *values in conn.execute(_CLAIMED, (claim,)):
        bounce = dict(zip(BOUNCE_COLUMNS, values))
        for name in BOOLEAN_COLUMNS:
            bounce[name] = bool(bounce[name])
        items.append(OutboxItem(oid, target, attempts, queued_at, bounce, sender, key))
    return items


def extend_claim(conn: sqlite3.Connection, claim: str, until: float) -> None:
    """Keep the rows ``claim`` still holds claimed until ``until``."""
    conn.execute(f"UPDATE outbox SET due_at = ? WHERE claim = ? AND state = '{SENDING}'", (until, claim))


def mark_done(conn: sqlite3.Connection, row_id: int, claim: str, now: float) -> bool:
    """Row ``row_id``, held by ``claim``, was delivered; ``False`` if the claim was lost."""
    return _settle(conn, row_id, claim, f"state = '{DONE}', done_at = ?, last_error = ''", (now,))


def mark_retry(conn: sqlite3.Connection, row_id: int, claim: str, due_at: float, error: str,
               count_attempt: bool = True) -> bool:
    """Row ``row_id`` failed for now: pending again, due at ``due_at``, with ``error``.
    ``count_attempt`` false takes back the attempt its claim counted (it was never
    tried: its target failed on an earlier row)."""
    undo = "" if count_attempt else ", attempts = attempts - 1"
    return _settle(conn, row_id, claim, f"state = '{PENDING}', due_at = ?, last_error = ?{undo}", (due_at, error))


def mark_dead(conn: sqlite3.Connection, row_id: int, claim: str, error: str, count_attempt: bool = True) -> bool:
    """Row ``row_id`` is given up: ``dead``, with ``error``, until an administrator retries
    it (``count_attempt`` as for :func:`mark_retry`)."""
    undo = "" if count_attempt else ", attempts = attempts - 1"
    return _settle(conn, row_id, claim, f"state = '{DEAD}', last_error = ?{undo}", (error,))


def _settle(conn: sqlite3.Connection, row_id: int, claim: str, assignments: str, values: tuple[object, ...]) -> bool:
    cursor = conn.execute(
        f"UPDATE outbox SET {assignments}, claim = '' WHERE id = ? AND claim = ? AND state = '{SENDING}'",
        (*values, row_id, claim),
    )
    return cursor.rowcount == 1


def next_due(conn: sqlite3.Connection) -> float | None:
    """When the next row falls due (pending, or a claim lapses), or ``None`` for an
    empty outbox. Cheap: one look into the ``(state, due_at)`` index."""
    row = conn.execute(f"SELECT min(due_at) FROM outbox WHERE state IN ('{PENDING}', '{SENDING}')").fetchone()
    return None if row[0] is None else float(row[0])


def dead_letters(conn: sqlite3.Connection) -> list[dict[str, object]]:
    """The given-up rows, oldest first: id, target, attempts, queued_at, last_error and
    their bounce's id, account, recipient and outcome."""
    columns = ("id", "target", "attempts", "queued_at", "last_error", "bounce_id", "account", "recipient", "outcome")
    rows = conn.execute(
        "SELECT o.id, o.target, o.attempts, o.queued_at, o.last_error, b.id, b.account, b.recipient, b.outcome"
        f" FROM outbox o JOIN bounces b ON b.id = o.bounce_id WHERE o.state = '{DEAD}' ORDER BY o.id"
    )
    return [dict(zip(columns, row)) for row in rows]


def retry_dead(conn: sqlite3.Connection, now: float, row_id: int | None = None) -> int:
    """Make row ``row_id`` (``None``: every dead row) pending again, due ``now``, with a
    fresh ``forward.max_age`` and no attempts; the number of rows changed (0 for an id
    that is not dead)."""
    where, params = (" AND id = ?", (row_id,)) if row_id is not None else ("", ())
    with Writing(conn):
        cursor = conn.execute(
            f"UPDATE outbox SET state = '{PENDING}', due_at = ?, queued_at = ?, attempts = 0"
            f" WHERE state = '{DEAD}'{where}",
            (now, now, *params),
        )
    return cursor.rowcount
