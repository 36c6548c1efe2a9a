"""MailMarshal (Trustwave/Marshal) notices: the error first, then the recipients it
affected, then the MTAs involved::

    Could not be delivered because of

    550 5.1.1 User unknown

    The following recipients were affected:
        user@example.com

    Additional Information
    ======================
    Remote-MTA:         <192.0.2.1>
    Reporting-MTA:      <mail.example.org>
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import find_addresses
from bouncefilter.core.record import Finding

_BECAUSE = "Could not be delivered because of"
_AFFECTED = "The following recipients were affected:"
_INFO = "Additional Information"
_FIELD_RE = lazy.regex(r"^(Remote-MTA|Reporting-MTA):[ \t]*<?([^>\s]{1,255})>?", re.M)


def parse(view: View) -> list[Finding] | None:
    """A finding per affected recipient; ``None`` if not a MailMarshal notice."""
    if not view.subject_lower.startswith("undeliverable mail"):
        return None
    text = view.text
    error = textbounce.unfold(textbounce.section(text, (_BECAUSE,), (_AFFECTED,)).splitlines())
    listing = textbounce.section(text, (_AFFECTED,), (_INFO,))
    if not error or not listing:
        return None
    fields = {name.lower(): value.lower() for name, value in _FIELD_RE.findall(textbounce.after_marker(text, (_INFO,)))}
    return textbounce.dedupe(
        textbounce.failure(
            address, error,
            remote_mta=fields.get("remote-mta", ""),
            reporting_mta=fields.get("reporting-mta", ""),
        )
        for address in find_addresses(listing)
    ) or None
