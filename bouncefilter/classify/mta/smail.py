"""Smail 3's returned mail (``mail failed, returning to sender``).

Layout::

    |------------------------- Message log follows: -------------------------|
     no valid recipients were found for this message
    |------------------------- Failed addresses follow: ---------------------|
     user@example.com ... unknown host
    |------------------------- Message text follows: ------------------------|
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy
from bouncefilter.classify.textbounce import finding
from bouncefilter.classify.view import View
from bouncefilter.core.address import clean_address
from bouncefilter.core.record import Finding

_FAILED_RE = lazy.regex(r"^\|-{5,} Failed addresses follow: -{5,}\|[ \t]*$", re.M)
_NEXT_RE = lazy.regex(r"^\|-{5,} ", re.M)
_LINE_RE = lazy.regex(r"^[ \t]*(\S{3,320}?) \.\.\. (.{0,1000})$")


def parse(view: View) -> list[Finding] | None:
    """Findings for a Smail report; ``None`` otherwise."""
    text = view.text
    if "Failed addresses follow:" not in text:
        return None
    failed = _FAILED_RE.search(text)
    if failed is None:
        return None
    following = _NEXT_RE.search(text, failed.end())
    out = []
    for line in text[failed.end(): following.start() if following else len(text)].splitlines():
        match = _LINE_RE.match(line)
        address = clean_address(match.group(1)) if match else ""
        if match and address:
            out.append(finding(address, match.group(2).strip()))
    return out or None
