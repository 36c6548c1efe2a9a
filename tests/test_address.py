"""Mail addresses as every part of bouncefilter reads them (bouncefilter.core.address)."""

from __future__ import annotations

import re

import pytest

from bouncefilter.core import address


@pytest.mark.parametrize(("sender", "bare", "domain", "normal"), [
    ("<User@Example.COM>", "User@Example.COM", "example.com", "User@example.com"),
    (" <a@example.org.> ", "a@example.org.", "example.org", "a@example.org"),
    ("<>", "", "", ""),
    ("postmaster", "postmaster", "", "postmaster"),
    ("a@b@example.net", "a@b@example.net", "example.net", "a@b@example.net"),
])
def test_an_envelope_address_bare_its_domain_and_its_normal_form(sender, bare, domain, normal):
    assert address.bare_address(sender) == bare
    assert address.domain_of(bare) == domain
    assert address.normal_address(bare) == normal


@pytest.mark.parametrize(("value", "clean"), [
    ("rfc822; <User@Example.COM>.", "User@example.com"),
    ("RFC822;user@example.com", "user@example.com"),
    ("utf-8; user@example.com", "user@example.com"),
    ('"Jo Doe" <mailto:jo@Example.ORG>', "jo@example.org"),
    ("postmaster@[192.0.2.1]", "postmaster@[192.0.2.1]"),
    ("user@localhost", ""),  # a domain without a dot is no address of the Internet's
    ("no address here", ""),
    ("", ""),
])
def test_a_field_value_is_cleaned_to_its_address(value, clean):
    assert address.clean_address(value) == clean


def test_every_address_in_a_text_once_in_order_in_lower_case():
    text = "To: a@example.com, B@Example.com\nCc: b@example.com <c@example.net>; a@EXAMPLE.com"
    assert address.find_addresses(text) == ["a@example.com", "b@example.com", "c@example.net"]


@pytest.mark.parametrize(("pattern", "text", "found"), [
    (address.DOTTED_ADDRESS, "<user@example.com>:", "user@example.com"),
    (address.DOTTED_ADDRESS, "user@localhost", None),
    (address.ANY_ADDRESS, "用户@例子.广告", "用户@例子.广告"),
    (address.ADDRESS, "(user@mx-1.example.test)", "user@mx-1.example.test"),
])
def test_the_pattern_pieces_find_what_bounces_write(pattern, text, found):
    match = re.search(pattern, text)
    assert (match.group(0) if match else None) == found
