"""Time windows as the command line and the download API take them: one reading for both.

A moment is a date (``2024-05-16``, midnight UTC) or an RFC 3339 date and time with its
zone (``2024-05-16T06:00:00Z``, ``2024-05-16T08:00+02:00``; seconds may be left out).
A date and time without a zone is refused rather than guessed: nobody can tell whether
``2024-05-16T08:00`` meant UTC or the writer's own clock. The command line also takes
an age back from now (``7d``, ``12h``, ``30m``). A window is half open, ``[since,
until)``, and must not be empty or inverted. Pure: the current time is an argument.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})?")
_AGE = re.compile(r"(\d{1,6})([dhm])")
_AGE_SECONDS = {"d": 86400, "h": 3600, "m": 60}
FORMS = "YYYY-MM-DD or an RFC 3339 time with its zone such as 2024-05-16T06:00:00Z"


#: The first and last moments a date can show (years 1 to 9999), in epoch seconds.
EARLIEST = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp()


class WindowError(ValueError):
    """A moment or window that cannot be read; the message says what was expected."""


def iso(epoch: float) -> str:
    """``2024-05-16T06:02:31Z``: epoch seconds as ISO 8601 UTC, to the second."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def moment(text: str, name: str, now: float | None = None) -> float:
    """Epoch seconds for ``text``; ages are taken only when ``now`` is given."""
    value = text.strip()
    age = _AGE.fullmatch(value) if now is not None else None
    if age and now is not None:
        return now - int(age.group(1)) * _AGE_SECONDS[age.group(2)]
    timed = _TIME.fullmatch(value)
    if timed and not timed.group(1):
        raise WindowError(f"{name}: {text!r} has no zone (RFC 3339 needs one): add Z for UTC or an offset such as +02:00")
    try:
        if _DAY.fullmatch(value):
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), timezone.utc).timestamp()
        if timed:
            return datetime.fromisoformat(value.upper().replace("Z", "+00:00")).timestamp()
    except ValueError:  # a month 13, a day 32: not a moment either
        pass
    ages = ", or an age such as 7d, 12h or 30m" if now is not None else ""
    raise WindowError(f"{name}: expected {FORMS}{ages}, got {text!r}")


#: What "the last N days" means to the report and the overview page alike: whole UTC
#: days, today included.
DEFAULT_DAYS = 30


def last_days(now: float, days: int = DEFAULT_DAYS) -> tuple[float, float]:
    """The ``days`` whole UTC days up to and including the day of ``now``:
    ``[midnight days-1 days ago, next midnight)``."""
    until = (now // 86400 + 1) * 86400
    return until - days * 86400, until


def window(since: float, until: float, start: str, end: str) -> tuple[float, float]:
    """``(since, until)`` once checked not empty or inverted (``start``/``end`` are the
    texts they came from, for the message)."""
    if until <= since:
        raise WindowError(f"the window [{start}, {end}) is empty: end must be after start")
    return since, until
