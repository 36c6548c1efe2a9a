"""An unnamed Japanese MTA (sisimai's "X1") that lists each address with its error in
square brackets::

    ---The following addresses had delivery errors---

    user@example.com [User unknown]
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import DOTTED_ADDRESS, clean_address
from bouncefilter.core.record import Finding

_START = "---The following addresses had delivery errors---"
_LINE_RE = lazy.regex(rf"^[ \t]*<?({DOTTED_ADDRESS})>?[ \t]+\[(.{{1,500}})\][ \t]*$", re.M)


def parse(view: View) -> list[Finding] | None:
    """A finding per ``address [error]`` line; ``None`` if not this format."""
    if not view.subject_lower.startswith("returned mail:"):
        return None
    body = textbounce.after_marker(view.text, (_START,))
    if not body:
        return None
    return textbounce.dedupe(
        textbounce.failure(clean_address(match.group(1)), " ".join(match.group(2).split()))
        for match in _LINE_RE.finditer(body)
    ) or None
