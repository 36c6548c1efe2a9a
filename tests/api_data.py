"""A small store for the API tests (two accounts, an admin, a revoked token), the same
with suppression lists on top (:func:`seed_suppressions`: for ``shop`` a hard bounce
counted by the pipe's own path and a complaint, addresses listed and lifted by hand, and
for ``news`` the same dead address listed by hand), and the real application served on
loopback by the standard library's server in a thread."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from pathlib import Path

from bouncefilter import config, store
from bouncefilter.api import app as api
from bouncefilter.api import server as httpd
from bouncefilter.api import tokens
from bouncefilter.core.record import BounceRecord
from bouncefilter.store.suppressions import Setting

#: Midnight UTC of the first day with records.
DAY0 = datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()
CONFIG = """\
database: {database}
logging: {{target: stderr}}
verp: {{domain: bounces.example.com, keys: [0123456789abcdef0123456789abcdef]}}
api: {{max_window_days: 40}}
accounts:
  - {{name: shop, domains: [shop.example.com]}}
  - {{name: news, domains: [news.example.com]}}
"""
#: (account, outcome, kind, recipient, reason, hard, seconds after DAY0)
ROWS = (
    ("shop", "bounce", "bounce", "a1@example.net", "userunknown", True, 10 * 3600),
    ("shop", "bounce", "bounce", "b1@example.org", "mailboxfull", False, 12 * 3600),
    ("news", "bounce", "bounce", "n1@example.net", "userunknown", True, 11 * 3600),
    ("", "forged", "bounce", "x1@example.net", "userunknown", True, 13 * 3600),
    ("news", "complaint", "complaint", "n2@example.org", "feedback", False, 86400 + 8 * 3600),
    ("shop", "complaint", "complaint", "c1@example.net", "feedback", False, 86400 + 9 * 3600),
    ("shop", "autoreply", "autoreply", "d1@example.net", "vacation", False, 86400 + 10 * 3600),
    ("shop", "bounce", "bounce", "e1@Example.COM", "hostunknown", True, 2 * 86400),
)
#: Messages sent per account: (messages, recipients each).
SENT = {"shop": (4, 2), "news": (2, 1)}


@dataclass
class Served:
    """The running application: its base URL, store path, and a token per role."""

    url: str
    database: str
    config_path: str
    tokens: dict[str, str] = field(default_factory=dict)  # shop, news, admin, revoked
    ids: dict[str, int] = field(default_factory=dict)  # recipient -> bounce id
    raws: dict[str, bytes] = field(default_factory=dict)  # recipient -> raw message


def raw_message(recipient: str, outcome: str) -> bytes:
    """A small message standing for the bounce about ``recipient``."""
    message = Message()
    message["From"] = "MAILER-DAEMON@mx.example.net"
    message["Subject"] = f"{outcome} about {recipient}"
    message["Message-ID"] = f"<{outcome}.{recipient}@mx.example.net>"
    message.set_payload(f"The message to {recipient} could not be delivered.\n")
    return message.as_bytes()


def seed(directory: Path) -> Served:
    """Write the configuration and the store (rows, sent messages, tokens) into ``directory``."""
    database = str(directory / "bouncefilter.db")
    config_path = directory / "bouncefilter.yaml"
    config_path.write_text(CONFIG.format(database=database), encoding="utf-8")
    conn = store.connect(database)
    store.migrate(conn)
    served = Served("", database, str(config_path))
    for account, outcome, kind, recipient, reason, hard, offset in ROWS:
        raw = raw_message(recipient, outcome)
        record = BounceRecord(recipient=recipient, kind=kind, reason=reason, hard=hard,
                              status="5.1.1" if hard else "", diagnostic=f"about {recipient}")
        delivery = store.Delivery(raw, DAY0 + offset, rcpt_to=f"b+{recipient}@bounces.example.com")
        (served.ids[recipient],) = store.store_delivery(conn, delivery, [store.Bounce(record, outcome, account)])
        served.raws[recipient] = raw
    for account, (count, recipients) in SENT.items():
        for number in range(count):
            store.record_messages(conn, (store.SentMessage(
                f"{account}{number}", "token", account, DAY0 + 3600 * number,
                recipients=tuple(f"r{n}@example.net" for n in range(recipients))),))
    for role, account in (("shop", "shop"), ("news", "news"), ("admin", None), ("revoked", "shop")):
        served.tokens[role] = tokens.create(conn, account, DAY0)
    store.revoke_token(conn, tokens.key_id(served.tokens["revoked"]) or "", DAY0 + 1)
    conn.close()
    return served


#: The address with a whole story: sent to, bounced hard, listed by the pipe (shop), and
#: listed by hand on news's list too.
GONE = "gone@example.net"
#: shop's complaint (only an admin lifts it).
ANGRY = "angry@example.org"
#: shop's addresses listed by hand, in order, then the one lifted already.
MANUAL = tuple(f"m{n}@example.com" for n in range(1, 6))
LIFTED = "old@example.com"
#: news's own.
NEWS_ONLY = "newsonly@example.org"
#: A diagnostic the remote side wrote, HTML and all.
DIAGNOSTIC = '550 5.1.1 <gone@example.net>: no such user <script>alert("x")</script> & more'


def seed_suppressions(directory: Path) -> Served:
    """:func:`seed`, then the lists above (all before the served clock, DAY0 + 2.5 days)."""
    served = seed(directory)
    conn = store.connect(served.database)
    store.record_messages(conn, (
        store.SentMessage("shopstory", "token", "shop", DAY0 + 3600, message_id="<story@shop.example.com>",
                          subject="Your order <b>42</b>", sender="orders@shop.example.com", recipients=(GONE,)),
        store.SentMessage("shopangry", "token", "shop", DAY0 + 3700, subject="News", recipients=(ANGRY,)),
    ))
    for key, recipient, kind, reason, hard, diagnostic in (
            ("shopstory", GONE, "bounce", "userunknown", True, DIAGNOSTIC),
            ("shopangry", ANGRY, "complaint", "feedback", False, "")):
        record = BounceRecord(recipient=recipient, kind=kind, reason=reason, hard=hard,
                              status="5.1.1" if hard else "", diagnostic=diagnostic)
        delivery = store.Delivery(f"bounce about {recipient}".encode(), DAY0 + 7200,
                                  rcpt_to=f"b+{key}@bounces.example.com")
        (served.ids[recipient],) = store.store_delivery(conn, delivery, [store.Bounce(record, kind, "shop", key)],
                                                        suppressing={"shop": Setting()})
    for number, address in enumerate((*MANUAL, LIFTED)):
        store.suppressions.suppress(conn, "shop", address, "manual", DAY0 + 9000 + number, "cli:root",
                                    detail=f"asked by {address}")
    store.suppressions.lift(conn, "shop", LIFTED, DAY0 + 86400, "cli:root", admin=True)
    store.suppressions.suppress(conn, "news", GONE, "manual", DAY0 + 10000, "cli:root", detail="news's own")
    store.suppressions.suppress(conn, "news", NEWS_ONLY, "import", DAY0 + 10001, "cli:root")
    conn.close()
    return served


@contextmanager
def serving(served: Served, clock: float = DAY0 + 2.5 * 86400) -> Iterator[Served]:
    """The real application for ``served``'s store on 127.0.0.1 (a free port), in a thread."""
    app = api.make_app(config.load(served.config_path), clock=lambda: clock)
    server = httpd.make_server("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, name="bouncefilter-api", daemon=True).start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass
class Reply:
    """An HTTP answer: status, headers (lower-case names), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def fetch(url: str, token: str | None = None, method: str = "GET", data: bytes | None = None,
          headers: dict[str, str] | None = None) -> Reply:
    """One request with urllib (redirects not followed); errors are answers too."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(request, timeout=30) as response:
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def pages(base: str, url: str, token: str | None = None) -> list[Reply]:
    """Every page from ``url`` on, following ``Link: <...>; rel="next"`` (a path on ``base``)."""
    found = []
    while url:
        reply = fetch(url, token)
        found.append(reply)
        link = reply.headers.get("link")
        url = base + link[1:link.index(">")] if link else ""
    return found
