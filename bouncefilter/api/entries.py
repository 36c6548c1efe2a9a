"""What a ``POST /v1/suppressions`` body asks to list: one JSON object, a JSON array of
them, or a CSV with a header row as Mailgun and SES export it (``address,reason,created_at``).

Pure functions from the body's octets to :class:`~bouncefilter.store.suppressions.Entry`
values and :class:`Refusal` s. A body that cannot be read at all (bad JSON, bad CSV, no
``address`` column, a lone object with a bad field) is a
:class:`~bouncefilter.api.http.HttpError` 400 naming what is wrong; in an import of many,
an entry that cannot be listed is refused with its line (CSV) or item number (JSON) and
why, and the others go on.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import NamedTuple

from bouncefilter.api import query
from bouncefilter.api.http import HttpError
from bouncefilter.core import suppression as rules
from bouncefilter.core.address import ANY_DOTTED_ADDRESS, bare_address
from bouncefilter.store.suppressions import Entry

#: The most octets a body may hold (a Mailgun or SES export of about 200,000 addresses).
MAX_BODY_BYTES = 10 * 1024 * 1024
#: What a person or an import may list an address as (the other reasons come from bounces).
REASONS = (rules.MANUAL, rules.IMPORT)
#: The longest ``detail`` kept, in characters.
MAX_DETAIL = 1000
#: The longest address (RFC 5321's path of 256 octets less the angle brackets).
MAX_ADDRESS = 254
#: The keys a JSON entry may have.
KEYS = frozenset({"address", "reason", "detail", "until", "created_at"})
_ADDRESS = re.compile(ANY_DOTTED_ADDRESS)
#: ``2021-05-06 10:23:45`` (a space, no zone), as spreadsheets and some exports write UTC.
_SPACED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?")


class Refusal(NamedTuple):
    """An entry of an import that was not listed: its place (``line`` of the CSV, or
    ``item`` of the JSON array, from 1), the address as given, and why."""

    place: str
    number: int
    address: str
    why: str

    def to_json(self) -> dict[str, object]:
        """``{"line": 3, "address": "...", "why": "..."}`` (``item`` for JSON)."""
        return {self.place: self.number, "address": self.address, "why": self.why}


class Parsed(NamedTuple):
    """A body read: the entries to list, in order, each with its place number, and the
    refusals; ``single`` for a lone JSON object."""

    entries: list[tuple[int, Entry]]
    refused: list[Refusal]
    single: bool = False


def address(text: str, name: str = "address") -> str:
    """``text`` as an address to list (angle brackets and spaces around it taken off);
    400 naming ``name`` if it is not one (``local@domain.tld``, at most
    :data:`MAX_ADDRESS` characters, no control characters)."""
    found = bare_address(text)
    if len(found) > MAX_ADDRESS or not _ADDRESS.fullmatch(found) or not found.isprintable():
        raise HttpError(400, f"{name}: not a mail address (local@domain.tld): {text[:100]!r}")
    return found


def parse(body: bytes, content_type: str, now: float) -> Parsed:
    """The entries of a body of ``content_type`` (``application/json`` or ``text/csv``),
    dates checked against ``now``; 415 for another type, 400 for a body that cannot be read."""
    kind = content_type.partition(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        return _json_body(body, now)
    if kind in ("text/csv", "application/csv"):
        return _csv_body(body, now)
    raise HttpError(415, f"expected a body of application/json or text/csv, got {kind or 'no Content-Type'!r}")


def _json_body(body: bytes, now: float) -> Parsed:
    """One object (errors are 400s) or an array of them (errors are refusals)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise HttpError(400, f"bad JSON: not UTF-8 (octet {error.start})") from None
    except json.JSONDecodeError as error:
        raise HttpError(400, f"bad JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise HttpError(400, "bad JSON: nested too deeply") from None
    if isinstance(data, dict):
        return Parsed([(1, _entry(data, rules.MANUAL, now))], [], single=True)
    if not isinstance(data, list):
        raise HttpError(400, "bad JSON: expected an object or an array of objects")
    parsed = Parsed([], [])
    for number, item in enumerate(data, 1):
        _add(parsed, "item", number, item, rules.MANUAL, now)
    return parsed


def _csv_body(body: bytes, now: float) -> Parsed:
    """A header row naming ``address`` (and any of ``reason``, ``created_at``, ``detail``,
    ``until``; other columns, such as Mailgun's ``code`` and ``error``, are left alone),
    then one address a row. A ``reason`` that is not ``manual`` or ``import`` (another
    service's, such as ``hard bounce`` or ``BOUNCE``) lists the address as ``import``
    with that reason as the detail."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise HttpError(400, f"bad CSV: not UTF-8 (octet {error.start})") from None
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [name.strip().lower() for name in next(rows, [])]
    except csv.Error as error:
        raise HttpError(400, f"bad CSV: line 1: {error}") from None
    if "address" not in header:
        raise HttpError(400, "bad CSV: the first line must be a header naming an address column"
                        " (address,reason,created_at)")
    parsed = Parsed([], [])
    try:
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue
            fields = {name: cell.strip() for name, cell in zip(header, row) if name in KEYS}
            _add(parsed, "line", rows.line_num, _foreign(fields), rules.IMPORT, now)
    except csv.Error as error:
        raise HttpError(400, f"bad CSV: line {rows.line_num}: {error}") from None
    return parsed


def _foreign(fields: Mapping[str, str]) -> dict[str, object]:
    """A CSV row's fields as a JSON entry: empty cells left out, another service's reason kept as the detail."""
    found: dict[str, object] = {name: value for name, value in fields.items() if value}
    reason = str(found.get("reason", rules.IMPORT))
    if reason.lower() not in REASONS:
        found["reason"] = rules.IMPORT
        found.setdefault("detail", reason)
    else:
        found["reason"] = reason.lower()
    return found


def _add(parsed: Parsed, place: str, number: int, item: object, default: str, now: float) -> None:
    """Put ``item`` into ``parsed``: an entry, or a refusal saying why not."""
    try:
        parsed.entries.append((number, _entry(item, default, now)))
    except HttpError as error:
        shown = item.get("address") if isinstance(item, dict) else None
        parsed.refused.append(Refusal(place, number, shown if isinstance(shown, str) else "", error.message))


def _entry(item: object, default: str, now: float) -> Entry:
    """One entry from a JSON object; 400 naming the first field that is wrong."""
    if not isinstance(item, dict):
        raise HttpError(400, "expected an object with an address")
    unknown = sorted(set(item) - KEYS)
    if unknown:
        raise HttpError(400, f"unknown key {unknown[0]!r} (expected {', '.join(sorted(KEYS))})")
    if not isinstance(item.get("address"), str):
        raise HttpError(400, "address: required, a string")
    reason = _text(item, "reason", default)
    if reason not in REASONS:
        raise HttpError(400, f"reason: expected {' or '.join(REASONS)}, got {reason!r}")
    detail = _text(item, "detail", "")
    if len(detail) > MAX_DETAIL:
        raise HttpError(400, f"detail: at most {MAX_DETAIL} characters")
    until = _date(item, "until")
    if until is not None and until <= now:
        raise HttpError(400, f"until: {item['until']!r} has passed already")
    created_at = _date(item, "created_at")
    if created_at is not None and created_at > now:
        raise HttpError(400, f"created_at: {item['created_at']!r} is in the future")
    return Entry(address(item["address"]), reason, detail, until, created_at)


def _text(item: Mapping[str, object], name: str, default: str) -> str:
    """The string field ``name`` (``default`` if absent or null); 400 for another type."""
    value = item.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise HttpError(400, f"{name}: expected a string")
    return value


def _date(item: Mapping[str, object], name: str) -> float | None:
    """The moment in the field ``name``: RFC 3339 (or ``YYYY-MM-DD``), ``YYYY-MM-DD
    HH:MM:SS`` in UTC, or an RFC 5322 date (``Thu, 13 Oct 2011 18:02:00 UTC``); ``None``
    if absent, null or empty; 400 naming the field otherwise."""
    text = _text(item, name, "").strip()
    if not text:
        return None
    if _SPACED.fullmatch(text):
        text = text.replace(" ", "T") + "Z"
    elif "," in text or text[:1].isalpha():
        return _mail_date(text, name)
    return query.moment(text, name)


def _mail_date(text: str, name: str) -> float:
    """Epoch seconds for an RFC 5322 date (one without a zone read as UTC); 400 otherwise."""
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        raise HttpError(400, f"{name}: not a date: {text[:100]!r} (expected RFC 3339, such as"
                        " 2026-12-01T08:00:00Z)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()

