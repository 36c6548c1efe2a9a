"""RFC 3834 automatic replies: out-of-office and other auto-responders.

Recognised by ``Auto-Submitted: auto-replied``, ``X-Autoreply``, ``X-Autorespond``,
``Precedence: auto_reply``, vendor headers, or a subject that says "out of office" in a
common language. Delivery reports (which Postfix also marks ``Auto-Submitted``) are
tried before this parser, so they never reach it. The recipient is the replying
address: the ``From:`` of the reply.
"""

from __future__ import annotations

import re

from bouncefilter import mime
from bouncefilter.record import Finding
from bouncefilter.view import View

_AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-mail-autoreply")
_SUBJECT_RE = re.compile(
    r"out of (?:the )?office|auto(?:matic)?[ -]?(?:reply|response|antwort|respuesta)"
    r"|autoreply|on vacation|vacation reply|away from (?:the|my) office"
    r"|abwesenheit|nicht im b(?:ü|ue)ro|absence|absent|r(?:é|e)ponse automatique"
    r"|risposta automatica|fuori sede|ausente|respuesta autom(?:á|a)tica|fora do escrit"
    r"|resposta autom(?:á|a)tica|afwezig|automatisch antwoord|不在|自動応答|自动回复",
    re.I,
)


def parse(view: View) -> list[Finding] | None:
    """A ``vacation`` finding for the replying address; ``None`` if not an auto-reply."""
    if not _is_autoreply(view):
        return None
    sender = mime.addresses(view.sender)
    if not sender:
        return None
    return [Finding(recipient=sender[0], kind="autoreply", diagnostic=view.subject)]


def _is_autoreply(view: View) -> bool:
    auto = view.header("Auto-Submitted").lower()
    if auto.startswith("auto-replied"):
        return True
    if any(view.header(name) for name in _AUTO_HEADERS):
        return True
    if view.header("Precedence").lower() in ("auto_reply", "auto-reply"):
        return True
    return bool(_SUBJECT_RE.search(view.subject))
