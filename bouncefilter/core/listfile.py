"""Suppression list files as people bring them: what ``bouncefilter suppression import``
and ``POST /v1/suppressions`` read. Pure: text in, entries and refusals out.

Two forms:

- **CSV** with a header row, as Mailgun and SES export their lists
  (``address,reason,created_at``; ``email``, ``EmailAddress`` for the address and
  ``LastUpdateTime`` for the date are taken too; other columns, such as Mailgun's
  ``code`` and ``error``, are left alone). A reason that the importer may not give
  (another service's, such as ``hard bounce`` or ``BOUNCE``) lists the address as
  ``import``, that reason kept in the detail.
- **JSON**: one object, an array of objects, or one object a line. Keys: ``address``
  (required), ``reason``, ``detail``, ``until``, ``created_at`` (``account`` is taken
  and ignored: the importer names the account). A reason the importer may not give is
  refused, as is an unknown key (a mistyped ``until`` must not list an address for good).

Dates are RFC 3339 (or ``YYYY-MM-DD``), ``YYYY-MM-DD HH:MM:SS`` in UTC, RFC 5322
(``Thu, 16 May 2024 08:00:00 UTC``) or epoch seconds. An entry that cannot be listed is
a :class:`Refusal` with its line (or array item) and why, and the others go on; a file
that cannot be read at all raises :class:`ListFileError`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import NamedTuple

from bouncefilter.core import window
from bouncefilter.core.address import ANY_DOTTED_ADDRESS, bare_address
from bouncefilter.core.suppression import IMPORT, MANUAL, REASONS, Entry

#: The longest address (RFC 5321's path of 256 octets less the angle brackets).
MAX_ADDRESS = 254
#: The longest ``detail`` kept, in characters.
MAX_DETAIL = 1000
#: The keys a JSON entry may have (``account`` is read and ignored).
KEYS = frozenset({"address", "reason", "detail", "until", "created_at", "account"})
#: Other services' names for the columns (compared lower-cased): SES's suppressed
#: destinations carry ``EmailAddress`` and ``LastUpdateTime``; other exports say ``email``.
ALIASES = {"email": "address", "emailaddress": "address", "email_address": "address",
           "lastupdatetime": "created_at", "last_update_time": "created_at"}
#: What an administrator may list an address as; the API's account tokens only :data:`BY_HAND`.
ANY_REASON = REASONS
BY_HAND = (MANUAL, IMPORT)

_ADDRESS = re.compile(ANY_DOTTED_ADDRESS)
_SPACED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?")
_EPOCH = re.compile(r"\d{9,11}(\.\d+)?")


class ListFileError(ValueError):
    """The file as a whole cannot be read (bad JSON, bad CSV, no address column)."""


class Refused(ValueError):
    """One entry cannot be listed; the message says why, naming the field."""


class Refusal(NamedTuple):
    """An entry that was not listed: its place (``line`` of the file, or ``item`` of a
    JSON array, from 1), the address as given, and why."""

    place: str
    number: int
    address: str
    why: str

    def to_json(self) -> dict[str, object]:
        """``{"line": 3, "address": "...", "why": "..."}`` (``item`` for an array)."""
        return {self.place: self.number, "address": self.address, "why": self.why}


class Read(NamedTuple):
    """A file read: the entries to list with their numbers, in order, the refusals, and
    ``single`` for a file of one JSON object."""

    entries: list[tuple[int, Entry]]
    refused: list[Refusal]
    single: bool = False


def address(text: str, name: str = "address") -> str:
    """``text`` as an address to list (angle brackets and spaces taken off); :class:`Refused`
    naming ``name`` unless it is ``local@domain.tld``, at most :data:`MAX_ADDRESS`
    characters, without control characters."""
    found = bare_address(text)
    if len(found) > MAX_ADDRESS or not _ADDRESS.fullmatch(found) or not found.isprintable():
        raise Refused(f"{name}: not a mail address (local@domain.tld): {text[:100]!r}")
    return found


def read(text: str, now: float, kind: str | None = None, reasons: Sequence[str] = ANY_REASON,
         default: str | None = None) -> Read:
    """The entries of ``text``, a ``kind`` ``"csv"`` or ``"json"`` file (``None``: JSON if
    it opens with ``[`` or ``{``, else CSV), dates checked against ``now``, reasons
    limited to ``reasons``; an entry without one is ``default`` (``None``: ``import``
    in a CSV, ``manual`` in JSON). Raises :class:`ListFileError` for a file that cannot
    be read."""
    text = text.removeprefix("\ufeff")
    opening = text.lstrip()[:1]
    rules = _Rules(now, tuple(reasons), default)
    if kind == "json" or (kind is None and opening in ("[", "{")):
        return _json(text, rules._replace(default=default or MANUAL))
    return _gather(_csv_rows(text), "line", rules._replace(default=default or IMPORT), foreign=True)


class _Rules(NamedTuple):
    """What an entry is checked against: the moment, the reasons allowed, the default."""

    now: float
    reasons: tuple[str, ...]
    default: str | None


def _json(text: str, rules: _Rules) -> Read:
    """One object, an array of objects, or (when the whole is not one) one object a line."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        lines = [line for line in text.splitlines() if line.strip()]
        if text.lstrip()[:1] != "{" or len(lines) < 2:
            raise ListFileError(f"bad JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
        return _gather(_json_lines(text), "line", rules)
    except RecursionError:
        raise ListFileError("bad JSON: nested too deeply") from None
    if isinstance(data, dict):
        return _gather([(1, data)], "line", rules)._replace(single=True)
    if not isinstance(data, list):
        raise ListFileError("bad JSON: expected an object or an array of objects")
    return _gather(enumerate(data, 1), "item", rules)


def _json_lines(text: str) -> Iterable[tuple[int, object]]:
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except (json.JSONDecodeError, RecursionError) as error:
                yield number, Refused(f"bad JSON: {getattr(error, 'msg', 'nested too deeply')}")


def _csv_rows(text: str) -> Iterable[tuple[int, object]]:
    """(line, fields) per non-empty row after the header; :class:`ListFileError` for a
    header without an address column or a row CSV cannot read (a stray quote swallows
    what follows, so nothing after it can be trusted)."""
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [ALIASES.get(name.strip().lower(), name.strip().lower()) for name in next(rows, [])]
        if "address" not in header:
            raise ListFileError("bad CSV: the first line must be a header naming an address column"
                                " (address,reason,created_at)")
        for row in rows:
            if any(cell.strip() for cell in row):
                yield rows.line_num, {name: cell.strip() for name, cell in zip(header, row)
                                      if name in KEYS and cell.strip()}
    except csv.Error as error:
        raise ListFileError(f"bad CSV: line {rows.line_num}: {error}") from None


def _gather(items: Iterable[tuple[int, object]], place: str, rules: _Rules, foreign: bool = False) -> Read:
    found = Read([], [])
    for number, item in items:
        try:
            if isinstance(item, Refused):
                raise item
            found.entries.append((number, entry(item, rules.now, rules.reasons, rules.default or MANUAL, foreign)))
        except Refused as refused:
            shown = item.get("address") if isinstance(item, dict) else None
            found.refused.append(Refusal(place, number, shown if isinstance(shown, str) else "", str(refused)))
    return found


def entry(item: object, now: float, reasons: Sequence[str] = ANY_REASON, default: str = MANUAL,
          foreign: bool = False) -> Entry:
    """The entry one JSON object or CSV row asks for (``default`` its reason if it names
    none); :class:`Refused` naming the first field that is wrong. With ``foreign`` (a CSV
    row), a reason outside ``reasons`` lists the address as ``import`` with that reason
    in the detail; without, it is refused."""
    if not isinstance(item, Mapping):
        raise Refused("expected an object with an address")
    unknown = sorted(set(item) - KEYS)
    if unknown:
        raise Refused(f"unknown key {unknown[0]!r} (expected {', '.join(sorted(KEYS - {'account'}))})")
    if not isinstance(item.get("address"), str):
        raise Refused("address: required, a string")
    given, detail = _text(item, "reason"), _text(item, "detail")
    reason = given.lower() or default
    if reason not in reasons:
        if not foreign:
            raise Refused(f"reason: expected {' or '.join(reasons)}, got {given!r}")
        reason, detail = IMPORT, f"{given}: {detail}" if detail else given
    if len(detail) > MAX_DETAIL:
        raise Refused(f"detail: at most {MAX_DETAIL} characters")
    until, created_at = _moment(item, "until"), _moment(item, "created_at")
    if until is not None and until <= now:
        raise Refused(f"until: {item['until']!r} has passed already")
    if created_at is not None and created_at > now:
        raise Refused(f"created_at: {item['created_at']!r} is in the future")
    return Entry(address(item["address"]), reason, detail, until, created_at)


def _text(item: Mapping[str, object], name: str) -> str:
    """The string field ``name``, stripped (``""`` if absent or null)."""
    value = item.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Refused(f"{name}: expected a string")
    return value.strip()


def _moment(item: Mapping[str, object], name: str) -> float | None:
    """Epoch seconds for the date in ``item[name]``; ``None`` if absent, null or empty."""
    value = item.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = float(value)
    else:
        text = _text(item, name)
        if not text:
            return None
        moment = _parsed(text, name)
    if not window.EARLIEST <= moment <= window.LATEST:
        raise Refused(f"{name}: {value!r} is not between 0001-01-01 and 9999-12-31")
    return moment


def _parsed(text: str, name: str) -> float:
    if _EPOCH.fullmatch(text):
        return float(text)
    if _SPACED.fullmatch(text):
        text = text.replace(" ", "T") + "Z"
    elif "," in text or text[:1].isalpha():
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise Refused(f"{name}: not a date: {text[:100]!r} (expected RFC 3339, such as 2026-12-01T08:00:00Z)") \
                from None
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    try:
        return window.moment(text, name)
    except (window.WindowError, OverflowError, ValueError) as error:
        raise Refused(str(error)) from None
