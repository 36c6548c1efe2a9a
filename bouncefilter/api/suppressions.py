"""The suppression list's endpoints: ``GET /v1/suppressions`` (the listings, paged, JSON
or CSV), ``GET /v1/suppressions/{address}`` (why the address is bouncing), ``DELETE``
(lift) and ``POST /v1/suppressions`` (add one, or import many).

:mod:`bouncefilter.api.app` routes, authenticates and decides the account (``scope``);
the functions here read the request's parameters and body and answer. Times go out as
RFC 3339 UTC (``2026-12-01T08:00:00Z``), ``null`` for none.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from bouncefilter import store
from bouncefilter.api import entries, http, query
from bouncefilter.api.http import HttpError, Request, Response
from bouncefilter.api.tables import csv_chunks
from bouncefilter.core import suppression as rules
from bouncefilter.core.window import iso

Suppression = store.suppressions.Suppression
#: The parameters each endpoint takes (any other is a 400).
LIST_PARAMETERS = frozenset({"access_token", "account", "format", "limit", "cursor", "reason", "search", "lifted"})
ONE_PARAMETERS = frozenset({"access_token", "account"})
#: The CSV's columns: Mailgun's and SES's three first, then the rest.
CSV_COLUMNS = ("address", "reason", "created_at", "account", "detail", "until", "lifted_at", "lifted_by")
#: The keys of a story's rows that hold epoch seconds (sent out as RFC 3339).
TIME_KEYS = frozenset({"created_at", "until", "lifted_at", "sent_at", "received_at", "at"})
#: The most refusals an import's answer lists one by one (all are counted).
MAX_REFUSALS = 1000
_CURSOR = re.compile(r"after/([0-9]{1,19})")
_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


def stamp(epoch: float | None) -> str | None:
    """RFC 3339 UTC for ``epoch``; ``None`` for none."""
    return None if epoch is None else iso(epoch)


def to_json(listing: Suppression, now: float) -> dict[str, object]:
    """One listing as the API shows it, ``active`` saying whether it suppresses at ``now``."""
    return {"address": listing.address, "reason": listing.reason, "created_at": stamp(listing.created_at),
            "account": listing.account, "detail": listing.detail, "until": stamp(listing.until),
            "lifted_at": stamp(listing.lifted_at), "lifted_by": listing.lifted_by, "active": listing.active(now),
            "bounce_ids": list(listing.bounce_ids)}


def selection(params: Mapping[str, str], scope: str | None, now: float) -> store.suppressions.ListQuery:
    """The listings the parameters ask for (``reason``, ``search``, ``lifted``, ``cursor``); 400s."""
    reason = None
    if "reason" in params:
        reason = params["reason"].strip().lower()
        if reason not in rules.REASONS:
            raise HttpError(400, f"reason: expected one of {', '.join(rules.REASONS)}, got {params['reason']!r}")
    lifted = query.boolean(params, "lifted") if "lifted" in params else False
    after = position(params["cursor"]) if "cursor" in params else 0
    return store.suppressions.ListQuery(now, scope, reason, params.get("search", "").strip(), lifted, after)


def cursor(listing_id: int) -> str:
    """The opaque ``cursor`` of the page after the listing ``listing_id``."""
    return query.opaque(f"after/{listing_id}")


def position(text: str) -> int:
    """The listing id a :func:`cursor` stands for; 400 if it is not one this API gave."""
    match = _CURSOR.fullmatch(query.unwrapped(text))
    if not match or int(match.group(1)) > query.MAX_ID:
        raise HttpError(400, query.BAD_CURSOR)
    return int(match.group(1))


def listing(conn: store.Connection, request: Request, scope: str | None, now: float) -> Response:
    """``GET /v1/suppressions``: the listings of ``scope`` (``None``: every account) by
    the order they were first made, as one JSON array or CSV; with ``limit``, a page and
    the headers that lead to the next (as ``/v1/bounces`` pages)."""
    form = request.query.get("format", "json")
    if form not in _TYPES:
        raise HttpError(400, f"format: expected one of {', '.join(_TYPES)}, got {form!r}")
    selected = selection(request.query, scope, now)
    limit = query.limit(request.query)
    headers = [("Content-Type", _TYPES[form]), ("Cache-Control", "no-store")]
    rows: Iterator[tuple[int, Suppression]] = store.suppressions.listings(
        conn, selected, None if limit is None else limit + 1)
    if limit is None:
        rows = _started(rows)
    else:
        page = list(rows)
        headers += http.next_page(request, cursor(page[limit - 1][0]) if len(page) > limit else None)
        rows = iter(page[:limit])
    listings = (found for _, found in rows)
    if form == "csv":
        return Response(200, headers, csv_chunks(CSV_COLUMNS, (_csv_row(found) for found in listings)))
    return Response(200, headers, http.batched((json.dumps(to_json(found, now), ensure_ascii=False)
                                                for found in listings), "[\n", ",\n", "\n]\n"))


def _started(rows: Iterator[tuple[int, Suppression]]) -> Iterator[tuple[int, Suppression]]:
    """``rows`` with the query run now (its first row read), so that a database error is
    an answer of its own rather than a body cut short."""
    first = next(rows, None)
    return rows if first is None else itertools.chain((first,), rows)


def _csv_row(found: Suppression) -> tuple[object, ...]:
    """One listing as a CSV row of :data:`CSV_COLUMNS` (times RFC 3339, empty for none)."""
    return (found.address, found.reason, stamp(found.created_at) or "", found.account, found.detail,
            stamp(found.until) or "", stamp(found.lifted_at) or "", found.lifted_by)


def story(conn: store.Connection, scope: str | None, address: str, now: float) -> dict[str, Any] | None:
    """Why ``address`` is bouncing, in ``scope`` (``None``: every account): its listings
    (each with ``active``), the messages sent to it, its records and the list's changes,
    times as RFC 3339; ``None`` if it was never listed and has no record."""
    told = store.suppressions.story(conn, scope, address)
    parts: dict[str, list[dict[str, Any]]] = {name: list(told[name]) for name in _PARTS}  # type: ignore[call-overload]
    if not (parts["suppressions"] or parts["records"] or parts["history"]):
        return None
    for row in parts["suppressions"]:
        row["active"] = store.suppressions.active(row["reason"], row["lifted_at"], row["until"], now)
    return {"address": told["address"], **{name: [_stamped(row) for row in rows] for name, rows in parts.items()}}


_PARTS = ("suppressions", "messages", "records", "history")


def _stamped(row: Mapping[str, object]) -> dict[str, object]:
    """``row`` with its epoch times (:data:`TIME_KEYS`) as RFC 3339."""
    return {name: stamp(float(value)) if name in TIME_KEYS and isinstance(value, (int, float)) else value
            for name, value in row.items()}


def explain(conn: store.Connection, scope: str | None, address: str, now: float) -> Response:
    """``GET /v1/suppressions/{address}``: :func:`story` as JSON; 404 when nothing is known."""
    told = story(conn, scope, entries.address(address), now)
    if told is None:
        where = "" if scope is None else f" of account {scope!r}"
        raise HttpError(404, f"{address} was never on the suppression list{where} and has no records")
    return http.json_response(200, told, [("Cache-Control", "no-store")])


def lift(conn: store.Connection, account: str, address: str, actor: str, admin: bool, now: float,
         targets: Iterable[str]) -> Response:
    """``DELETE /v1/suppressions/{address}``: lift it off ``account``'s list by ``actor``;
    404 if it is not listed, 409 for a complaint unless ``admin``. The lifted listing."""
    address = entries.address(address)
    outcome = store.suppressions.lift(conn, account, address, now, actor, admin, tuple(targets))
    if outcome == store.suppressions.NOT_LISTED:
        raise HttpError(404, f"{address} is not on the suppression list of account {account!r}")
    if outcome == store.suppressions.REFUSED:
        raise HttpError(409, f"{address} is listed for a complaint: only an admin token may lift it")
    found = store.suppressions.find(conn, account, address)
    return http.json_response(200, {"lifted": None if found is None else to_json(found, now)},
                              [("Cache-Control", "no-store")])


def add(conn: store.Connection, request: Request, account: str, actor: str, now: float,
        targets: Iterable[str]) -> Response:
    """``POST /v1/suppressions``: list the body's entries on ``account``'s list by
    ``actor``. The counts: ``added``, ``already_listed``, ``refused``, and the first
    :data:`MAX_REFUSALS` refusals with their line or item number and why; 201 when a
    lone object was added, else 200."""
    parsed = entries.parse(request.body(entries.MAX_BODY_BYTES), request.content_type(), now)
    done = store.suppressions.suppress_many(conn, account, [entry for _, entry in parsed.entries], now, actor,
                                            tuple(targets))
    added = sum(done)
    data = {"account": account, "added": added, "already_listed": len(done) - added,
            "refused": len(parsed.refused), "refusals": [item.to_json() for item in parsed.refused[:MAX_REFUSALS]]}
    status = 201 if parsed.single and added else 200
    return http.json_response(status, data, [("Cache-Control", "no-store")])
