"""Reading stored rows for the download API: a window, an account, a cursor, streamed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from bouncefilter.store.db import BOOLEAN_COLUMNS, BOUNCE_COLUMNS

#: The domain of a row's recipient, in SQL: what the API's ``domain`` filter and the report's top domains compare.
RECIPIENT_DOMAIN = "lower(substr(recipient, instr(recipient, '@') + 1))"



class BounceQuery(NamedTuple):
    """Which stored rows to read: received in ``[since, until)`` (epoch seconds), of one
    account (``None``: every account), narrowed by the filters that are not ``None``
    (``recipient`` and ``domain`` without regard to case), from the position ``start_at``
    (a row's ``(received_at, id)``, inclusive) on. Rows come oldest first."""

    since: float | None = None
    until: float | None = None
    account: str | None = None
    recipient: str | None = None
    domain: str | None = None
    reason: str | None = None
    kind: str | None = None
    hard: bool | None = None
    start_at: tuple[float, int] | None = None


#: The exported record, the one definition of it: the download API's records and the web
#: hook events (:func:`export_record`) alike. (field name, SQL expression on the bounces
#: table); ``timestamp`` to the millisecond, ``envelope`` the sender the milter recorded
#: for the bounced message (else the one the bounce names).
EXPORT_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "id"),
    ("time", "strftime('%Y-%m-%dT%H:%M:%SZ', received_at, 'unixepoch')"),
    ("timestamp", "round(received_at, 3)"),
    ("account", "account"),
    ("recipient", "recipient"),
    ("kind", "kind"),
    ("reason", "reason"),
    ("hard", "hard"),
    ("status", "status"),
    ("replycode", "replycode"),
    ("diagnostic", "diagnostic"),
    ("reporting_mta", "reporting_mta"),
    ("remote_mta", "remote_mta"),
    ("feedback_type", "feedback_type"),
    ("message_id", "original_message_id"),
    ("subject", "subject"),
    ("envelope", "coalesce(nullif((SELECT sender FROM messages WHERE message_key = bounces.message_key"
                 " AND bounces.message_key != ''), ''), envelope_sender)"),
    ("bounce_address", "bounce_address"),
    ("outcome", "outcome"),
    ("truncated", "truncated"),
)


#: One exported record as a JSON object, built by SQLite (its C encoder is several times
#: faster than a Python loop building dicts for ``json.dumps``).
_EXPORT_JSON = "json_object({})".format(", ".join(
    f"'{name}', " + (f"json(iif({name}, 'true', 'false'))" if name in BOOLEAN_COLUMNS else expression)
    for name, expression in EXPORT_FIELDS))


def export_rows(conn: sqlite3.Connection, query: BounceQuery, limit: int | None = None) -> Iterator[tuple[object, ...]]:
    """The rows ``query`` selects (at most ``limit``) as tuples in :data:`EXPORT_FIELDS`
    order (``hard`` and ``truncated`` 0 or 1), read one by one as the caller iterates."""
    return _select(conn, query, [expression for _, expression in EXPORT_FIELDS], limit)


def export_json(conn: sqlite3.Connection, query: BounceQuery, limit: int | None = None) -> Iterator[str]:
    """The rows ``query`` selects (at most ``limit``), each one JSON object (the fields
    of :data:`EXPORT_FIELDS`, ``hard`` and ``truncated`` booleans), read one by one as the caller iterates."""
    return (text for (text,) in _select(conn, query, [_EXPORT_JSON], limit))


def export_record(conn: sqlite3.Connection, bounce_id: int) -> dict[str, object] | None:
    """The exported record (as :func:`export_json` gives it) of the stored row
    ``bounce_id``, or ``None`` if there is none."""
    row = conn.execute(f"SELECT {_EXPORT_JSON} FROM bounces WHERE id = ?", (bounce_id,)).fetchone()
    return None if row is None else json.loads(row[0])


def position(conn: sqlite3.Connection, query: BounceQuery, offset: int) -> tuple[float, int] | None:
    """The ``(received_at, id)`` of the row ``offset`` rows past the first that ``query``
    selects (the start of the next page), or ``None`` if there are no more rows."""
    rows = _select(conn, query, ["received_at", "id"], 1, offset)
    found = next(rows, None)
    return None if found is None else (float(found[0]), int(found[1]))


def _select(conn: sqlite3.Connection, query: BounceQuery, columns: Sequence[str], limit: int | None = None,
            offset: int = 0) -> Iterator[tuple[Any, ...]]:
    """A cursor over ``columns`` of the rows ``query`` selects, oldest first."""
    since = query.since
    start = None
    if query.start_at is not None:
        since = query.start_at[0] if since is None else max(since, query.start_at[0])
        start = query.start_at
    clauses, params = conditions((
        ("received_at >= ?", since), ("received_at < ?", query.until), ("account = ?", query.account),
        ("recipient = ? COLLATE NOCASE", query.recipient),
        (f"{RECIPIENT_DOMAIN} = ?", None if query.domain is None else query.domain.lower()),
        ("reason = ?", query.reason), ("kind = ?", query.kind),
        ("hard = ?", None if query.hard is None else int(query.hard)),
    ))
    if start is not None:
        clauses.append("(received_at > ? OR id >= ?)")
        params += [start[0], start[1]]
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    page = ""
    if limit is not None:
        page = " LIMIT ? OFFSET ?"
        params += [limit, offset]
    return conn.execute(f"SELECT {', '.join(columns)} FROM bounces{where} ORDER BY received_at, id{page}", params)


def bounce_source(conn: sqlite3.Connection, bounce_id: int) -> tuple[str, int | None] | None:
    """``(account, raw_id)`` of the stored row ``bounce_id``, or ``None`` if there is none."""
    row = conn.execute("SELECT account, raw_id FROM bounces WHERE id = ?", (bounce_id,)).fetchone()
    return None if row is None else (row[0], row[1])


def bounces(
    conn: sqlite3.Connection, since: float | None = None, until: float | None = None, account: str | None = None
) -> Iterator[dict[str, object]]:
    """Stored rows received in ``[since, until)`` (epoch seconds), of one account if
    given, oldest first, as dicts keyed by :data:`BOUNCE_COLUMNS` (``hard`` and ``truncated`` bools)."""
    for values in _select(conn, BounceQuery(since, until, account), BOUNCE_COLUMNS):
        row = dict(zip(BOUNCE_COLUMNS, values))
        for name in BOOLEAN_COLUMNS:
            row[name] = bool(row[name])
        yield row


def window_clause(column: str, since: float | None, until: float | None, account: str | None) -> tuple[str, list[object]]:
    """A WHERE clause (with its parameters) for a time range on ``column`` and an account."""
    clauses, params = conditions(
        ((f"{column} >= ?", since), (f"{column} < ?", until), ("account = ?", account)))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def conditions(pairs: Iterable[tuple[str, object]]) -> tuple[list[str], list[object]]:
    """The conditions (each with one ``?``) whose value is not ``None``, and those values."""
    kept = [(condition, value) for condition, value in pairs if value is not None]
    return [condition for condition, _ in kept], [value for _, value in kept]
