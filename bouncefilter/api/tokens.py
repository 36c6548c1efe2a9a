"""API tokens: made here, stored only as SHA-256 hashes (:mod:`bouncefilter.store`).

A token reads ``bf_KEYID_SECRET``: ``KEYID`` (8 hex digits) is its public name, by which
it is looked up, listed and revoked; ``SECRET`` (43 URL-safe characters, 256 bits) is
what proves it. Only the SHA-256 of the whole token is kept, and a presented token's
hash is compared with the stored one in constant time. Every character is URL-safe, so
a token goes into ``?access_token=`` as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from bouncefilter import store

_TOKEN = re.compile(r"bf_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")
#: Key id attempts before giving up (two tokens sharing 32 random bits is rare).
_ATTEMPTS = 5


def digest(token: str) -> str:
    """The SHA-256 (hex) under which ``token`` is stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def key_id(token: str) -> str | None:
    """The public key id of a well-formed token, or ``None`` for anything else."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def redact(text: str) -> str:
    """``text`` with every token in it cut down to its key id: ``bf_KEYID_REDACTED``."""
    return _TOKEN.sub(r"bf_\1_REDACTED", text)


def create(conn: store.Connection, account: str | None, now: float, note: str = "") -> str:
    """Make, store and return a new token of ``account`` (``None``: an admin token)."""
    for _ in range(_ATTEMPTS):
        token = f"bf_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"
        try:
            store.add_token(conn, store.ApiToken(token[3:11], digest(token), account, now, note=note))
        except store.DuplicateKey:
            continue
        return token
    raise store.StoreError("could not find a free token key id")


def verify(conn: store.Connection, token: str) -> store.ApiToken | None:
    """The stored, unrevoked token that ``token`` is, or ``None``."""
    name = key_id(token)
    found = store.api_token(conn, name) if name else None
    if found is None or found.revoked_at is not None:
        return None
    return found if hmac.compare_digest(found.sha256, digest(token)) else None
