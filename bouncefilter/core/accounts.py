"""Which account an outbound message belongs to. Pure: no I/O, no configuration loading.

The milter asks :func:`match` with the SASL login (Postfix's ``{auth_authen}``, empty
when the client did not authenticate) and the envelope sender. The most specific
evidence wins: a SASL login first, then the exact sender address, then the sender's
domain; within each, the first account in the configuration. So a login that sends as
another account's domain still counts as the login's account.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from bouncefilter.core.address import bare_address, domain_of


class Matchable(Protocol):
    """What :func:`match` reads of an account (``config.Account`` has it)."""

    @property
    def sasl_users(self) -> tuple[str, ...]: ...

    @property
    def senders(self) -> tuple[str, ...]: ...

    @property
    def domains(self) -> tuple[str, ...]: ...


AccountT = TypeVar("AccountT", bound=Matchable)


def match(accounts: Sequence[AccountT], sasl_user: str, sender: str) -> AccountT | None:
    """The account for a message, or ``None`` when no account claims it.

    ``sasl_user`` is compared exactly (logins may be case-sensitive); ``sender`` (with
    or without angle brackets) and the accounts' senders and domains without regard to
    case. A null sender matches by SASL login only.
    """
    if sasl_user:
        for account in accounts:
            if sasl_user in account.sasl_users:
                return account
    address = bare_address(sender).lower()
    if not address:
        return None
    for account in accounts:
        if address in account.senders:
            return account
    domain = domain_of(address)
    for account in accounts:
        if domain and domain in account.domains:
            return account
    return None
