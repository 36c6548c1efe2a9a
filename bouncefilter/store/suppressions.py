"""The suppression list: per account, the addresses that get no more mail, why and since
when, with every change kept in ``suppression_history``.

One ``suppressions`` row per (account, address) ever counted or listed holds the tally
(hard bounces, the soft score) and the listing as it stands; an address is listed while
its ``reason`` is set, it is not lifted, and its ``until`` has not passed (:func:`active`).
The pipe counts records inside its own transaction (:func:`count_record`, called by
:func:`~bouncefilter.store.deliveries.store_delivery`); people list and lift with
:func:`suppress` and :func:`lift`. Each listing and lifting queues one outbox row per
target given, so the forwarder hands ``suppression.created`` / ``suppression.lifted``
events on as it does bounces.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from bouncefilter.core import suppression as rules
from bouncefilter.core.address import bare_address, normal_address
from bouncefilter.core.suppression import Entry
from bouncefilter.store.db import Writing
from bouncefilter.store.outbox import PENDING

#: History changes: a record counted (the listing unchanged), an address listed, lifted.
COUNTED, CREATED, LIFTED = "counted", "created", "lifted"
#: What :func:`lift` can answer.
NOT_LISTED, REFUSED = "not listed", "refused"


class Suppression(NamedTuple):
    """One address on an account's list (or once on it: see :func:`active`)."""

    account: str
    address: str
    reason: str
    detail: str
    created_at: float | None
    until: float | None
    bounce_ids: tuple[int, ...]
    lifted_at: float | None
    lifted_by: str

    def active(self, now: float) -> bool:
        """Whether the address is suppressed at ``now``."""
        return active(self.reason, self.lifted_at, self.until, now)


def active(reason: str, lifted_at: float | None, until: float | None, now: float) -> bool:
    """Whether a listing with these columns suppresses at ``now``."""
    return bool(reason) and lifted_at is None and (until is None or until > now)


class Setting(NamedTuple):
    """What counting needs of one account: its rules and the outbox targets that want
    suppression events."""

    rules: rules.Rules = rules.Rules()
    targets: tuple[str, ...] = ()


def address_of(text: str) -> tuple[str, str]:
    """``(address, key)`` as the list keeps ``text``: ``<Foo@Example.COM>`` gives
    ``("Foo@example.com", "foo@example.com")``."""
    address = normal_address(bare_address(text))
    return address, address.lower()


_COLUMNS = ("account", "address", "reason", "detail", "created_at", "until", "bounce_ids", "lifted_at", "lifted_by")


def _suppression(values: Sequence[object]) -> Suppression:
    row = dict(zip(_COLUMNS, values))
    row["bounce_ids"] = tuple(json.loads(str(row["bounce_ids"])))
    return Suppression(**row)  # type: ignore[arg-type]


def find(conn: sqlite3.Connection, account: str, address: str) -> Suppression | None:
    """The list's row for ``address`` of ``account`` (listed or not), or ``None``."""
    found = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM suppressions WHERE account = ? AND address_key = ?"
                         " AND reason != ''", (account, address_of(address)[1])).fetchone()
    return None if found is None else _suppression(found)


