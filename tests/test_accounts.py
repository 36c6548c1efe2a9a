"""Which account an outbound message belongs to: SASL login, then sender, then domain."""

from __future__ import annotations

import pytest

from bouncefilter.config import Account
from bouncefilter.core import accounts

SHOP = Account(name="shop", sasl_users=("shop-mailer",), senders=("orders@shop.example.com",))
CORP = Account(name="corp", domains=("example.com", "shop.example.com"))
NEWS = Account(name="news", senders=("news@example.com",), domains=("news.example.org",), tracking=False)
ALL = (SHOP, CORP, NEWS)


@pytest.mark.parametrize(
    ("login", "sender", "expected"),
    [
        ("", "<orders@shop.example.com>", SHOP),
        ("", "Orders@Shop.Example.COM", SHOP),  # addresses compared without case
        ("", "<other@shop.example.com>", CORP),  # the domain, when no sender is listed
        ("", "<news@example.com>", NEWS),  # an exact sender beats an earlier account's domain
        ("", "<someone@news.example.org>", NEWS),
        ("", "<someone@NEWS.example.org.>", NEWS),  # a trailing dot is no different domain
        ("shop-mailer", "<news@example.com>", SHOP),  # the login beats sender and domain
        ("shop-mailer", "<>", SHOP),  # a login alone is enough
        ("Shop-Mailer", "<nobody@example.net>", None),  # logins are compared exactly
        ("", "<nobody@example.net>", None),
        ("", "<>", None),
        ("", "", None),
        ("", "<no-domain>", None),
        ("", "<@example.com>", None),
        ("", "<someone@sub.example.com>", None),  # a subdomain is another domain
    ],
)
def test_match(login, sender, expected):
    assert accounts.match(ALL, login, sender) is expected


def test_the_first_account_wins_within_each_kind_of_evidence():
    first = Account(name="first", domains=("example.com",))
    second = Account(name="second", domains=("example.com",), sasl_users=("x",))
    assert accounts.match((first, second), "", "a@example.com") is first
    assert accounts.match((first, second), "x", "a@example.com") is second


def test_no_accounts_match_nothing():
    assert accounts.match((), "shop-mailer", "orders@shop.example.com") is None
