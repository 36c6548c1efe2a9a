"""Mail addresses as bouncefilter reads them: one pattern for every parser, one cleaning,
one normal form.

The pattern pieces are regular-expression text for the parsers to build on (each adds
its own context: angle brackets, a colon after, a line of its own):

- :data:`LOCAL`: a local part as bounces write it, up to 64 characters (RFC 5321
  4.5.3.1.1), without the characters that end an address in running text (space,
  ``<>()[]"',;:`` and ``@``);
- :data:`HOST`: a host name, up to 255 characters (RFC 5321 4.5.3.1.2);
- :data:`DOMAIN`: any domain, internationalised ones (RFC 6531) included;
- :data:`ADDRESS` (``LOCAL@HOST``) and :data:`ANY_ADDRESS` (``LOCAL@DOMAIN``);
  :data:`DOTTED_ADDRESS` and :data:`ANY_DOTTED_ADDRESS` also want a top-level label
  after a dot (``user@example.com``, not ``user@localhost``), as a list of failed
  recipients in plain text has it;
- :data:`FOUND`: what :func:`clean_address` and :func:`find_addresses` look for in a
  header or a DSN field: a host name or an address literal (``[192.0.2.1]``,
  ``[IPv6:2001:db8::1]``) after the ``@``, and a local part that may hold the ``@``
  of a source route's remains (cut at the last one).

:func:`clean_address` turns what a header or a DSN field holds into the address; :func:`normal_address`
is the form two addresses are compared in (the domain is case-insensitive, the local
part is the receiving system's business and kept as it is).
"""

from __future__ import annotations

import re

#: The characters that end an address in running text.
_STOP = r"\s<>()\[\]\"',;:@"
LOCAL = rf"[^{_STOP}]{{1,64}}"
HOST = r"[A-Za-z0-9_.-]{1,255}"
DOMAIN = rf"[^{_STOP}]{{1,255}}"
ADDRESS = f"{LOCAL}@{HOST}"
ANY_ADDRESS = f"{LOCAL}@{DOMAIN}"
DOTTED_ADDRESS = ADDRESS + r"\.[A-Za-z]{2,63}"
ANY_DOTTED_ADDRESS = ANY_ADDRESS + rf"\.[^{_STOP}]{{2,63}}"
FOUND = r"[^\s<>()\[\]\"',;:]{1,64}@[A-Za-z0-9\[\]_.:-]{1,255}"

_FOUND_RE = re.compile(FOUND)


def bare_address(sender: str) -> str:
    """``<User@Example.COM>`` -> ``User@Example.COM``; ``<>`` -> ``""``."""
    return sender.strip().removeprefix("<").removesuffix(">").strip()


def domain_of(address: str) -> str:
    """The lower-case domain of ``address`` without a trailing dot; ``""`` if it has none."""
    local, at, domain = address.rpartition("@")
    return domain.rstrip(".").lower() if at and local else ""


def normal_address(address: str) -> str:
    """``address`` as it is compared: the domain lower-cased and without a trailing dot."""
    local, at, domain = address.rpartition("@")
    return f"{local}@{domain.rstrip('.').lower()}" if at and local else address


def clean_address(value: str) -> str:
    """``rfc822; <User@Example.COM>.`` -> ``User@example.com``; ``""`` if no address."""
    value = value.strip()
    if ";" in value:
        addr_type, _, rest = value.partition(";")
        if "@" not in addr_type:
            value = rest.strip()
    at = value.find("@")
    # A match holds an "@" at most 64 characters after its start: skip what is before.
    match = _FOUND_RE.search(value, max(0, at - 64)) if at >= 0 else None
    if not match:
        return ""
    addr = match.group(0).strip(".:;,'\"`")
    if addr.lower().startswith("mailto:"):
        addr = addr[7:]
    local, _, domain = addr.rpartition("@")
    domain = domain.strip(".").rstrip("]").lstrip("[") if not domain.startswith("[") else domain
    if not local or not domain or "." not in domain and not domain.startswith("["):
        return ""
    return f"{local}@{domain.lower()}"


def find_addresses(text: str) -> list[str]:
    """Every address in ``text``, cleaned and in lower case, in order of appearance, each
    once."""
    seen: dict[str, None] = {}
    for match in _FOUND_RE.finditer(text):
        addr = clean_address(match.group(0))
        if addr and addr.lower() not in seen:
            seen[addr.lower()] = None
    return list(seen)
