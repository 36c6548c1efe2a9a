"""Signed VERP addresses: round trips, tampering, case folding, rotation, length."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bouncefilter.core import verp

DOMAIN = "bounces.example.com"
OLD_KEY = b"old signing key, retired in 2026"
NEW_KEY = b"new signing key, used from now on"
TODAY = date(2026, 11, 25)

message_keys = st.binary(min_size=8, max_size=8)
issue_days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
signing_keys = st.binary(min_size=1, max_size=64)
prefixes = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=32)


@given(message_keys, issue_days, signing_keys, prefixes)
def test_an_address_decodes_to_its_message_key_and_date(message_key, issued, key, prefix):
    address = verp.address(prefix, DOMAIN, verp.make_token(message_key, issued, key))
    verdict = verp.decode(address, prefix, DOMAIN, [key], issued, max_age_days=60)
    assert verdict.status == verp.VALID
    assert verdict.message_key == message_key.hex()
    assert verdict.issued == issued


@given(message_keys, issue_days, signing_keys, prefixes)
def test_the_local_part_fits_rfc_5321_and_the_token_is_lower_case(message_key, issued, key, prefix):
    token = verp.make_token(message_key, issued, key)
    address = verp.address(prefix, DOMAIN, token)
    assert len(address.split("@")[0]) <= verp.MAX_LOCAL_PART
    assert len(token) == verp.TOKEN_LENGTH
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyz234567")


@given(message_keys, signing_keys, st.data())
def test_changing_any_one_character_never_verifies(message_key, key, data):
    token = verp.make_token(message_key, TODAY, key)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz234567").filter(lambda c: c != token[position]))
    tampered = token[:position] + replacement + token[position + 1:]
    assert verp.verify(tampered, [key], TODAY, 60).status == verp.FORGED


@given(message_keys, signing_keys)
def test_a_remote_mta_folding_case_does_not_break_the_address(message_key, key):
    address = verp.address("b", DOMAIN, verp.make_token(message_key, TODAY, key))
    assert verp.decode(address.upper(), "b", DOMAIN, [key], TODAY, 60).status == verp.VALID


def test_every_configured_key_verifies_so_keys_can_rotate():
    signed_before = verp.make_token(b"\x01" * 8, TODAY, OLD_KEY)
    signed_after = verp.make_token(b"\x02" * 8, TODAY, NEW_KEY)
    keys = [NEW_KEY, OLD_KEY]  # the first signs; all verify
    assert verp.verify(signed_before, keys, TODAY, 60).valid
    assert verp.verify(signed_after, keys, TODAY, 60).valid
    assert verp.verify(signed_before, [NEW_KEY], TODAY, 60).status == verp.FORGED


def test_a_token_older_than_max_age_is_expired_but_still_names_its_message():
    token = verp.make_token(b"\x03" * 8, TODAY - timedelta(days=61), NEW_KEY)
    verdict = verp.verify(token, [NEW_KEY], TODAY, max_age_days=60)
    assert verdict.status == verp.EXPIRED
    assert verdict.message_key == "03" * 8
    assert verp.verify(token, [NEW_KEY], TODAY - timedelta(days=1), max_age_days=60).valid


@pytest.mark.parametrize(
    "address",
    [
        "someone@example.com",
        "c+aeytemzugu3doocrf3rvtin77fubekq@bounces.example.com",  # another prefix
        "b+aeytemzugu3doocrf3rvtin77fubekq@bounces.example.net",  # another domain
        "",
    ],
)
def test_addresses_that_are_not_ours(address):
    assert verp.decode(address, "b", DOMAIN, [NEW_KEY], TODAY, 60).status == verp.NOT_OURS


@pytest.mark.parametrize("address", [
    "b+aaaa@bounces.example.com",  # too short to be a token
    "b+aeytemzugu3doocrf3rvtin77fube!q@bounces.example.com",  # not base32
    "b+test@bounces.example.com",
])
def test_a_made_up_token_in_our_place_is_forged_as_the_pipe_stores_it(address):
    assert verp.decode(address, "b", DOMAIN, [NEW_KEY], TODAY, 60).status == verp.FORGED


def test_a_prefix_that_would_overflow_the_local_part_is_refused():
    with pytest.raises(verp.VerpError):
        verp.check_prefix("p" * 40)
    with pytest.raises(verp.VerpError):
        verp.check_prefix("b+c")
    verp.check_prefix("bounce")