def count_record(conn: sqlite3.Connection, account: str, address: str, bounce_id: int, kind: str, reason: str,
                 hard: bool, at: float, setting: Setting) -> int | None:
    """Count one new, counted record (inside the caller's write transaction): update the
    address's tally and list it if the rules say so. The history row's id when it was
    listed now, else ``None``. A record that never suppresses (:func:`rules.cause`) and
    a record for an address already listed change nothing but the history."""
    why = rules.cause(kind, reason, hard)
    if why is None or not account or not address:
        return None
    shown, key = address_of(address)
    conn.execute("INSERT INTO suppressions (account, address, address_key) VALUES (?, ?, ?)"
                 " ON CONFLICT (account, address_key) DO NOTHING", (account, shown, key))
    (row_id, listed, lifted_at, until, hard_count, soft, scored_at, ids) = conn.execute(
        "SELECT id, reason, lifted_at, until, hard_count, soft_score, scored_at, bounce_ids FROM suppressions"
        " WHERE account = ? AND address_key = ?", (account, key)).fetchone()
    if active(listed, lifted_at, until, at):
        _history(conn, account, shown, key, at, COUNTED, why, reason, None, bounce_id, "pipe")
        return None
    verdict = rules.judge(rules.Tally(hard_count, soft, scored_at), why, at, setting.rules)
    conn.execute("UPDATE suppressions SET hard_count = ?, soft_score = ?, scored_at = ?, bounce_ids = ? WHERE id = ?",
                 (*verdict.tally, json.dumps([*json.loads(ids), bounce_id][-20:]), row_id))
    if not verdict.reason:
        _history(conn, account, shown, key, at, COUNTED, why, reason, None, bounce_id, "pipe")
        return None
    conn.execute("UPDATE suppressions SET reason = ?, detail = ?, created_at = ?, until = ?, lifted_at = NULL,"
                 " lifted_by = '', hard_count = 0 WHERE id = ?", (verdict.reason, reason, at, verdict.until, row_id))
    history_id = _history(conn, account, shown, key, at, CREATED, verdict.reason, reason, verdict.until, bounce_id,
                          "pipe")
    _queue(conn, history_id, setting.targets, at)
    return history_id


def suppress(conn: sqlite3.Connection, account: str, address: str, reason: str, at: float, actor: str,
             detail: str = "", until: float | None = None, targets: Sequence[str] = (),
             created_at: float | None = None) -> bool:
    """List ``address`` for ``account`` by hand (``reason`` :data:`~rules.MANUAL` or
    :data:`~rules.IMPORT`, or any of :data:`rules.REASONS`), in its own transaction;
    ``False`` (and nothing changed) if it is listed already. ``created_at`` keeps an
    imported listing's own date."""
    if reason not in rules.REASONS:
        raise ValueError(f"reason must be one of {', '.join(rules.REASONS)}, not {reason!r}")
    with Writing(conn):
        return _listed(conn, account, Entry(address, reason, detail, until, created_at), at, actor, targets)


def _listed(conn: sqlite3.Connection, account: str, entry: Entry, at: float, actor: str,
            targets: Sequence[str]) -> bool:
    """List ``entry`` inside the caller's write transaction; ``False`` if it is listed already."""
    shown, key = address_of(entry.address)
    found = conn.execute("SELECT id, reason, lifted_at, until FROM suppressions WHERE account = ? AND address_key = ?",
                         (account, key)).fetchone()
    if found is not None and active(found[1], found[2], found[3], at):
        return False
    since = at if entry.created_at is None else entry.created_at
    conn.execute(
        "INSERT INTO suppressions (account, address, address_key, reason, detail, created_at, until)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, address_key) DO UPDATE SET reason = excluded.reason,"
        " detail = excluded.detail, created_at = excluded.created_at, until = excluded.until, lifted_at = NULL,"
        " lifted_by = '', bounce_ids = '[]', hard_count = 0, soft_score = 0",
        (account, shown, key, entry.reason, entry.detail, since, entry.until))
    history_id = _history(conn, account, shown, key, at, CREATED, entry.reason, entry.detail, entry.until, None, actor)
    _queue(conn, history_id, targets, at)
    return True


def lift(conn: sqlite3.Connection, account: str, address: str, at: float, actor: str, admin: bool,
         targets: Sequence[str] = ()) -> str:
    """Lift ``address`` off ``account``'s list, in its own transaction. Answers
    :data:`LIFTED`, :data:`NOT_LISTED`, or :data:`REFUSED` for a complaint when not
    ``admin`` (only an administrator may lift those). The tally starts again."""
    _, key = address_of(address)
    with Writing(conn):
        found = conn.execute("SELECT id, address, reason, lifted_at, until FROM suppressions"
                             " WHERE account = ? AND address_key = ?", (account, key)).fetchone()
        if found is None or not active(found[2], found[3], found[4], at):
            return NOT_LISTED
        if found[2] == rules.COMPLAINT and not admin:
            return REFUSED
        conn.execute("UPDATE suppressions SET lifted_at = ?, lifted_by = ?, hard_count = 0, soft_score = 0"
                     " WHERE id = ?", (at, actor, found[0]))
        history_id = _history(conn, account, found[1], key, at, LIFTED, found[2], "", None, None, actor)
        _queue(conn, history_id, targets, at)
    return LIFTED


