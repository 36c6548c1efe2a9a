"""The download API and the overview page: a plain WSGI application (PEP 3333).

:func:`make_app` builds it from the settings and a way to open the store; nothing is
kept between requests but those. ``bouncefilter.api.app:application`` is the same,
built on first use from the configuration file that ``$BOUNCEFILTER_CONFIG`` names (see
:func:`bouncefilter.config.locate`), for gunicorn, uWSGI or mod_wsgi.

Routes: ``GET /v1/bounces/{start}/{end}`` (the records, streamed), ``GET
/v1/bounces/{id}/raw``, ``GET /v1/stats/{start}/{end}``, the suppression list (``GET`` and
``POST /v1/suppressions``, ``GET`` and ``DELETE /v1/suppressions/{address}``:
:mod:`bouncefilter.api.suppressions`), ``GET /healthz``, and the overview page ``GET /``
(with the list's search) and ``GET /why?address=`` (one address's story), with ``POST
/login`` and ``POST /logout``. Every answer other
than success is JSON (``{"error": {"status": ..., "message": ...}}``); the page's own
login problems are shown on the page. A token (``?access_token=``, ``Authorization:
Bearer``, or the page's cookie) sees its own account only; an admin token sees all,
and may pick one with ``account=``. The access log names a token by its key id only.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from bouncefilter import store
from bouncefilter.api import entries, http, page, query, stats, suppression_page, suppressions, tables, tokens
from bouncefilter.api.http import HttpError, Request, Response
from bouncefilter.config import Settings
from bouncefilter.core import window
from bouncefilter.core.window import iso

log = logging.getLogger(__name__)

#: The overview page's cookie, holding the token (HttpOnly: no script can read it).
COOKIE = "bouncefilter_token"
_CHALLENGE = 'Bearer realm="bouncefilter"'
#: Parameters each endpoint takes; any other is a 400 (a misspelt filter must not
#: silently widen what is returned).
_BOUNCE_PARAMETERS = frozenset(
    {"access_token", "account", "format", "limit", "cursor", "recipient", "domain", "reason", "kind", "hard"})
_STATS_PARAMETERS = frozenset({"access_token", "account"})
_RAW_PARAMETERS = frozenset({"access_token", "format"})
_PAGE_PARAMETERS = frozenset({"access_token", "account", "start", "end", "search"})
_WHY_PARAMETERS = frozenset({"access_token", "account", "address"})
#: The overview's period when none is chosen, in days up to and including today.
DEFAULT_DAYS = window.DEFAULT_DAYS
_HTML_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy",
     "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
]

Connect = Callable[[], store.Connection]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def make_app(settings: Settings, connect: Connect | None = None, clock: Callable[[], float] = time.time) -> WsgiApp:
    """The WSGI application for ``settings``. ``connect`` opens the store for one
    request (default: the configured database, which must exist); ``clock`` gives
    the time in epoch seconds (the overview's default period ends today)."""
    return Api(settings, connect or _connector(settings), clock)


def _connector(settings: Settings) -> Connect:
    """Opens the configured database for one request; ``StoreError`` if it does not exist."""

    def connect() -> store.Connection:
        if not os.path.exists(settings.database):  # never create it from here
            raise store.StoreError(f"no database at {settings.database}")
        return store.connect(settings.database, settings.database_busy_timeout_ms)

    return connect


def __getattr__(name: str) -> Any:
    """``application``: built on first use (PEP 562), so importing this module reads no
    configuration."""
    if name == "application":
        return _application()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _application() -> WsgiApp:
    from bouncefilter import config, logs

    settings = config.load(config.locate())
    logs.configure(settings.logging, "bouncefilter/api")
    return make_app(settings)


class Api:
    """The application: routes a request, opens the store for it, answers."""

    def __init__(self, settings: Settings, connect: Connect, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._connect = connect
        self._clock = clock
        self._routes: tuple[tuple[re.Pattern[str], dict[str, Callable[..., Response]]], ...] = (
            (re.compile(r"/healthz"), {"GET": self.healthz}),
            (re.compile(r"/v1/bounces/(?P<id>[0-9]{1,18})/raw"), {"GET": self.raw}),
            (re.compile(r"/v1/bounces/(?P<start>[^/]+)/(?P<end>[^/]+)"), {"GET": self.bounces}),
            (re.compile(r"/v1/stats/(?P<start>[^/]+)/(?P<end>[^/]+)"), {"GET": self.stats}),
            (re.compile(r"/v1/suppressions"), {"GET": self.suppression_list, "POST": self.suppression_add}),
            (re.compile(r"/v1/suppressions/(?P<address>.+)"),
             {"GET": self.suppression_explain, "DELETE": self.suppression_lift}),
            (re.compile(r"/"), {"GET": self.overview}),
            (re.compile(r"/why"), {"GET": self.why}),
            (re.compile(r"/login"), {"POST": self.login}),
            (re.compile(r"/logout"), {"POST": self.logout}),
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        conn = None
        request = None
        try:
            request = http.parse(environ)
            handler, params = self._route(request)
            conn = self._open()
            response = handler(request, params, conn)
        except HttpError as error:
            response = http.error_response(error)
        except (store.DatabaseError, store.StoreError) as exc:
            log.error("database %s: %s", self.settings.database, exc)
            response = http.error_response(HttpError(503, "the database cannot be used now; try again later"))
        if request is not None and request.method == "HEAD":
            _close(response.body)
            response.body = ()
        _access_log(environ, response.status)
        start_response(response.status_line(), response.headers)
        return _Body(response.body, conn)

    def _route(self, request: Request) -> tuple[Callable[..., Response], dict[str, str]]:
        """The handler for the request's path and method, with the path's parts; 404 or 405."""
        for pattern, methods in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            method = "GET" if request.method == "HEAD" else request.method
            if method not in methods:
                allowed = ", ".join(sorted({*methods, *(("HEAD",) if "GET" in methods else ())}))
                raise HttpError(405, f"{request.method} is not allowed here", [("Allow", allowed)])
            return methods[method], match.groupdict()
        raise HttpError(404, f"no such endpoint: {request.path}")

    def _open(self) -> store.Connection:
        """A connection to a store at the current schema (else 503, the connection closed)."""
        conn = self._connect()
        current = store.version(conn)
        if current != store.SCHEMA_VERSION:
            conn.close()
            raise store.StoreError(f"schema {current}, this bouncefilter needs {store.SCHEMA_VERSION}"
                                   " (bouncefilter db migrate)")
        return conn

    # -- the API --------------------------------------------------------------------------

    def healthz(self, request: Request, params: Mapping[str, str], conn: store.Connection) -> Response:
        """200 when the store answers at the current schema (else 503, from ``_open``)."""
        store.answers(conn)
        return http.json_response(200, {"status": "ok", "schema": store.SCHEMA_VERSION})

    def bounces(self, request: Request, params: Mapping[str, str], conn: store.Connection) -> Response:
        """The records in the window, oldest first, streamed as JSON, JSON lines or CSV."""
        token = _authenticate(conn, request)
        _check_parameters(request, _BOUNCE_PARAMETERS)
        since, until = query.window(params["start"], params["end"], self.settings.api.max_window_days)
        form = request.query.get("format", "json")
        if form not in _FORMATS:
            raise HttpError(400, f"format: expected one of {', '.join(_FORMATS)}, got {form!r}")
        selected = store.BounceQuery(since, until, _scope(token, request, self.settings))._replace(**query.filters(request.query))
        if "cursor" in request.query:
            selected = selected._replace(start_at=query.position(request.query["cursor"]))
        limit = query.limit(request.query)
        content_type, write = _FORMATS[form]
        headers = [("Content-Type", content_type), ("Cache-Control", "no-store")]
        if limit is not None:
            position = store.position(conn, selected, limit)
            headers += http.next_page(request, None if position is None else query.cursor(position))
        return Response(200, headers, write(conn, selected, limit))

    def raw(self, request: Request, params: Mapping[str, str], conn: store.Connection) -> Response:
        """The stored original bounce: ``message/rfc822``, or ``text/plain`` with ``format=text``."""
        token = _authenticate(conn, request)
        _check_parameters(request, _RAW_PARAMETERS)
        form = request.query.get("format", "rfc822")
        if form not in ("rfc822", "text"):
            raise HttpError(400, f"format: expected rfc822 or text, got {form!r}")
        bounce_id = int(params["id"])
        found = store.bounce_source(conn, bounce_id)
        if found is None or (token.account is not None and found[0] != token.account):
            raise HttpError(404, f"no bounce record {bounce_id}")
        data = None if found[1] is None else store.raw_message(conn, found[1])
        if data is None:
            raise HttpError(404, f"the raw message of bounce record {bounce_id} is no longer kept (retention.raw_days)")
        if form == "text":
            data = data.decode("utf-8", "replace").encode("utf-8")
            kind = "text/plain; charset=utf-8"
        else:
            kind = "message/rfc822"
        return Response(200, [("Content-Type", kind), ("Content-Length", str(len(data))),
                              ("Content-Disposition", f'inline; filename="bounce-{bounce_id}.eml"'),
                              ("Cache-Control", "no-store")], [data])

    def stats(self, request: Request, params: Mapping[str, str], conn: store.Connection) -> Response:
        """Counts per day, outcome, reason and recipient domain, and sent totals, per account."""
        token = _authenticate(conn, request)
        _check_parameters(request, _STATS_PARAMETERS)
        since, until = query.window(params["start"], params["end"], self.settings.api.max_window_days)
        found = stats.gather(conn, since, until, _scope(token, request, self.settings), self._names())
        data = {"start": iso(since), "end": iso(until), "accounts": [item.to_json() for item in found]}
        return http.json_response(200, data, [("Cache-Control", "no-store")])

    # -- the suppression list ---------------------------------------------------------------

    def suppression_list(self, request: Request, params: Mapping[str, str], conn: store.Connection) -> Response:
        """``GET /v1/suppressions``: the listings the token sees (:func:`suppressions.listing`)."""
        token = _authenticate(conn, request)
        _check_parameters(request, suppressions.LIST_PARAMETERS)
        return suppressions.listing(conn, request, _scope(token, request, self.settings), self._clock())

    def suppression_explain(self, request: Request, params: Mapping[str, str], conn: store.Connection) -> Response:
        """``GET /v1/suppressions/{address}``: the address's story in the token's scope."""
        token = _authenticate(conn, request)
        _check_parameters(request, suppressions.ONE_PARAMETERS)
        return suppressions.explain(conn, _scope(token, request, self.settings), params["address"], self._clock())

    def suppression_lift(self, request: Request, params: Mapping[str, str], conn: store.Connection) -> Response:
        """``DELETE /v1/suppressions/{address}``: lift it off one account's list."""
        token = _authenticate(conn, request)
        _check_parameters(request, suppressions.ONE_PARAMETERS)
        account = self._owner(token, request)
        return suppressions.lift(conn, account, params["address"], _actor(token), token.account is None,
                                 self._clock(), self.settings.suppression_targets(account))

    def suppression_add(self, request: Request, params: Mapping[str, str], conn: store.Connection) -> Response:
        """``POST /v1/suppressions``: list one address, or import many, on one account's list."""
        token = _authenticate(conn, request)
        _check_parameters(request, suppressions.ONE_PARAMETERS)
        account = self._owner(token, request)
        return suppressions.add(conn, request, account, _actor(token), self._clock(),
                                self.settings.suppression_targets(account))

    def _owner(self, token: store.ApiToken, request: Request) -> str:
        """The one account a change is made to: the token's own, or the one an admin token
        names with ``account=`` (400 if it names none; 403 for another account's)."""
        scope = _scope(token, request, self.settings)
        if scope is None:
            raise HttpError(400, "account: an admin token must name the account to change (account=NAME)")
        return scope

    # -- the overview page ------------------------------------------------------------------

    def overview(self, request: Request, params: Mapping[str, str], conn: store.Connection) -> Response:
        """The page for the token in the cookie (or the header); the login form without one.
        A token in the URL is checked, moved into the cookie, and taken out of the URL."""
        _check_parameters(request, _PAGE_PARAMETERS)
        token = self._page_token(request, conn)
        if isinstance(token, Response):
            return token
        try:
            since, until = self._period(request.query)
            problem = ""
        except HttpError as error:  # shown on the page, with the default period
            since, until = self._period({})
            problem = error.message
        scope = _scope(token, request, self.settings)
        found = stats.gather(conn, since, until, scope, self._names())
        choices = None if token.account is not None else self._names()
        listed = self._listed(conn, request, scope, token.account is None)
        text = page.overview(found, since, until, choices, request.query.get("account", ""), problem, listed)
        return _html(400 if problem else 200, text)

    def why(self, request: Request, params: Mapping[str, str], conn: store.Connection) -> Response:
        """"Why is this address bouncing?": one address's story, on a page of its own."""
        _check_parameters(request, _WHY_PARAMETERS)
        token = self._page_token(request, conn)
        if isinstance(token, Response):
            return token
        text, account = request.query.get("address", "").strip(), request.query.get("account", "")
        if not text:
            return _html(200, suppression_page.why("", None, "Type an address to see its story.", account))
        try:
            told = suppressions.story(conn, _scope(token, request, self.settings), entries.address(text),
                                      self._clock())
        except HttpError as error:
            return _html(error.status, suppression_page.why(text, None, error.message, account))
        return _html(200, suppression_page.why(text, told, account=account))

    def _page_token(self, request: Request, conn: store.Connection) -> store.ApiToken | Response:
        """The page's token (cookie or header), or the answer instead of the page: the
        login form, or the redirect that moves a token in the URL into the cookie."""
        if "access_token" in request.query:
            if tokens.verify(conn, request.query["access_token"]) is None:
                return _html(401, page.login("That token is not valid (or was revoked)."))
            rest = {name: value for name, value in request.query.items() if name != "access_token"}
            return http.redirect(http.url(request.path, rest), [self._cookie(request, request.query["access_token"])])
        text = _presented(request)
        if not text:
            return _html(200, page.login())
        token = tokens.verify(conn, text)
        if token is None:
            return _html(401, page.login("That token is not valid (or was revoked)."),
                         [self._cookie(request, "")])
        return token

    def _listed(self, conn: store.Connection, request: Request, scope: str | None, admin: bool) -> str:
        """The overview's suppression section: the listings of ``scope`` active now whose
        address holds the ``search`` parameter, the first
        :data:`~bouncefilter.api.suppression_page.SHOWN` of them."""
        now, search = self._clock(), request.query.get("search", "").strip()
        selected = store.suppressions.ListQuery(now, scope, search=search)
        found = [item for _, item in store.suppressions.listings(conn, selected, suppression_page.SHOWN + 1)]
        kept = {name: request.query.get(name, "") for name in ("start", "end", "account")}
        return suppression_page.section(found, search, kept, now, admin)

    def login(self, request: Request, params: Mapping[str, str], conn: store.Connection) -> Response:
        """The login form's answer: the cookie and back to the page, or the form again."""
        text = request.form().get("token", "").strip()
        if tokens.verify(conn, text) is None:
            return _html(401, page.login("That token is not valid (or was revoked)."))
        return http.redirect("/", [self._cookie(request, text)])

    def logout(self, request: Request, params: Mapping[str, str], conn: store.Connection) -> Response:
        """Forget the cookie and go back to the login form."""
        return http.redirect("/", [self._cookie(request, "")])

    def _period(self, params: Mapping[str, str]) -> tuple[float, float]:
        """The page's window: ``start``/``end`` (``end`` exclusive), by default the last
        :data:`DEFAULT_DAYS` days up to and including today (UTC), never before
        :data:`~bouncefilter.api.query.EARLIEST`; 400 as for the API."""
        end = params.get("end") or query.day(window.last_days(self._clock(), DEFAULT_DAYS)[1])
        start = params.get("start") or query.day(max(query.moment(end, "end") - DEFAULT_DAYS * 86400, query.EARLIEST))
        return query.window(start, end, self.settings.api.max_window_days)

    def _names(self) -> list[str]:
        return [account.name for account in self.settings.accounts]

    @staticmethod
    def _cookie(request: Request, token: str) -> tuple[str, str]:
        """The ``Set-Cookie`` header that keeps ``token`` (or forgets it, when empty)."""
        value = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
        if not token:
            value += "; Max-Age=0"
        if request.secure():
            value += "; Secure"
        return "Set-Cookie", value


# -- authentication ---------------------------------------------------------------------------


def _presented(request: Request) -> str | None:
    """The token the request carries: ``Authorization: Bearer``, ``?access_token=``, or
    the overview page's cookie, in that order; 401 for another kind of Authorization."""
    header = request.header("Authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise HttpError(401, "only Bearer tokens are accepted", [("WWW-Authenticate", _CHALLENGE)])
        return value.strip()
    if "access_token" in request.query:
        return request.query["access_token"]
    return request.cookie(COOKIE)


def _authenticate(conn: store.Connection, request: Request) -> store.ApiToken:
    """The request's valid token; 401 with ``WWW-Authenticate`` when it has none."""
    text = _presented(request)
    if not text:
        raise HttpError(401, "a token is required: ?access_token=TOKEN or Authorization: Bearer TOKEN",
                        [("WWW-Authenticate", _CHALLENGE)])
    token = tokens.verify(conn, text)
    if token is None:
        raise HttpError(401, "the token is not valid (or was revoked)",
                        [("WWW-Authenticate", _CHALLENGE + ', error="invalid_token"')])
    return token


def _actor(token: store.ApiToken) -> str:
    """Who a change made with ``token`` is written down as: ``api:KEY_ID``."""
    return f"api:{token.key_id}"


def _scope(token: store.ApiToken, request: Request, settings: Settings) -> str | None:
    """The account the request reads: the token's own, or for an admin token the
    ``account`` parameter (``None``: every account). 403 if an account's token asks
    for another account; 400 naming the accounts if the parameter names none."""
    wanted = request.query.get("account") or None
    if token.account is None:
        if wanted is None:
            return None
        try:
            return settings.named_account(wanted).name
        except LookupError as error:
            raise HttpError(400, str(error.args[0])) from None
    if wanted is not None and wanted != token.account:
        raise HttpError(403, "this token sees its own account only")
    return token.account


def _check_parameters(request: Request, allowed: frozenset[str]) -> None:
    """400 naming the first query parameter that is not ``allowed``."""
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise HttpError(400, f"unknown parameter {unknown[0]!r} (expected {', '.join(sorted(allowed))})")


# -- the records' formats -------------------------------------------------------------------


def _json(conn: store.Connection, selected: store.BounceQuery, limit: int | None) -> Iterator[bytes]:
    """The records as one JSON array, one record a line (the query runs before the headers go)."""
    return http.batched(store.export_json(conn, selected, limit), "[\n", ",\n", "\n]\n")


def _json_lines(conn: store.Connection, selected: store.BounceQuery, limit: int | None) -> Iterator[bytes]:
    """The records as JSON lines; nothing at all for no records."""
    return http.batched(store.export_json(conn, selected, limit), "", "\n", "\n", empty="")


def _csv(conn: store.Connection, selected: store.BounceQuery, limit: int | None) -> Iterator[bytes]:
    """The records as CSV with a header row, ``hard`` and ``truncated`` as ``true``/``false``."""
    rows = store.export_rows(conn, selected, limit)  # runs the query now: errors before the headers
    return _csv_chunks(rows)


def _csv_chunks(rows: Iterator[tuple[object, ...]]) -> Iterator[bytes]:
    """The records' CSV (:func:`bouncefilter.api.tables.csv_chunks`)."""
    return tables.csv_chunks([name for name, _ in store.EXPORT_FIELDS], rows, store.BOOLEAN_COLUMNS)


_FORMATS: dict[str, tuple[str, Callable[[store.Connection, store.BounceQuery, int | None], Iterator[bytes]]]] = {
    "json": ("application/json", _json),
    "jsonl": ("application/x-ndjson", _json_lines),
    "csv": ("text/csv; charset=utf-8", _csv),
}


# -- the rest ---------------------------------------------------------------------------------


class _Body:
    """The response body as the server reads it; closing it closes the request's store
    connection. A database error half-way ends the body early (the status is sent)."""

    def __init__(self, body: Iterable[bytes], conn: store.Connection | None) -> None:
        self._body = body
        self._conn = conn

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except store.DatabaseError as exc:
            log.error("response cut short: %s", exc)

    def close(self) -> None:
        """Called by the server when the response is over (or the client went away)."""
        _close(self._body)
        if self._conn is not None:
            self._conn.close()


def _close(body: Iterable[bytes]) -> None:
    """Close ``body`` if it can be closed (a generator, a cursor's reader)."""
    close = getattr(body, "close", None)
    if close is not None:
        close()


def _html(status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """An HTML page, with headers that keep it from being cached, framed or scripted."""
    body = text.encode("utf-8")
    return Response(status, [*_HTML_HEADERS, ("Content-Length", str(len(body))), *headers], [body])


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")


def redact(query_string: str) -> str:
    """The query string decoded (``+``, ``%XX``, octets read as UTF-8), with the value of
    ``access_token`` replaced by ``REDACTED`` however its name was escaped."""
    pieces = []
    for piece in query_string.split("&"):
        name, equals, value = piece.partition("=")
        name = _decoded(name)
        pieces.append(name + equals + ("REDACTED" if name == "access_token" else _decoded(value)))
    return "&".join(pieces)


def _decoded(text: str) -> str:
    """``text`` from a query string with ``+`` and ``%XX`` undone, read as UTF-8."""
    return unquote_to_bytes(text.replace("+", " ").encode("latin-1", "replace")).decode("utf-8", "replace")


def _printable(text: str) -> str:
    """``text`` with each control character (line breaks, NUL, escape...) and the
    backslash written as an escape, ``\\x0a``, ``\\u2028``, ``\\\\``: a request can neither
    add a line to the log nor pass for one."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    """The escape of the one character ``match`` holds."""
    code = ord(match.group())
    return "\\\\" if code == 0x5C else f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _access_log(environ: Mapping[str, Any], status: int) -> None:
    """One line per request, its path and query decoded and then :func:`_printable`; a
    token in the URL is never written (:func:`redact`, :func:`bouncefilter.api.tokens.redact`)."""
    query_string = redact(str(environ.get("QUERY_STRING", "")))
    target = tokens.redact(http.path(environ) + (f"?{query_string}" if query_string else ""))
    log.info("%s %s %s %d", _printable(str(environ.get("REMOTE_ADDR", "-"))),
             _printable(str(environ.get("REQUEST_METHOD", "-"))), _printable(target), status)
