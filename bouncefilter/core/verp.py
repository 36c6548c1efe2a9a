"""Signed VERP addresses: ``PREFIX+TOKEN@DOMAIN``, where TOKEN names one sent message.

The token is 19 bytes in lower-case base32 (31 characters of ``a-z2-7``, so remote MTAs
that fold case cannot break it)::

    version (1) | message key (8, random) | issue day (2, days since 1970) | MAC (8)

The MAC is HMAC-SHA256 over the first 11 bytes, truncated to 64 bits. The first key
signs; every key verifies (tried in turn, compared in constant time), so keys rotate
without losing bounces in flight. Pure: keys, the random message key and the dates
are arguments.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Sequence
from datetime import date, timedelta
from typing import NamedTuple

VERSION = 1
KEY_BYTES = 8
MAC_BYTES = 8
TOKEN_LENGTH = 31
#: RFC 5321's limit on the local part.
MAX_LOCAL_PART = 64
_EPOCH = date(1970, 1, 1)
_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")

VALID = "valid"
EXPIRED = "expired"
FORGED = "forged"
NOT_OURS = "notours"


class VerpError(ValueError):
    """A VERP setting that cannot work (empty key list, prefix too long, ...)."""


class Verdict(NamedTuple):
    """What decoding said: ``status`` is valid, expired, forged or notours.

    ``message_key`` (hex) and ``issued`` are set for valid and expired tokens only.
    """

    status: str
    token: str = ""
    message_key: str = ""
    issued: date | None = None

    @property
    def valid(self) -> bool:
        return self.status == VALID


def make_token(message_key: bytes, issued: date, key: bytes) -> str:
    """The token for ``message_key`` (8 random bytes) issued on ``issued``, signed by ``key``."""
    if len(message_key) != KEY_BYTES:
        raise VerpError(f"message key must be {KEY_BYTES} bytes")
    if not key:
        raise VerpError("signing key is empty")
    day = (issued - _EPOCH).days
    if not 0 <= day < 1 << 16:
        raise VerpError(f"issue date out of range: {issued}")
    body = bytes([VERSION]) + message_key + day.to_bytes(2, "big")
    return _encode(body + _mac(key, body))


def _encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def address(prefix: str, domain: str, token: str) -> str:
    """``PREFIX+TOKEN@DOMAIN``; raises :class:`VerpError` if the local part would not fit."""
    local = f"{prefix}+{token}"
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        raise VerpError(f"VERP local part is {len(local)} octets, more than {MAX_LOCAL_PART}")
    return f"{local}@{domain.lower()}"


def check_prefix(prefix: str) -> None:
    """Raise :class:`VerpError` unless ``prefix`` is usable in a VERP local part."""
    if not prefix or len(prefix) + 1 + TOKEN_LENGTH > MAX_LOCAL_PART:
        raise VerpError(f"prefix must be 1 to {MAX_LOCAL_PART - 1 - TOKEN_LENGTH} characters")
    if not all(ch.isascii() and (ch.isalnum() or ch in "-_.") for ch in prefix) or "+" in prefix:
        raise VerpError("prefix may hold only letters, digits, '-', '_' and '.'")


def token_of(addr: str, prefix: str, domain: str) -> str:
    """The token in ``addr`` if it is ``PREFIX+TOKEN@DOMAIN`` (any case), else ``""``."""
    local, at, addr_domain = addr.strip().strip("<>").rpartition("@")
    if not at or addr_domain.lower().rstrip(".") != domain.lower():
        return ""
    head, plus, token = local.partition("+")
    if not plus or head.lower() != prefix.lower():
        return ""
    return token.lower()


def verify(token: str, keys: Sequence[bytes], today: date, max_age_days: int) -> Verdict:
    """Check a token's shape, MAC (against every key) and age. A token in our place (our
    prefix and domain, our tracking header) that is not even shaped like one of ours was
    made up: forged, as one whose MAC no key made."""
    token = token.strip().lower()
    if len(token) != TOKEN_LENGTH or not _ALPHABET.issuperset(token):
        return Verdict(FORGED, token)
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except ValueError:
        return Verdict(FORGED, token)
    # The last character carries 3 spare bits: only the canonical spelling is ours.
    if _encode(raw) != token or raw[0] != VERSION:
        return Verdict(FORGED, token)
    body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not _any_key_signed(body, mac, keys):
        return Verdict(FORGED, token)
    issued = _EPOCH + timedelta(days=int.from_bytes(body[-2:], "big"))
    status = EXPIRED if (today - issued).days > max_age_days else VALID
    return Verdict(status, token, body[1 : 1 + KEY_BYTES].hex(), issued)


def decode(addr: str, prefix: str, domain: str, keys: Sequence[bytes], today: date, max_age_days: int) -> Verdict:
    """The verdict on an address: notours unless it is this prefix and domain."""
    token = token_of(addr, prefix, domain)
    if not token:
        return Verdict(NOT_OURS)
    return verify(token, keys, today, max_age_days)


def _mac(key: bytes, body: bytes) -> bytes:
    mac = _keyed(key).copy()
    mac.update(body)
    return mac.digest()[:MAC_BYTES]


@functools.lru_cache(maxsize=32)
def _keyed(key: bytes) -> hmac.HMAC:
    # HMAC with the key already hashed in: a copy per token costs less than keying anew
    # (OpenSSL 3 looks the digest up again for every one-shot HMAC).
    return hmac.new(key, digestmod=hashlib.sha256)


def _any_key_signed(body: bytes, mac: bytes, keys: Sequence[bytes]) -> bool:
    # Every key is tried even after a match, so timing does not reveal which key signed.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(_mac(key, body), mac)
    return matched
