"""RFC 3834 automatic replies: out-of-office and other auto-responders.

Recognised by ``Auto-Submitted: auto-replied``, ``X-Autoreply``, ``X-Autorespond``,
``Precedence: auto_reply``, vendor headers, or a subject that says "out of office" or
"automatic reply" in a common language. Delivery reports are not auto-replies, although
Postfix and Exim mark theirs ``Auto-Submitted``: DSNs are claimed earlier in the
pipeline, and a message from a mailer daemon or with a delivery-failure subject is left
to the bounce parsers. The recipient is the replying address: the ``From:`` of the reply.
"""

from __future__ import annotations

import re

from bouncefilter.classify import heuristic
from bouncefilter.classify.view import View
from bouncefilter.core.address import find_addresses
from bouncefilter.core.record import Finding

_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Mail-Autoreply", "X-Vacation")
#: Vendor headers whose value names a vacation reply (Apple's iCloud).
_VENDOR_HEADERS = ("X-Apple-Action",)
#: Subject cues: the prefixes mail programs put on automatic replies, and the phrases
#: people use for absence, in English, German, French, Spanish, Italian, Portuguese,
#: Dutch, the Nordic languages, Polish, Russian, Japanese and Chinese.
_SUBJECT_RE = re.compile(
    r"out of (?:the )?office|auto(?:matic|matische|matisk|matyczna)?[ -]?(?:reply|response|antwort|svar|odpowied)"
    r"|autoreply|autorespond|on vacation|vacation (?:reply|notice|message)|away from (?:the |my )?office"
    r"|abwesenheit|nicht im b(?:ü|ue)ro|r(?:é|e)ponse automatique|absen(?:t|ce) du bureau"
    r"|respuesta autom(?:á|a)tica|fuera de (?:la )?oficina|risposta automatica|fuori (?:sede|ufficio)"
    r"|resposta autom(?:á|a)tica|fora do escrit|automatisch antwoord|afwezig|fr(?:å|a)nvaro"
    r"|automaattinen vastaus|автоматический ответ|自動応答|自動返信|不在|自动回复",
    re.I,
)
_BULK_PRECEDENCE = ("bulk", "list", "junk")


def parse(view: View) -> list[Finding] | None:
    """A ``vacation`` finding for the replying address; ``None`` if not an auto-reply."""
    if not _is_autoreply(view) or heuristic.is_delivery_report(view):
        return None
    sender = find_addresses(view.sender)
    if not sender:
        return None
    return [Finding(recipient=sender[0], kind="autoreply", diagnostic=view.subject)]


def _is_autoreply(view: View) -> bool:
    if view.content_type == "multipart/report":
        return False
    if view.header("Auto-Submitted").lower().startswith("auto-replied"):
        return True
    if any(view.header(name) for name in _AUTO_HEADERS):
        return True
    if any("vacation" in view.header(name).lower() for name in _VENDOR_HEADERS):
        return True
    precedence = view.header("Precedence").lower()
    if precedence in ("auto_reply", "auto-reply"):
        return True
    # A subject alone is weaker evidence: mailing lists and newsletters are not replies.
    if precedence in _BULK_PRECEDENCE or view.header("List-Id") or view.header("List-Unsubscribe"):
        return False
    return bool(_SUBJECT_RE.search(view.subject))
