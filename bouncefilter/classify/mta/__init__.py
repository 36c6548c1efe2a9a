"""One module per MTA or service that writes bounces without a delivery-status part.

Each module has ``parse(view) -> list[Finding] | None``: ``None`` when the message is not
in its format. :data:`PARSERS` is the order they are tried in: formats with the most
specific signatures first, so that a loose one never claims another's message.
"""

from __future__ import annotations

from collections.abc import Callable

from bouncefilter.classify.mta import (
    activehunter,
    amazonses,
    apachejames,
    biglobe,
    domino,
    dragonfly,
    exchange2003,
    exim,
    ezweb,
    fml,
    gmail,
    gmx,
    googlegroups,
    imailserver,
    kddi,
    mailfoundry,
    mailmarshal,
    mfilter,
    mxlogic,
    notes,
    office365,
    opensmtpd,
    postfix,
    qmail,
    sendmail,
    smail,
    trendmicro,
    verizon,
    x1,
    x3,
    x6,
    yahoo,
    zoho,
)
from bouncefilter.classify.view import View
from bouncefilter.core.record import Finding

PARSERS: tuple[tuple[str, Callable[[View], "list[Finding] | None"]], ...] = (
    # Hosted services and commercial MTAs, told apart by their own headers or senders;
    # before the Unix MTAs, whose wording some of them borrow (MXLogic's is Exim's).
    ("amazonses", amazonses.parse),
    ("googlegroups", googlegroups.parse),
    ("gmail", gmail.parse),
    ("yahoo", yahoo.parse),
    ("zoho", zoho.parse),
    ("mxlogic", mxlogic.parse),
    ("trendmicro", trendmicro.parse),
    ("activehunter", activehunter.parse),
    ("ezweb", ezweb.parse),
    ("kddi", kddi.parse),
    ("office365", office365.parse),
    ("exchange2003", exchange2003.parse),
    ("domino", domino.parse),
    ("notes", notes.parse),
    ("smail", smail.parse),
    ("gmx", gmx.parse),
    ("dragonfly", dragonfly.parse),
    ("exim", exim.parse),
    ("qmail", qmail.parse),
    ("sendmail", sendmail.parse),
    ("opensmtpd", opensmtpd.parse),
    ("postfix", postfix.parse),
    # Small formats, each with a signature of its own.
    ("mfilter", mfilter.parse),
    ("imailserver", imailserver.parse),
    ("mailmarshal", mailmarshal.parse),
    ("mailfoundry", mailfoundry.parse),
    ("biglobe", biglobe.parse),
    ("verizon", verizon.parse),
    ("apachejames", apachejames.parse),
    ("fml", fml.parse),
    ("x1", x1.parse),
    ("x3", x3.parse),
    ("x6", x6.parse),
)
