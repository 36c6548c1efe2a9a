"""The suppression list as the milter holds it in memory, and its answer at RCPT TO: pure.

:class:`SuppressionList` maps an account and an address key (the address lower-cased,
as :func:`bouncefilter.store.suppressions.address_of` gives it) to the :class:`Listing`
that suppresses it; a lookup is two dictionary reads, and a listing whose ``until`` has
passed is not found (it lapses by itself, the clock given). :func:`refusal` is the SMTP
reply that refuses a suppressed recipient. No I/O and no clock here: the list is filled
and kept fresh by :mod:`bouncefilter.milter.refresh`, the time is an argument.

The list is read by the milter's connections while one thread changes it: every change
is one dictionary assignment (atomic under the interpreter lock), and :meth:`replace`
swaps the whole mapping at once, so a lookup sees the list either before or after a
change, never half of one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import NamedTuple

from bouncefilter.core.suppression import COMPLAINT

#: The enhanced status codes of a refusal: the address is bad (RFC 3463, X.1.1); a
#: complaint's recipient asked for no more mail, a matter of policy (X.7.1).
BAD_MAILBOX, NOT_AUTHORIZED = "5.1.1", "5.7.1"


class Listing(NamedTuple):
    """Why and since when (epoch seconds) an address is suppressed, and until when
    (``None``: until lifted); ``reason`` and ``detail`` as the store keeps them."""

    reason: str
    detail: str
    created_at: float | None
    until: float | None

    def lapsed(self, now: float) -> bool:
        """Whether the listing has run out by ``now``."""
        return self.until is not None and self.until <= now


#: One row of :func:`bouncefilter.store.suppressions.active_listings`:
#: (account, address key, reason, detail, created_at, until).
Row = tuple[str, str, str, str, float | None, float | None]


class SuppressionList:
    """The addresses each account's mail is not sent to, by account and address key."""

    def __init__(self, rows: Iterable[Row] = ()) -> None:
        self._accounts: dict[str, dict[str, Listing]] = _grouped(rows)

    def find(self, account: str, key: str, now: float) -> Listing | None:
        """The listing that suppresses ``key`` for ``account`` at ``now``, or ``None``."""
        listed = self._accounts.get(account)
        if listed is None:
            return None
        listing = listed.get(key)
        return None if listing is None or listing.lapsed(now) else listing

    def replace(self, rows: Iterable[Row]) -> None:
        """Hold exactly ``rows`` from now on (read whole first, then swapped in)."""
        self._accounts = _grouped(rows)

    def put(self, account: str, key: str, listing: Listing | None) -> None:
        """List ``key`` for ``account`` as ``listing`` says, or take it off (``None``)."""
        if listing is None:
            listed = self._accounts.get(account)
            if listed is not None:
                listed.pop(key, None)
        else:
            self._accounts.setdefault(account, {})[key] = _shared(listing)

    def lists_any(self, accounts: Iterable[str]) -> bool:
        """Whether any of ``accounts`` has a listing (lapsed ones included until taken off)."""
        return any(self._accounts.get(account) for account in accounts)

    def __len__(self) -> int:
        """How many listings are held (lapsed ones included until they are taken off)."""
        return sum(len(listed) for listed in list(self._accounts.values()))


def _shared(listing: Listing) -> Listing:
    """``listing`` with its texts interned: a million listings share a handful of strings."""
    return listing._replace(reason=sys.intern(listing.reason), detail=sys.intern(listing.detail))


def _grouped(rows: Iterable[Row]) -> dict[str, dict[str, Listing]]:
    accounts: dict[str, dict[str, Listing]] = {}
    for account, key, reason, detail, created_at, until in rows:
        accounts.setdefault(account, {})[key] = _shared(Listing(reason, detail or "", created_at, until))
    return accounts


def refusal(address: str, listing: Listing) -> tuple[str, str, str]:
    """The reply (code, enhanced status, text) that refuses ``address`` at RCPT TO:
    ``550 5.1.1 <x@example.com>: suppressed by bouncefilter since 2026-12-01
    (userunknown); see bouncefilter suppression explain``.

    The date is the listing's ``created_at`` in UTC, the parenthesis its detail if set,
    else its reason. A complaint is refused with 5.7.1 rather than 5.1.1: the mailbox
    works, its owner asked for no more of this mail, so the refusal is policy ("delivery
    not authorized"), not a bad address; every other listing says the mailbox is bad
    (5.1.1), which is what the client should act on. Characters that do not belong in
    one SMTP reply line (controls, CR, LF) become ``?``; ``%`` is doubled, as libmilter
    requires of a reply (Postfix halves them again).
    """
    since = "" if listing.created_at is None else \
        f" since {datetime.fromtimestamp(listing.created_at, timezone.utc).date().isoformat()}"
    why = listing.detail or listing.reason
    status = NOT_AUTHORIZED if listing.reason == COMPLAINT else BAD_MAILBOX
    text = f"<{address}>: suppressed by bouncefilter{since} ({why}); see bouncefilter suppression explain"
    return "550", status, _printable(text).replace("%", "%%")


def _printable(text: str) -> str:
    return "".join(char if char.isprintable() else "?" for char in text)
