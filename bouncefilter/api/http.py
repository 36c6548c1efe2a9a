"""The bits of HTTP the API needs on top of WSGI (PEP 3333): a parsed request, a
response whose body may stream, and errors that become JSON answers.

Nothing here knows about bounces; :mod:`bouncefilter.api.app` routes and answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

#: The most a form body may hold, in octets (a login form is a few dozen).
MAX_FORM_BYTES = 16 * 1024
JSON_TYPE = "application/json"


class HttpError(Exception):
    """An answer other than success: ``status``, a message for the client, and headers
    (``WWW-Authenticate``, ``Allow``) the status requires."""

    def __init__(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = list(headers)


@dataclass
class Response:
    """What the application answers: a status, headers and a body (any iterable of
    bytes, read as the server sends it, so that it may stream)."""

    status: int
    headers: list[tuple[str, str]]
    body: Iterable[bytes] = ()

    def __post_init__(self) -> None:
        """Every answer carries ``X-Content-Type-Options: nosniff``: a browser takes its
        content type as given (a CSV of remote text is never run as a page or script)."""
        if not any(name.lower() == "x-content-type-options" for name, _ in self.headers):
            self.headers = [*self.headers, ("X-Content-Type-Options", "nosniff")]

    def status_line(self) -> str:
        """``200 OK`` and the like."""
        return f"{self.status} {HTTPStatus(self.status).phrase}"


@dataclass
class Request:
    """One request as the application sees it. ``query`` holds each parameter once (a
    parameter given twice is a 400, raised by :func:`parse`)."""

    method: str
    path: str
    query: dict[str, str]
    environ: Mapping[str, Any] = field(repr=False)

    def header(self, name: str) -> str:
        """The request header ``name`` (empty if absent)."""
        return str(self.environ.get("HTTP_" + name.upper().replace("-", "_"), ""))

    def cookie(self, name: str) -> str | None:
        """The value of the cookie ``name``, if the request carries it."""
        try:
            morsel = SimpleCookie(self.header("Cookie")).get(name)
        except CookieError:
            return None
        return morsel.value if morsel else None

    def secure(self) -> bool:
        """Whether the client reached us over HTTPS (as the WSGI server says)."""
        return self.environ.get("wsgi.url_scheme") == "https"

    def content_type(self) -> str:
        """The body's media type in lower case, without its parameters (``""`` if none given)."""
        return str(self.environ.get("CONTENT_TYPE", "")).partition(";")[0].strip().lower()

    def form(self) -> dict[str, str]:
        """The fields of an ``application/x-www-form-urlencoded`` body (400 otherwise)."""
        if self.content_type() != "application/x-www-form-urlencoded":
            raise HttpError(400, "expected a form (application/x-www-form-urlencoded)")
        body = self.body(MAX_FORM_BYTES, required=False)
        return _single(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))

    def body(self, limit: int, required: bool = True) -> bytes:
        """The request's body, ``Content-Length`` octets of it: 413 beyond ``limit``, 400
        for a length that is not a number, 411 for none when one is ``required`` (else
        an empty body)."""
        text = str(self.environ.get("CONTENT_LENGTH") or "").strip()
        if not text:
            if required:
                raise HttpError(411, "a body needs a Content-Length")
            return b""
        if not text.isascii() or not text.isdigit() or len(text) > 18:
            raise HttpError(400, "bad Content-Length")
        length = int(text)
        if length > limit:
            raise HttpError(413, f"the body may hold at most {limit} octets: send it in parts")
        return bytes(self.environ["wsgi.input"].read(length)) if length else b""


def parse(environ: Mapping[str, Any]) -> Request:
    """The request in a WSGI ``environ``; :class:`HttpError` 400 for a parameter given twice."""
    query = _single(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
    return Request(str(environ.get("REQUEST_METHOD", "GET")).upper(), path(environ), query, environ)


def path(environ: Mapping[str, Any]) -> str:
    """The request's path (``PATH_INFO``, ``/`` when empty) as the client wrote it in UTF-8."""
    # PEP 3333 hands PATH_INFO over as bytes decoded as latin-1: give back the UTF-8.
    return str(environ.get("PATH_INFO") or "/").encode("latin-1", "replace").decode("utf-8", "replace")


def _single(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``pairs`` as a dict; 400 for a name given twice."""
    found: dict[str, str] = {}
    for name, value in pairs:
        if name in found:
            raise HttpError(400, f"parameter {name!r} given more than once")
        found[name] = value
    return found


def json_response(status: int, data: object, headers: Sequence[tuple[str, str]] = ()) -> Response:
    """``data`` as a JSON body."""
    body = (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    return Response(status, [("Content-Type", JSON_TYPE), ("Content-Length", str(len(body))), *headers], [body])


def error_response(error: HttpError) -> Response:
    """The JSON answer for an error: ``{"error": {"status": 400, "message": "..."}}``."""
    data = {"error": {"status": error.status, "message": error.message}}
    return json_response(error.status, data, [*error.headers, ("Cache-Control", "no-store")])


def redirect(location: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
    """A 303 See Other to ``location``."""
    return Response(303, [("Location", location), ("Content-Length", "0"), *headers])


def next_page(request: Request, cursor: str | None) -> list[tuple[str, str]]:
    """The headers that lead to the page at ``cursor`` (none after the last page:
    ``None``): ``X-Next-Cursor`` and ``Link: <...>; rel="next"``. The link keeps every
    parameter but the cursor, the ``access_token`` too when the client sent it in the
    query (its script pages by following the link); a token sent in the
    ``Authorization`` header stays out of it."""
    if cursor is None:
        return []
    rest = {name: value for name, value in request.query.items() if name != "cursor"}
    link = url(request.path, {**rest, "cursor": cursor})
    return [("X-Next-Cursor", cursor), ("Link", f'<{link}>; rel="next"')]


def url(path: str, query: Mapping[str, str]) -> str:
    """``path`` with ``query`` (leaving out empty values)."""
    kept = {name: value for name, value in query.items() if value}
    return f"{path}?{urlencode(kept)}" if kept else path


def batched(pieces: Iterable[str], opening: str, separator: str, closing: str, size: int = 256,
            empty: str | None = None) -> Iterator[bytes]:
    """``opening + separator.join(pieces) + closing`` as UTF-8 (``closing`` replaced by
    ``empty`` when that is given and there are no pieces), sent in chunks of ``size``
    pieces: one write per piece would cost a system call each. The opening goes out at
    once, so the client's first byte does not wait for a batch."""
    yield opening.encode("utf-8")
    batch: list[str] = []
    lead = ""
    for piece in pieces:
        batch.append(piece)
        if len(batch) >= size:
            yield (lead + separator.join(batch)).encode("utf-8")
            batch.clear()
            lead = separator
    if not (batch or lead) and empty is not None:
        closing = empty
    yield ((lead + separator.join(batch)) if batch else "").encode("utf-8") + closing.encode("utf-8")