def _history(conn: sqlite3.Connection, account: str, address: str, key: str, at: float, change: str, reason: str,
             detail: str, until: float | None, bounce_id: int | None, actor: str) -> int:
    cursor = conn.execute(
        "INSERT INTO suppression_history (account, address, address_key, at, change, reason, detail, until,"
        " bounce_id, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (account, address, key, at, change, reason, detail, until, bounce_id, actor))
    return int(cursor.lastrowid or 0)


def _queue(conn: sqlite3.Connection, history_id: int, targets: Sequence[str], at: float) -> None:
    for target in targets:
        conn.execute("INSERT INTO outbox (history_id, target, state, due_at, queued_at) VALUES (?, ?, ?, ?, ?)"
                     " ON CONFLICT (history_id, target) DO NOTHING", (history_id, target, PENDING, at, at))


class ListQuery(NamedTuple):
    """Which listings :func:`listings` reads: of ``account`` (``None``: every one),
    active at ``now`` (or every listing ever made with ``lifted``), with ``reason``, whose
    address contains ``search`` (case ignored), after the listing with id ``after``."""

    now: float
    account: str | None = None
    reason: str | None = None
    search: str = ""
    lifted: bool = False
    after: int = 0


def listings(conn: sqlite3.Connection, query: ListQuery, limit: int | None = None) -> Iterator[tuple[int, Suppression]]:
    """The listings ``query`` selects, by id (the cursor), with their ids, read as the
    caller iterates."""
    where = ["reason != ''", "id > ?"]
    params: list[object] = [query.after]
    if not query.lifted:
        where.append("lifted_at IS NULL AND (until IS NULL OR until > ?)")
        params.append(query.now)
    for clause, value in (("account = ?", query.account), ("reason = ?", query.reason)):
        if value is not None:
            where.append(clause)
            params.append(value)
    if query.search:
        where.append("instr(address_key, ?) > 0")
        params.append(query.search.lower())
    sql = f"SELECT id, {', '.join(_COLUMNS)} FROM suppressions WHERE {' AND '.join(where)} ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    for row_id, *values in conn.execute(sql, params):
        yield int(row_id), _suppression(values)


_HISTORY = ("id", "at", "change", "reason", "detail", "until", "bounce_id", "actor")


def history(conn: sqlite3.Connection, account: str, address: str) -> list[dict[str, object]]:
    """Every change to ``address`` on ``account``'s list, oldest first."""
    rows = conn.execute(f"SELECT {', '.join(_HISTORY)} FROM suppression_history WHERE account = ? AND address_key = ?"
                        " ORDER BY id", (account, address_of(address)[1]))
    return [dict(zip(_HISTORY, row)) for row in rows]


def history_event(conn: sqlite3.Connection, history_id: int) -> dict[str, object] | None:
    """One listing or lifting as an event (``suppression.created`` / ``suppression.lifted``)
    with the account, address, reason, detail, until, the bounce and who did it."""
    row = conn.execute("SELECT account, address, at, change, reason, detail, until, bounce_id, actor"
                       " FROM suppression_history WHERE id = ?", (history_id,)).fetchone()
    if row is None:
        return None
    account, address, at, change, reason, detail, until, bounce_id, actor = row
    return {"id": history_id, "event": f"suppression.{change}", "account": account, "address": address, "at": at,
            "reason": reason, "detail": detail, "until": until, "bounce_id": bounce_id, "actor": actor}


def active_listings(conn: sqlite3.Connection, now: float) -> Iterator[tuple[str, str, str, str, float, float | None]]:
    """Every address suppressed at ``now``: (account, address key, reason, detail,
    created_at, until), for the milter's in-memory list."""
    return conn.execute("SELECT account, address_key, reason, detail, created_at, until FROM suppressions"
                        " WHERE reason != '' AND lifted_at IS NULL AND (until IS NULL OR until > ?)", (now,))


def last_change(conn: sqlite3.Connection) -> int:
    """The id of the newest history row (0 for none): one look at the table's end, so the
    milter can ask every second; when it moves, :func:`changed_since` says what changed."""
    row = conn.execute("SELECT max(id) FROM suppression_history").fetchone()
    return int(row[0] or 0)


def changed_since(conn: sqlite3.Connection, history_id: int) -> Iterator[tuple[int, str, str]]:
    """(history id, account, address key) of every listing or lifting after ``history_id``."""
    return conn.execute("SELECT id, account, address_key FROM suppression_history WHERE id > ? AND change != ?"
                        " ORDER BY id", (history_id, COUNTED))


def story(conn: sqlite3.Connection, account: str | None, address: str, limit: int = 500) -> dict[str, object]:
    """Why ``address`` is bouncing, for ``account`` (``None``: every account): its listings,
    the messages sent to it (newest first), every stored record about it and every change
    to the list, at most ``limit`` of each; JSON-ready."""
    shown, key = address_of(address)
    scope, params = ("", ()) if account is None else (" AND account = ?", (account,))
    listed = [dict(zip(_COLUMNS, values)) | {"bounce_ids": json.loads(str(values[6]))} for values in conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM suppressions WHERE address_key = ? AND reason != ''{scope} ORDER BY account",
        (key, *params))]
    sent_columns = ("account", "message_key", "queue_id", "message_id", "subject", "sender", "sent_at")
    sent = [dict(zip(sent_columns, row)) for row in conn.execute(
        f"SELECT {', '.join(sent_columns)} FROM messages WHERE EXISTS (SELECT 1 FROM json_each(messages.recipients)"
        f" WHERE lower(json_each.value) = ?){scope} ORDER BY sent_at DESC LIMIT ?", (key, *params, limit))]
    record_columns = ("id", "received_at", "account", "outcome", "kind", "reason", "hard", "status", "diagnostic",
                      "message_key", "reporting_mta")
    spellings = tuple({address.strip().strip("<>"), shown, key})
    marks = ", ".join("?" * len(spellings))
    records = [dict(zip(record_columns, row)) | {"hard": bool(row[6])} for row in conn.execute(
        f"SELECT {', '.join(record_columns)} FROM bounces WHERE recipient IN ({marks}){scope}"
        " ORDER BY received_at DESC, id DESC LIMIT ?", (*spellings, *params, limit))]
    changes = [dict(zip(("account", *_HISTORY), row)) for row in conn.execute(
        f"SELECT account, {', '.join(_HISTORY)} FROM suppression_history WHERE address_key = ?{scope}"
        " ORDER BY id DESC LIMIT ?", (key, *params, limit))]
    return {"address": shown, "suppressions": listed, "messages": sent, "records": records, "history": changes}


def suppress_many(conn: sqlite3.Connection, account: str, entries: Sequence[Entry], at: float, actor: str,
                  targets: Sequence[str] = (), batch: int = 1000) -> list[bool]:
    """:func:`suppress` for each of ``entries`` in order, ``batch`` of them a transaction
    (an import of thousands pays one commit a batch, and never holds the writers off for
    long); for each, whether it was listed (``False``: listed already). ``ValueError``,
    before anything is written, for an entry whose reason is not one of :data:`rules.REASONS`.
    An address given twice is listed once (the second is listed already)."""
    for entry in entries:
        if entry.reason not in rules.REASONS:
            raise ValueError(f"reason must be one of {', '.join(rules.REASONS)}, not {entry.reason!r}")
    done: list[bool] = []
    for first in range(0, len(entries), batch):
        with Writing(conn):
            done += [_listed(conn, account, entry, at, actor, targets) for entry in entries[first:first + batch]]
    return done
