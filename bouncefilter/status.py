"""RFC 3463 enhanced status codes and SMTP reply codes found in text.

Pure functions over short strings; every pattern is linear (no nested quantifiers), so
hostile text cannot make them run away.
"""

from __future__ import annotations

import re

_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
_REPLY_RE = re.compile(r"(?<![\w.#-])([245][0-5]\d)(?=[ \t-]|$|\))", re.M)
_SAID_REPLY_RE = re.compile(r"\b(?:said|says|answered|replied|response|error)\b[^0-9\n]{0,20}?([245][0-5]\d)\b", re.I)


def find_status(text: str) -> str:
    """The first plausible ``D.S.N`` code in ``text`` (``5.1.1``), or ``""``.

    ``X.0.0`` codes come last: a more specific code later in the text wins.
    """
    generic = ""
    for match in _STATUS_RE.finditer(text):
        klass, subject, detail = match.groups()
        if int(subject) > 7:
            continue
        code = f"{klass}.{int(subject)}.{int(detail)}"
        if subject == "0" and detail == "0":
            generic = generic or code
            continue
        return code
    return generic


def find_replycode(text: str) -> str:
    """The first SMTP reply code in ``text`` (``550``), or ``""``.

    A code is three digits starting 2, 4 or 5 that stands alone (``550 ...``,
    ``550-...``, ``said: 550``), not part of a number, a status code or an address.
    """
    match = _SAID_REPLY_RE.search(text)
    if match:
        return match.group(1)
    match = _REPLY_RE.search(text)
    return match.group(1) if match else ""


def normalize(status: str) -> str:
    """A status field's value cut down to ``D.S.N`` (``5.1.1 (User unknown)`` ->
    ``5.1.1``), or ``""`` when it holds none."""
    return find_status(status) if status else ""


def klass(status: str) -> str:
    """The class digit of a status (``5``), or ``""``."""
    return status[:1] if status[:1] in ("2", "4", "5") else ""


def agrees(status: str, replycode: str) -> bool:
    """Whether a status and a reply code are of the same class (either may be empty)."""
    return not status or not replycode or status[0] == replycode[0]
