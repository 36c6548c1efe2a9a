"""RFC 3463 enhanced status codes and SMTP reply codes found in text.

Pure functions over short strings; every pattern is linear (no nested quantifiers), so
hostile text cannot make them run away.

A remote server answers with a reply code and, usually, an enhanced status right after
it (``550 5.1.1``, ``550-5.7.1``, ``550-'5.2.2``, ``550 #5.1.0``). That pair is the most
trustworthy code in a diagnostic: a status standing alone may be the reporting MTA's own
summary (``5.1.0 - Unknown address error 550-'5.2.2 ...``), a reply code standing alone
may be a greeting (``220-laposte 421 4.2.1 ...``).
"""

from __future__ import annotations

import re

_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
_PAIR_RE = re.compile(r"(?<![\w.#-])([245])(\d\d)[ -]['#]?([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
#: A reply code standing alone; an ``X-Unix;`` diagnostic's number is a program's exit
#: status, not a reply.
_REPLY_RE = re.compile(r"(?<![\w.#-])(?<!x-unix; )([245][0-5]\d)(?=[ \t-]|$|\))", re.M | re.I)
_SAID_REPLY_RE = re.compile(r"\b(?:said|says|answered|replied|response|error)\b[^0-9\n]{0,20}?([245][0-5]\d)\b", re.I)


def find_status(text: str) -> str:
    """The most trustworthy ``D.S.N`` code in ``text`` (``5.1.1``), or ``""``.

    A status that follows a reply code of its class wins; else the first plausible
    one. ``X.0.0`` codes come last: a more specific code later in the text wins.
    """
    paired = _first_pair(text)
    if paired and not paired[1].endswith(".0.0"):
        return paired[1]
    generic = ""
    for match in _STATUS_RE.finditer(text):
        code = _code(*match.groups())
        if not code:
            continue
        if code.endswith(".0.0"):
            generic = generic or code
            continue
        return code
    return generic


def find_replycode(text: str) -> str:
    """The SMTP reply code in ``text`` (``550``), or ``""``.

    The reply code of the first reply-and-status pair of one class; else a code said to
    be the answer (``said: 550``); else the first that stands alone (``550 ...``,
    ``550-...``), not part of a number, a status code or an address, preferring a
    failure code (4xx, 5xx) to a greeting.
    """
    paired = _first_pair(text)
    if paired:
        return paired[0]
    match = _SAID_REPLY_RE.search(text)
    if match:
        return match.group(1)
    first = ""
    for match in _REPLY_RE.finditer(text):
        if match.group(1)[0] != "2":
            return match.group(1)
        first = first or match.group(1)
    return first


def _first_pair(text: str) -> tuple[str, str] | None:
    """``(reply code, status)`` of the first pair whose classes agree."""
    if "." not in text:
        return None
    for match in _PAIR_RE.finditer(text):
        klass, rest, status_class, subject, detail = match.groups()
        code = _code(status_class, subject, detail)
        if code and klass == status_class:
            return klass + rest, code
    return None


def _code(klass: str, subject: str, detail: str) -> str:
    """``D.S.N`` from its parts, or ``""`` when the subject is out of range."""
    if int(subject) > 7:
        return ""
    return f"{klass}.{int(subject)}.{int(detail)}"


def normalize(status: str) -> str:
    """A status field's value cut down to ``D.S.N`` (``5.1.1 (User unknown)`` ->
    ``5.1.1``), or ``""`` when it holds none."""
    return find_status(status) if status else ""


def klass(status: str) -> str:
    """The class digit of a status (``5``), or ``""``."""
    return status[:1] if status[:1] in ("2", "4", "5") else ""


