"""Shared reading of plain-text bounces, for the format modules in :mod:`bouncefilter.lhost`.

Most MTAs that write no delivery-status part follow one layout: a preamble, then per
failed recipient a line naming the address followed by the error, then a marker line
before the returned copy of the message. The helpers here do those steps; a format
module supplies its markers and its own quirks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bouncefilter import mime
from bouncefilter.record import Finding

#: A line that starts a recipient block: an address, optionally in <>, optionally
#: followed by a colon or the start of the error text.
_ADDRESS_LINE_RE = re.compile(r"^[ \t]*<?([^\s<>()\[\]\"',;:@]{1,64}@[A-Za-z0-9_.-]{1,255}\.[A-Za-z]{2,63})>?:?(?:[ \t]+(.*))?$")


def before_marker(text: str, markers: Iterable[str]) -> str:
    """``text`` up to the first of ``markers`` (case-sensitive substrings); all of it if none."""
    cut = len(text)
    for marker in markers:
        index = text.find(marker)
        if 0 <= index < cut:
            cut = index
    return text[:cut]


def after_marker(text: str, markers: Iterable[str]) -> str:
    """``text`` after the first of ``markers`` found; ``""`` if none is present."""
    for marker in markers:
        index = text.find(marker)
        if index >= 0:
            return text[index + len(marker):]
    return ""


def address_blocks(text: str) -> list[tuple[str, str]]:
    """``(address, error text)`` per block that starts with a line naming an address.

    A block runs until a blank line after some error text, or the next address line.
    The error text is unfolded into one line.
    """
    blocks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = _ADDRESS_LINE_RE.match(line)
        if match:
            blocks.append((mime.clean_address(match.group(1)), [match.group(2) or ""]))
            continue
        if not blocks:
            continue
        if not line.strip():
            if any(part.strip() for part in blocks[-1][1]):
                blocks.append(("", []))
            continue
        blocks[-1][1].append(line.strip())
    return [(addr, " ".join(" ".join(lines).split())) for addr, lines in blocks if addr]


def findings(blocks: Iterable[tuple[str, str]], **fields: str) -> list[Finding]:
    """A bounce finding per ``(address, error text)`` pair, deduplicated by address."""
    seen: set[str] = set()
    out: list[Finding] = []
    for address, error in blocks:
        key = address.lower()
        if key in seen:
            continue
        seen.add(key)
        out.append(Finding(recipient=address, diagnostic=error, **fields))
    return out
