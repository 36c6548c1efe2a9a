"""The overview's suppression parts, server-rendered like the rest of the page: the list
with its search box (a plain GET form), and "why is this address bouncing?", one
address's whole story on a page of its own (``/why?address=...``).

Every address, diagnostic and detail is the remote side's or a client's text: each is
HTML-escaped where it is written, attributes and links included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from bouncefilter.api import page
from bouncefilter.core.window import iso
from bouncefilter.store.suppressions import Suppression

#: The most listings the page shows at once (the search narrows them; the API pages them).
SHOWN = 100


def why_link(address: str, account: str | None) -> str:
    """The URL of ``address``'s story (of ``account``, if one is named), escaped for an attribute."""
    return escape("/why?" + urlencode({"address": address, **({"account": account} if account else {})}))


def section(found: Sequence[Suppression], search: str, kept: Mapping[str, str], now: float, admin: bool) -> str:
    """The list's section: the search form (``kept`` are the page's other parameters,
    carried in hidden fields), the first :data:`SHOWN` listings of ``found`` (an admin
    sees each one's account), and, when the search is one whole address, the link to its
    story."""
    hidden = "".join(f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
                     for name, value in kept.items() if value)
    form = (f'<form method="get" action="/" class="search" role="search">{hidden}'
            f'<label for="search">Address contains</label> <input type="search" id="search" name="search" '
            f'value="{escape(search)}"> <button type="submit">Search</button></form>')
    ask = ""
    if "@" in search.strip():
        ask = (f'<p><a class="why" href="{why_link(search.strip(), kept.get("account"))}">Why is '
               f'{escape(search.strip())} bouncing?</a></p>')
    if not found:
        rows = f'<p class="empty">{"No listed address contains that." if search else "No address is suppressed."}</p>'
    else:
        rows = _table(found[:SHOWN], now, admin)
        if len(found) > SHOWN:
            rows += f'<p class="empty">The first {SHOWN} are shown: search to narrow them.</p>'
    return f'<section class="suppressions" id="suppressions"><h2>Suppression list</h2>{form}{ask}{rows}</section>'


def _table(found: Sequence[Suppression], now: float, admin: bool) -> str:
    """The listings as a table, each address linking to its story."""
    head = "<th>account</th>" if admin else ""
    lines = []
    for item in found:
        account = f"<td>{escape(item.account)}</td>" if admin else ""
        lines.append(f'<tr data-address="{escape(item.address)}">{account}'
                     f'<td><a href="{why_link(item.address, item.account if admin else None)}">{escape(item.address)}</a>'
                     f"</td><td>{escape(item.reason)}</td><td>{escape(item.detail or '-')}</td>"
                     f"<td>{_when(item.created_at)}</td><td>{_when(item.until) if item.until else 'until lifted'}</td></tr>")
    return (f'<table class="listed"><tr>{head}<th>address</th><th>why</th><th>detail</th><th>since</th>'
            f'<th>until</th></tr>{"".join(lines)}</table>')


def why(address: str, told: Mapping[str, Any] | None, problem: str = "", account: str = "") -> str:
    """The page of one address's story (:func:`bouncefilter.api.suppressions.story`,
    times already RFC 3339): its listings, every list change, every record and the
    messages sent to it; ``told`` ``None`` when nothing is known of it. ``account`` is
    the one an admin picked (kept by the page's form)."""
    kept = f'<input type="hidden" name="account" value="{escape(account)}">' if account else ""
    form = (f'<form method="get" action="/why" role="search">{kept}<label for="address">Why is this address '
            f'bouncing?</label> <input type="search" id="address" name="address" value="{escape(address)}" size="40">'
            f' <button type="submit">Explain</button></form>')
    if problem:
        body = f'<p class="problem" role="alert">{escape(problem)}</p>'
    elif told is None:
        body = f'<p class="empty" id="unknown">{escape(address)} was never listed and has no records.</p>'
    else:
        body = (f'<h2>{escape(str(told["address"]))}</h2>{_status(told["suppressions"])}'
                f'<h3>Suppression changes</h3>{_rows("history", told["history"], _CHANGES)}'
                f'<h3>Records</h3>{_rows("records", told["records"], _RECORDS)}'
                f'<h3>Messages sent</h3>{_rows("messages", told["messages"], _MESSAGES)}')
    return page.document("bouncefilter: why is this address bouncing?",
                         f'<header><h1><a href="/">bouncefilter</a></h1>{form}</header>'
                         f'<main><section class="account story">{body}</section></main>')


def _status(listed: Sequence[Mapping[str, Any]]) -> str:
    """One line per account's listing: suppressed (why, since, until) or not any more."""
    if not listed:
        return '<p class="status">Not on any suppression list.</p>'
    lines = []
    for row in listed:
        state = "suppressed" if row["active"] else "not suppressed"
        ended = f", lifted {row['lifted_at']} by {row['lifted_by']}" if row["lifted_at"] else ""
        lasts = f" until {row['until']}" if row["until"] else (" until lifted" if row["active"] else "")
        lines.append(f'<li data-account="{escape(str(row["account"]))}" data-active="{str(row["active"]).lower()}">'
                     f'{escape(str(row["account"]))}: <strong>{state}</strong> ({escape(str(row["reason"]))}'
                     f'{", " + escape(str(row["detail"])) if row["detail"] else ""}) since '
                     f'{escape(str(row["created_at"]))}{escape(lasts)}{escape(ended)}</li>')
    return f'<ul class="status">{"".join(lines)}</ul>'


_CHANGES = (("at", "when"), ("account", "account"), ("change", "change"), ("reason", "why"), ("detail", "detail"),
            ("bounce_id", "record"), ("actor", "by"))
_RECORDS = (("received_at", "received"), ("account", "account"), ("outcome", "outcome"), ("reason", "reason"),
            ("hard", "hard"), ("status", "status"), ("diagnostic", "diagnostic"), ("reporting_mta", "reported by"))
_MESSAGES = (("sent_at", "sent"), ("account", "account"), ("subject", "subject"), ("sender", "sender"),
             ("message_id", "message id"), ("queue_id", "queue id"))

#: The columns of free text (the remote side's words), wrapped anywhere; the rest stay on one line.
_WORDS = frozenset({"diagnostic", "subject", "detail", "message_id", "reporting_mta"})
_LONG = ' class="long"'


def _rows(what: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A table of ``rows`` (class ``what``) with ``columns`` (key, heading); a record's
    id links to its raw bounce."""
    if not rows:
        return f'<p class="empty {escape(what)}">None.</p>'
    head = "".join(f"<th>{escape(label)}</th>" for _, label in columns)
    lines = []
    for row in rows:
        cells = "".join(f'<td{_LONG if name in _WORDS else ""}>{_cell(name, row.get(name))}</td>' for name, _ in columns)
        raw = f'<td><a href="/v1/bounces/{int(row["id"])}/raw?format=text">raw</a></td>' if what == "records" else ""
        lines.append(f"<tr>{cells}{raw}</tr>")
    return f'<table class="{escape(what)}"><tr>{head}{"<th></th>" if what == "records" else ""}</tr>{"".join(lines)}</table>'


def _cell(name: str, value: object) -> str:
    """One value, escaped: ``-`` for none, ``yes``/``no`` for a flag."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value))


def _when(epoch: float | None) -> str:
    """An epoch time as RFC 3339 UTC, escaped; ``-`` for none."""
    return "-" if epoch is None else escape(iso(epoch))
