"""What an API request asks for: its window, its filters, its page.

Pure functions from the request's text to :class:`bouncefilter.store.BounceQuery`
parts; anything that cannot be read is a :class:`bouncefilter.api.http.HttpError` 400 that
says what was wrong. Windows are half-open, ``[start, end)``: a record received at
exactly ``end`` belongs to the next window.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from bouncefilter.api.http import HttpError
from bouncefilter.core import window as window_
from bouncefilter.core.reason import Reason
from bouncefilter.core.record import Kind

_DOMAIN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_CURSOR = re.compile(r"(\d+(?:\.\d+)?(?:e[+-]?\d+)?)/(\d{1,19})")
_WHOLE = re.compile(r"[0-9]{1,9}")
#: The most rows one page (``limit``) may hold.
MAX_LIMIT = 100_000
#: The first and last moments the API takes: a date shows the years 1 to 9999 only.
EARLIEST, LATEST = window_.EARLIEST, window_.LATEST
#: The largest integer SQLite holds, so the largest record id.
MAX_ID = 2**63 - 1


def moment(text: str, name: str) -> float:
    """Epoch seconds for ``YYYY-MM-DD`` (midnight UTC) or an RFC 3339 date and time with
    its zone (:mod:`bouncefilter.core.window`) from :data:`EARLIEST` to :data:`LATEST`;
    400 naming ``name`` otherwise."""
    try:
        value = window_.moment(text, name)
    except window_.WindowError as error:
        raise HttpError(400, str(error)) from None
    if not EARLIEST <= value <= LATEST:
        raise HttpError(400, f"{name}: {text!r} is not between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
    return value


def window(start: str, end: str, max_days: int) -> tuple[float, float]:
    """The half-open window ``[start, end)`` in epoch seconds; 400 if it is empty,
    inverted or longer than ``max_days`` days."""
    try:
        since, until = window_.window(moment(start, "start"), moment(end, "end"), start, end)
    except window_.WindowError as error:
        raise HttpError(400, str(error)) from None
    if until - since > max_days * 86400:
        raise HttpError(400, f"the window is longer than {max_days} days (api.max_window_days): ask in parts")
    return since, until


def day(epoch: float) -> str:
    """The UTC day ``YYYY-MM-DD`` of an epoch time (the year in four digits, 0001 too)."""
    return datetime.fromtimestamp(epoch, timezone.utc).date().isoformat()


def days(since: float, until: float) -> list[str]:
    """Every UTC day that the window ``[since, until)`` touches, in order."""
    first = datetime.fromtimestamp(since, timezone.utc).date()
    last = datetime.fromtimestamp(until - 1e-6, timezone.utc).date()
    return [(first + timedelta(n)).isoformat() for n in range((last - first).days + 1)]


def filters(params: Mapping[str, str]) -> dict[str, Any]:
    """The :class:`~bouncefilter.store.BounceQuery` filters among ``params``
    (``recipient``, ``domain``, ``reason``, ``kind``, ``hard``), checked; 400 for a value
    that no record can have."""
    found: dict[str, object] = {}
    if "recipient" in params:
        found["recipient"] = _non_empty(params, "recipient")
    if "domain" in params:
        domain = _non_empty(params, "domain")
        if not _DOMAIN.fullmatch(domain):
            raise HttpError(400, f"domain: not a domain name: {domain!r}")
        found["domain"] = domain
    if "reason" in params:
        found["reason"] = _choice(params, "reason", sorted(Reason))
    if "kind" in params:
        found["kind"] = _choice(params, "kind", list(Kind))
    if "hard" in params:
        found["hard"] = boolean(params, "hard")
    return found


def boolean(params: Mapping[str, str], name: str) -> bool:
    """The yes-or-no parameter ``name`` (``true``, ``false``, ``1``, ``0``, ``yes``,
    ``no``); 400 listing them otherwise."""
    return _BOOLEANS[_choice(params, name, list(_BOOLEANS))]


def limit(params: Mapping[str, str]) -> int | None:
    """The ``limit`` parameter: a whole number from 1 to :data:`MAX_LIMIT` in ASCII
    digits, or ``None``."""
    if "limit" not in params:
        return None
    text = params["limit"]
    if not _WHOLE.fullmatch(text) or not 1 <= int(text) <= MAX_LIMIT:
        raise HttpError(400, f"limit: expected a whole number from 1 to {MAX_LIMIT}, got {text!r}")
    return int(text)


#: What a ``cursor`` the API did not give is told.
BAD_CURSOR = "cursor: not a cursor this API gave (take it from the X-Next-Cursor header)"


def opaque(text: str) -> str:
    """``text`` as an opaque ``cursor`` (unpadded URL-safe base64)."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def unwrapped(cursor_text: str) -> str:
    """The text an :func:`opaque` cursor holds; ``""`` if it is not one."""
    try:
        return base64.urlsafe_b64decode(cursor_text + "=" * (-len(cursor_text) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def cursor(position: tuple[float, int]) -> str:
    """The opaque ``cursor`` for a page starting at ``position`` (received_at, id)."""
    return opaque(f"{position[0]!r}/{position[1]}")


def position(text: str) -> tuple[float, int]:
    """The position a ``cursor`` stands for; 400 if it is not one this API gave (its time
    past :data:`LATEST`, its id past :data:`MAX_ID`)."""
    match = _CURSOR.fullmatch(unwrapped(text))
    if not match or float(match.group(1)) > LATEST or int(match.group(2)) > MAX_ID:
        raise HttpError(400, BAD_CURSOR)
    return float(match.group(1)), int(match.group(2))


def _non_empty(params: Mapping[str, str], name: str) -> str:
    """The parameter ``name`` stripped; 400 if nothing is left."""
    value = params[name].strip()
    if not value:
        raise HttpError(400, f"{name}: must not be empty")
    return value


def _choice(params: Mapping[str, str], name: str, choices: list[str]) -> str:
    """The parameter ``name`` in lower case; 400 listing ``choices`` if it is not one."""
    value = params[name].strip().lower()
    if value not in choices:
        raise HttpError(400, f"{name}: expected one of {', '.join(choices)}, got {params[name]!r}")
    return value
