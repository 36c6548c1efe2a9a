"""The outbox: what the forwarder must still hand on, claimed under a lease, settled once.

A row is one event for one target: a stored bounce (``bounce_id``) or a change to the
suppression list (``history_id``: ``suppression.created``, ``suppression.lifted``). Both
kinds are claimed, retried, given up and retried by hand alike.
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
    """One claimed outbox row and what forwarding it needs. A bounce event: the stored
    bounce row (as :func:`bounces` gives it), ``event`` ``None``. A suppression event:
    ``bounce`` empty, ``event`` the change as
    :func:`~bouncefilter.store.suppressions.history_event` gives it. ``sender`` and
    ``bounce_address``: the original envelope sender and recorded bounce address of the
    bounced message (for a suppression event, of the bounce that listed the address, if
    any); ``dedup_key`` is stable across retries (``suppression:ID`` for a change)."""

    id: int
    target: str
    attempts: int  # this one included
    queued_at: float
    bounce: dict[str, object]
    sender: str = ""
    dedup_key: str = ""
    event: dict[str, object] | None = None
    bounce_address: str = ""

    def return_path(self) -> str:
        """Where a ``to: return_path`` target sends this row: the message's recorded
        bounce address, else its original envelope sender; ``""`` when neither is known."""
        return str(self.bounce.get("bounce_address") or self.bounce_address or self.sender)

    def label(self) -> str:
        """``bounce=ID`` or ``suppression=ID``, for log lines."""
        if self.event is not None:
            return f"suppression={self.event['id']}"
        return f"bounce={self.bounce['id']}"


_CLAIM = (
    f"UPDATE outbox SET state = '{SENDING}', claim = ?, due_at = ?, attempts = attempts + 1 WHERE id IN"
    f" (SELECT id FROM outbox WHERE state IN ('{PENDING}', '{SENDING}') AND due_at <= ?"
    " ORDER BY due_at LIMIT ?)"
)


_CLAIMED = (
    "SELECT o.id, o.target, o.attempts, o.queued_at, coalesce(m.sender, ''), b.dedup_key, "
    + ", ".join(f"b.{column}" for column in BOUNCE_COLUMNS)
    + " FROM outbox o JOIN bounces b ON b.id = o.bounce_id LEFT JOIN messages m"
    f" ON m.message_key = b.message_key AND b.message_key != '' WHERE o.claim = ? AND o.state = '{SENDING}'"
    " ORDER BY o.due_at, o.id"
)

#: The bounce that listed the address of a change: its own (a listing), or that of the
#: listing before it (a lifting).
_LISTING_BOUNCE = (
    "coalesce(h.bounce_id, (SELECT c.bounce_id FROM suppression_history c WHERE c.account = h.account"
    " AND c.address_key = h.address_key AND c.change = 'created' AND c.id < h.id ORDER BY c.id DESC LIMIT 1))"
)
_CLAIMED_EVENTS = (
    "SELECT o.id, o.target, o.attempts, o.queued_at, o.history_id, coalesce(b.bounce_address, ''),"
    " coalesce(m.sender, '') FROM outbox o LEFT JOIN suppression_history h ON h.id = o.history_id"
    f" LEFT JOIN bounces b ON b.id = {_LISTING_BOUNCE} LEFT JOIN messages m ON m.message_key = b.message_key"
    f" AND b.message_key != '' WHERE o.claim = ? AND o.state = '{SENDING}' AND o.history_id IS NOT NULL"
    " ORDER BY o.due_at, o.id"
)


def claim_due(conn: sqlite3.Connection, claim: str, now: float, lease: float, limit: int) -> list[OutboxItem]:
    """Claim up to ``limit`` rows due at ``now`` for the forwarder ``claim`` (a string no
    other forwarder uses) until ``now + lease``, oldest due first, and return them.

    Due rows are ``pending`` ones whose time has come and ``sending`` ones whose claim
    has lapsed (their forwarder died). Claiming is one write transaction, so two
    forwarders never claim one row at once; each claim counts as an attempt. Bounce
    events come first, then suppression events, each kind oldest due first; a
    suppression event whose history row is gone comes with ``event`` ``{}``.
    """
    with Writing(conn):
        conn.execute(_CLAIM, (claim, now + lease, now, limit))
    items = []
    for oid, target, attempts, queued_at, sender, key, *values in conn.execute(_CLAIMED, (claim,)):
        bounce = dict(zip(BOUNCE_COLUMNS, values))
        for name in BOOLEAN_COLUMNS:
            bounce[name] = bool(bounce[name])
        items.append(OutboxItem(oid, target, attempts, queued_at, bounce, sender, key))
    from bouncefilter.store.suppressions import history_event  # it imports this module

    for oid, target, attempts, queued_at, history_id, bounce_address, sender in conn.execute(_CLAIMED_EVENTS, (claim,)):
        event = history_event(conn, history_id) or {}
        items.append(OutboxItem(oid, target, attempts, queued_at, {}, sender, f"suppression:{history_id}", event,
                                bounce_address))
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
    """The given-up rows, oldest first: id, target, attempts, queued_at, last_error,
    bounce_id and history_id (one of them ``None``), and the event's account, recipient
    (the suppressed address for a suppression event) and outcome (the bounce's outcome,
    or ``suppression.created`` / ``suppression.lifted``)."""
    columns = ("id", "target", "attempts", "queued_at", "last_error", "bounce_id", "history_id", "account",
               "recipient", "outcome")
    rows = conn.execute(
        "SELECT o.id, o.target, o.attempts, o.queued_at, o.last_error, o.bounce_id, o.history_id,"
        " coalesce(b.account, h.account, ''), coalesce(b.recipient, h.address, ''),"
        " coalesce(b.outcome, 'suppression.' || h.change, '')"
        " FROM outbox o LEFT JOIN bounces b ON b.id = o.bounce_id LEFT JOIN suppression_history h"
        f" ON h.id = o.history_id WHERE o.state = '{DEAD}' ORDER BY o.id"
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
