"""The files ``bouncefilter suppression import`` reads and ``export`` writes. Pure but
for the streams given.

Read (:func:`read`): a CSV with a header row, as Mailgun and SES export their lists
(``address,reason,created_at``; ``email`` or ``EmailAddress`` for the address and
``LastUpdateTime`` for the date are taken too, other columns left alone), or JSON: an
array of objects, or one object a line. Each entry has an ``address`` and may have a
``reason``, ``created_at``, ``detail`` and ``until`` (an ``account`` field is ignored:
the command lists everything for its ``--account``). A reason that is not one of
:data:`~bouncefilter.core.suppression.REASONS` (another service's, such as ``BOUNCE`` or
``hard bounce``) lists the address as ``import``, that reason kept as the detail; no
reason is ``import``. Dates are RFC 3339 (or ``YYYY-MM-DD``), ``YYYY-MM-DD HH:MM:SS`` in
UTC, RFC 5322 (``Tue, 01 Dec 2026 08:00:00 +0000``) or epoch seconds. An entry that
cannot be listed is a :class:`Bad` line with its number and why; the others go on.

Written (:func:`write_csv`, :func:`write_json`): ``address,reason,created_at,account,
detail,until`` with the moments in RFC 3339 UTC, which :func:`read` takes back.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import NamedTuple, TextIO

from bouncefilter.core import suppression as rules
from bouncefilter.core import window
from bouncefilter.core.address import ANY_DOTTED_ADDRESS, bare_address
from bouncefilter.store.suppressions import Entry, Suppression

#: The columns :func:`write_csv` writes, in order.
COLUMNS = ("address", "reason", "created_at", "account", "detail", "until")
#: Other services' names for our columns (compared lower-cased).
ALIASES = {"email": "address", "emailaddress": "address", "email_address": "address",
           "lastupdatetime": "created_at", "last_update_time": "created_at"}
_ADDRESS = re.compile(ANY_DOTTED_ADDRESS)
_SPACED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?")
_NUMBER = re.compile(r"\d{9,11}(\.\d+)?")


class Bad(NamedTuple):
    """An entry that was not listed: its line (of the CSV or the JSON lines; for a JSON
    array, its item) and why."""

    line: int
    why: str


class Read(NamedTuple):
    """A file read: the entries with their line numbers, in order, and the bad lines."""

    entries: list[tuple[int, Entry]]
    bad: list[Bad]


class _Refused(ValueError):
    """One entry cannot be listed; the message says why."""


def read(text: str, now: float) -> Read:
    """The entries of an import file's ``text`` (format told by its first character:
    ``[`` a JSON array, ``{`` JSON lines, else CSV), dates checked against ``now``."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as error:
            return Read([], [Bad(error.lineno, f"not JSON: {error.msg}")])
        return _gather(enumerate(items, 1), now)
    if stripped.startswith("{"):
        return _gather(_json_lines(text), now)
    return _gather(_csv_rows(text), now)


def _json_lines(text: str) -> Iterable[tuple[int, object]]:
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                yield number, _Refused(f"not JSON: {error.msg}")


def _csv_rows(text: str) -> Iterable[tuple[int, object]]:
    rows = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header = [ALIASES.get(name.strip().lower(), name.strip().lower()) for name in next(rows, [])]
    if "address" not in header:
        yield rows.line_num or 1, _Refused("the first line must be a header naming an address column"
                                           " (address,reason,created_at)")
        return
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as error:
            yield rows.line_num, _Refused(f"not CSV: {error}")
            continue
        if any(cell.strip() for cell in row):
            yield rows.line_num, {name: cell.strip() for name, cell in zip(header, row) if cell.strip()}


def _gather(items: Iterable[tuple[int, object]], now: float) -> Read:
    found = Read([], [])
    for number, item in items:
        try:
            if isinstance(item, _Refused):
                raise item
            found.entries.append((number, entry(item, now)))
        except _Refused as refused:
            found.bad.append(Bad(number, str(refused)))
    return found


def entry(item: object, now: float) -> Entry:
    """The entry one CSV row or JSON object asks for; :class:`ValueError` saying why it
    cannot be listed (no address, a date that cannot be read, a ``created_at`` to come,
    an ``until`` that has passed)."""
    if not isinstance(item, Mapping):
        raise _Refused("expected an object with an address")
    address = bare_address(_text(item, "address"))
    if not address:
        raise _Refused("no address")
    if len(address) > 254 or not _ADDRESS.fullmatch(address) or not address.isprintable():
        raise _Refused(f"not a mail address (local@domain.tld): {address[:100]!r}")
    given, detail = _text(item, "reason"), _text(item, "detail")
    reason = given.lower() if given.lower() in rules.REASONS else rules.IMPORT
    if given and given.lower() != reason:
        detail = f"{given}: {detail}" if detail else given
    created_at, until = _moment(item, "created_at"), _moment(item, "until")
    if created_at is not None and created_at > now:
        raise _Refused(f"created_at {item['created_at']!r} is still to come")
    if until is not None and until <= now:
        raise _Refused(f"until {item['until']!r} has passed: nothing to list")
    return Entry(address, reason, detail, until, created_at)


def _text(item: Mapping[str, object], name: str) -> str:
    value = item.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Refused(f"{name}: expected a string")
    return value.strip()


def _moment(item: Mapping[str, object], name: str) -> float | None:
    """Epoch seconds for the date in ``item[name]`` (``None`` when absent or empty)."""
    value = item.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = _text(item, name)
    if not text:
        return None
    if _NUMBER.fullmatch(text):
        return float(text)
    if _SPACED.fullmatch(text):
        text = text.replace(" ", "T") + "Z"
    if "," in text or text[:1].isalpha():
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise _Refused(f"{name}: not a date: {text[:60]!r}") from None
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    try:
        return window.moment(text, name)
    except window.WindowError as error:
        raise _Refused(str(error)) from None


def record(found: Suppression) -> dict[str, object]:
    """One listing as :func:`write_csv` and :func:`write_json` write it."""
    return {"address": found.address, "reason": found.reason,
            "created_at": None if found.created_at is None else window.iso(found.created_at),
            "account": found.account, "detail": found.detail,
            "until": None if found.until is None else window.iso(found.until)}


def write_csv(out: TextIO, listed: Iterable[Suppression]) -> None:
    """The header row, then one row per listing."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for found in listed:
        writer.writerow(["" if value is None else value for value in record(found).values()])


def write_json(out: TextIO, listed: Iterable[Suppression]) -> None:
    """One JSON object per listing per line."""
    for found in listed:
        out.write(json.dumps(record(found), ensure_ascii=False) + "\n")
