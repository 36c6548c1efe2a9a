"""What a ``POST /v1/suppressions`` body asks to list, read by
:mod:`bouncefilter.core.listfile` (the same reader as ``bouncefilter suppression import``)
and answered in HTTP terms.

The body is one JSON object, a JSON array of them, or a CSV with a header row as Mailgun
and SES export it (``address,reason,created_at``), told by its ``Content-Type``. A body
that cannot be read at all, and a lone object that cannot be listed, is a 400 naming what
is wrong; in an import of many, an entry that cannot be listed is refused with its line
or item number and why, and the others go on. An account token lists only ``manual`` or
``import`` (a CSV's other reasons become ``import``, kept in the detail): complaints and
bounces come from the pipe alone.
"""

from __future__ import annotations

from bouncefilter.api.http import HttpError
from bouncefilter.core import listfile

#: The most octets a body may hold (a Mailgun or SES export of about 200,000 addresses).
MAX_BODY_BYTES = 10 * 1024 * 1024
#: The body's media types, and the form each is read as.
KINDS = {"application/json": "json", "text/csv": "csv", "application/csv": "csv"}


def address(text: str, name: str = "address") -> str:
    """``text`` as an address to list; 400 naming ``name`` if it is not one."""
    try:
        return listfile.address(text, name)
    except listfile.Refused as error:
        raise HttpError(400, str(error)) from None


def parse(body: bytes, content_type: str, now: float) -> listfile.Read:
    """The entries of a body of ``content_type``, dates checked against ``now``; 415 for
    another type, 400 for a body that cannot be read or a lone object that cannot be listed."""
    media = content_type.partition(";")[0].strip().lower()
    kind = "json" if media.endswith("+json") else KINDS.get(media)
    if kind is None:
        raise HttpError(415, f"expected a body of application/json or text/csv, got {media or 'no Content-Type'!r}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HttpError(400, f"bad {kind.upper()}: not UTF-8 (octet {error.start})") from None
    try:
        read = listfile.read(text, now, kind, listfile.BY_HAND)
    except listfile.ListFileError as error:
        raise HttpError(400, str(error)) from None
    if read.single and read.refused:
        raise HttpError(400, read.refused[0].why)
    return read
