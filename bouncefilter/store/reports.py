"""The counts and lists behind ``bouncefilter report`` and the overview page.
"""

from __future__ import annotations

import sqlite3

from bouncefilter.store import export


def sent_totals(conn: sqlite3.Connection, since: float | None, until: float | None,
                account: str | None = None) -> dict[str, tuple[int, int]]:
    """Per account (or of ``account`` alone), the messages sent in ``[since, until)`` and
    their recipients."""
    where, params = export.window_clause("sent_at", since, until, account)
    rows = conn.execute(
        f"SELECT account, count(*), coalesce(sum(json_array_length(recipients)), 0) FROM messages{where}"
        " GROUP BY account",
        params,
    )
    return {account: (messages, recipients) for account, messages, recipients in rows}


def outcome_totals(conn: sqlite3.Connection, since: float | None, until: float | None,
                   account: str | None = None) -> list[tuple[str, str, bool, int]]:
    """(account, outcome, hard, rows) for the rows received in ``[since, until)`` (of
    ``account`` alone if given)."""
    where, params = export.window_clause("received_at", since, until, account)
    rows = conn.execute(f"SELECT account, outcome, hard, count(*) FROM bounces{where} GROUP BY account, outcome, hard",
                        params)
    return [(account, outcome, bool(hard), count) for account, outcome, hard, count in rows]


#: What :func:`top_values` can count: a column, or an expression on one.
_TOP_EXPRESSIONS = {
    "reason": "reason",
    "domain": export.RECIPIENT_DOMAIN,
}


def top_values(conn: sqlite3.Connection, what: str, outcome: str, since: float | None, until: float | None,
               limit: int = 5, account: str | None = None) -> dict[str, list[tuple[str, int]]]:
    """Per account (or of ``account`` alone), the ``limit`` most frequent ``what``
    (``reason`` or ``domain`` of the recipient) among rows of ``outcome`` received in
    ``[since, until)``, most first."""
    expression = _TOP_EXPRESSIONS[what]
    where, params = export.window_clause("received_at", since, until, account)
    where = f"{where} AND outcome = ?" if where else " WHERE outcome = ?"
    rows = conn.execute(
        f"SELECT account, value, n FROM (SELECT account, {expression} AS value, count(*) AS n,"
        f" row_number() OVER (PARTITION BY account ORDER BY count(*) DESC, {expression}) AS rank"
        f" FROM bounces{where} GROUP BY account, {expression}) AS counted WHERE rank <= ? ORDER BY account, rank",
        (*params, outcome, limit),
    )
    found: dict[str, list[tuple[str, int]]] = {}
    for account, value, count in rows:
        found.setdefault(account, []).append((value, count))
    return found


def latest_hard_bounces(conn: sqlite3.Connection, since: float | None, until: float | None,
                        limit: int = 5) -> dict[str, list[tuple[float, str, str, str]]]:
    """Per account, the ``limit`` latest hard bounces in ``[since, until)``, newest
    first: (received_at, recipient, reason, status)."""
    found = latest(conn, "hard", since, until, limit)
    return {account: [(float(str(row["received_at"])), str(row["recipient"]), str(row["reason"]), str(row["status"]))
                      for row in rows]
            for account, rows in found.items()}


#: What :func:`latest` can list.
_LATEST_CONDITIONS = {"hard": "outcome = 'bounce' AND hard = 1", "complaint": "outcome = 'complaint'"}


_LATEST_COLUMNS = ("id", "received_at", "recipient", "reason", "status", "raw_id")


def latest(conn: sqlite3.Connection, what: str, since: float | None, until: float | None, limit: int = 5,
           account: str | None = None) -> dict[str, list[dict[str, object]]]:
    """Per account (or of ``account`` alone), the ``limit`` latest rows received in
    ``[since, until)`` that are ``what`` (``hard`` bounces or ``complaint`` rows), newest
    first, as dicts with id, received_at, recipient, reason, status and raw_id."""
    where, params = export.window_clause("received_at", since, until, account)
    condition = _LATEST_CONDITIONS[what]
    where = f"{where} AND {condition}" if where else f" WHERE {condition}"
    columns = ", ".join(_LATEST_COLUMNS)
    rows = conn.execute(
        f"SELECT account, {columns} FROM (SELECT account, {columns}, row_number() OVER"
        " (PARTITION BY account ORDER BY received_at DESC, id DESC) AS rank"
        f" FROM bounces{where}) AS ranked WHERE rank <= ? ORDER BY account, rank",
        (*params, limit),
    )
    found: dict[str, list[dict[str, object]]] = {}
    for account_name, *values in rows:
        found.setdefault(account_name, []).append(dict(zip(_LATEST_COLUMNS, values)))
    return found


def daily_counts(conn: sqlite3.Connection, since: float | None, until: float | None,
                 account: str | None = None) -> dict[str, list[tuple[str, str, int]]]:
    """Per account (or of ``account`` alone), the rows received in ``[since, until)`` per
    UTC day and outcome: (``YYYY-MM-DD``, outcome, rows), oldest day first."""
    where, params = export.window_clause("received_at", since, until, account)
    rows = conn.execute(
        "SELECT account, date(received_at, 'unixepoch') AS day, outcome, count(*)"
        f" FROM bounces{where} GROUP BY account, day, outcome ORDER BY account, day, outcome",
        params,
    )
    found: dict[str, list[tuple[str, str, int]]] = {}
    for account_name, day, outcome, count in rows:
        found.setdefault(account_name, []).append((day, outcome, count))
    return found
