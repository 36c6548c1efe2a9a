"""Challenge/response requests: a recipient's whitelist asking the sender to prove a person
sent the mail before it is delivered.

They are not failures: the message waits, held until someone answers the challenge, and
the address is good. Some come as a plain message, some dressed as a delivery report
(``multipart/report`` with a failed or delayed recipient), so this detector runs before
the DSN parser. A message is a challenge when the opening of its notification asks the
sender to act (click, reply, confirm, verify) and its subject or that opening names the
mechanism or asks the sender to prove they are a person, in the words such systems use
(TMDA, Spam Arrest, Boxbe, Bluebottle, Mailbox Shield, ChoiceMail, qconfirm, Earthlink's
spamBlocker, cPanel's BoxTrapper); or when its subject asks to confirm or verify the
message and the opening says what for (spam, a whitelist, unknown senders). A message
that merely asks to confirm something does not count.

The findings have kind ``challenge``; their recipient is the address that challenges:
the recipients a delivery-status part names, else the address the request comes from.
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy, original
from bouncefilter.classify.view import View
from bouncefilter.core.address import find_addresses
from bouncefilter.core.record import Finding

#: Only this much of the notification is read: a challenge says what it is first.
OPENING = 3000

#: Names of challenge/response systems and the phrases only they use.
_MECHANISM_RE = lazy.regex(
    r"challenge[ /-]?response|spam ?arrest|\bboxbe\b|bluebottle|mailbox ?shield|choicemail|\bqconfirm\b"
    r"|\btmda\b|boxtrapper|spam ?blocker|sender verification (?:request|required|needed)"
    r"|(?:verify|confirm|prove) (?:that )?you are (?:a )?(?:human|real person|person|not a (?:robot|spammer))"
    r"|(?:added|add you) to (?:my|the|his|her|their|your recipient's) (?:white ?list|approved senders|allowed senders|safe senders)"
    r"|(?:white ?list|approved senders list|allowed senders list) (?:request|verification|confirmation)",
    re.I,
)
#: A request to act, which a mechanism's name alone (an unsubscribe footer naming a
#: product) is not.
_REQUEST_RE = lazy.regex(
    r"\b(?:click|follow|visit|reply|respond|answer|confirm|verify|complete|solve)\b", re.I,
)
#: What a verification request is for, when only its subject names it.
_PURPOSE_RE = lazy.regex(r"\bspam|\bjunk|unsolicited|white ?list|approved senders|unknown senders", re.I)
_SUBJECT_RE = lazy.regex(
    r"(?:please )?(?:confirm|verify) (?:your|this) (?:e-?mail|message|mail|address)"
    r"|(?:e-?mail|sender|message) verification (?:required|request|needed)"
    r"|(?:your )?(?:message|e-?mail) (?:is )?(?:awaiting|pending|held for) (?:your )?(?:verification|confirmation|approval)"
    r"|\[(?:tmda|boxtrapper)\]|verification required",
    re.I,
)


#: Literal words one of which every challenge's subject or opening holds: checked first,
#: as plain substrings, so that the patterns run only on the few messages that have one.
_KEYS = ("challenge", "arrest", "boxbe", "bluebottle", "shield", "choicemail", "qconfirm", "tmda", "boxtrapper",
         "blocker", "sender verification", "are human", "are a human", "are a real", "are a person", "are person",
         "are not a", "white list", "whitelist", "approved senders", "allowed senders", "safe senders")
#: The same for a subject that asks to confirm or verify the message.
_SUBJECT_KEYS = ("confirm", "verif", "tmda", "boxtrapper", "awaiting", "pending", "held for")


def parse(view: View) -> list[Finding] | None:
    """``challenge`` findings when the message is a challenge request; else ``None``."""
    head = view.text[:OPENING]
    lower = f"{view.subject_lower}\n{head.lower()}"
    if not any(key in lower for key in _KEYS) and not any(key in view.subject_lower for key in _SUBJECT_KEYS):
        return None
    opening = original.notification(head)
    mechanism = _MECHANISM_RE.search(view.subject) or _MECHANISM_RE.search(opening)
    if mechanism and _REQUEST_RE.search(opening):
        return _findings(view, _sentence(opening, mechanism.group()))
    if _SUBJECT_RE.search(view.subject) and _REQUEST_RE.search(opening) and _PURPOSE_RE.search(opening):
        return _findings(view, _sentence(opening, ""))
    return None


def _findings(view: View, diagnostic: str) -> list[Finding]:
    """One finding per recipient a delivery-status part names, else one for the address
    the challenge comes from (challenge systems write from the protected address)."""
    from bouncefilter.classify import dsn

    found = dsn.parse(view) if view.parts_of("message/delivery-status") else None
    recipients = [finding.recipient for finding in found or () if finding.recipient]
    if not recipients:
        sender = find_addresses(view.sender)
        recipients = sender[:1] or [""]
    return [Finding(recipient=address, kind="challenge", diagnostic=diagnostic) for address in recipients]


def _sentence(text: str, cue: str) -> str:
    """The line of ``text`` holding ``cue`` (the first line when none), for the record."""
    index = text.lower().find(cue.lower()) if cue else 0
    start = text.rfind("\n", 0, max(index, 0)) + 1
    end = text.find("\n", max(index, 0))
    return " ".join(text[start : end if end >= 0 else len(text)].split())[:300]
