"""``bouncefilter api``: the WSGI application on the standard library's HTTP server,
one thread per request, for trying it out and for tests. Production runs the same
application under gunicorn (``contrib/systemd/bouncefilter-api.service``)."""

from __future__ import annotations

import logging
import socket
import socketserver
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

log = logging.getLogger(__name__)


class _Handler(WSGIRequestHandler):
    """wsgiref's handler without its own access log: it would write the query string,
    token and all; the application logs each request with the token redacted."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Nothing: :mod:`bouncefilter.api.app` logs the request."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """The server's own complaints (a bad request line, a timeout) as warnings."""
        log.warning("%s: %s", self.address_string(), format % args)


class Server(socketserver.ThreadingMixIn, WSGIServer):
    """A threading WSGI server; its request threads do not hold up the process's exit."""

    daemon_threads = True
    block_on_close = False


def make_server(host: str, port: int, app: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]) -> Server:
    """A server bound to ``host:port`` (port 0: any free one; see ``server_address``)
    serving ``app``; ``OSError`` if the address cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server: Server = type("Server", (Server,), {"address_family": family})((host, port), _Handler)
    server.set_app(app)
    return server


