"""Google Groups refusing a post: the group does not exist or the sender may not post.

Sent as ``mailer-daemon@googlemail.com`` with ``X-Failed-Recipients:`` naming the group;
the text, in the sender's language, explains and links groups.google.com. The group
refused the sender whatever the language says: the code ``googlegroups:refused``, which
the wording table reads as ``rejected``.
"""

from __future__ import annotations

from bouncefilter.classify.textbounce import failed_recipients, finding, unfold
from bouncefilter.classify.view import View
from bouncefilter.core.record import Finding

_MARKERS = ("groups.google.com", "Google Groups", "Google Group")
_END_MARKER = "----- Original message -----"


def parse(view: View) -> list[Finding] | None:
    """A finding per refusing group; ``None`` if not a Google Groups notice."""
    if "mailer-daemon@google" not in view.sender_lower:
        return None
    groups = failed_recipients(view.header("X-Failed-Recipients"))
    if not groups:
        return None
    notice = view.text.split(_END_MARKER, 1)[0]
    if not any(marker in notice for marker in _MARKERS):
        return None
    # The longest paragraph is the explanation (the others greet, list causes, sign).
    diagnostic = max((unfold(para.splitlines()) for para in notice.split("\n\n")), key=len)
    return [finding(group, diagnostic, code="googlegroups:refused") for group in groups]
