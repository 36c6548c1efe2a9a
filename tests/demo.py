"""``make demo``: the whole bounce loop on a throwaway Postfix, in a temporary folder.

What the test suite's end-to-end tests run (tests/support/postfix_lab.py, tests/support/bouncefilter_lab.py),
shown once with a realistic batch: Postfix on loopback, configured from contrib/postfix,
with ``bouncefilter milter`` on its submission port and ``bouncefilter pipe`` as the
pipe transport of the bounce domain; ``smtp-sink`` peers play the remote side
(``bad.example.test`` has no such users, ``soft.example.test`` has full mailboxes, every
other domain accepts). Two accounts send; the bounces Postfix writes, a complaint from a
feedback loop and an out-of-office answer come back to bouncefilter; the report is
printed. Then the shop's records go on: ``bouncefilter forward --once`` posts them,
signed, to a web hook receiver the demo runs, and ``bouncefilter api`` serves them to a
download with the shop's token. Everything is stopped; the database stays in the folder
for a look.

``MTA=sendmail`` (``make demo MTA=sendmail``) runs the same loop on Sendmail 8.17 instead
(tests/support/sendmail_lab.py, configured from contrib/sendmail; one aiosmtpd peer plays
the remote side), in a folder under /run: Sendmail refuses folders below a world-writable one.

Needs root and Postfix (``make demo`` installs what is missing; for Sendmail, the bounce
factory's private root, which ``make demo MTA=sendmail`` installs).
Usage: [MTA=sendmail] .venv/bin/python tests/demo.py
"""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from support import sendmail_lab
from support.bouncefilter_lab import Loop, as_user, complaint, out_of_office
from support.postfix_lab import (
    BOUNCE_DOMAIN,
    HARD_DOMAIN,
    SOFT_DOMAIN,
    PostfixLab,
    free_ports,
    listening,
    make_message,
    processes_in,
    unavailable,
)

ACCOUNTS = {"shop.example.test": True, "news.example.test": True}
#: (account's sender, subject, recipients) of the batch.
BATCH = (
    ("orders@shop.example.test", "Your order 1001 has shipped", ["ann@example.org"]),
    ("orders@shop.example.test", "Your order 1002 has shipped", ["bob@example.net"]),
    ("orders@shop.example.test", "Your order 1003 has shipped", [f"carl@{HARD_DOMAIN}"]),
    ("orders@shop.example.test", "Your order 1004 has shipped", [f"dora@{SOFT_DOMAIN}"]),
    ("orders@shop.example.test", "Your invoice 2024-0042", ["erin@example.com"]),
    ("letter@news.example.test", "Newsletter: spring offers",
     ["fay@example.org", "gus@example.net", f"hal@{HARD_DOMAIN}", f"ida@{HARD_DOMAIN}", "joe@example.com"]),
    ("letter@news.example.test", "Newsletter: last chance", ["kim@example.org", f"lea@{HARD_DOMAIN}"]),
)
COMPLAINER = "gus@example.net"  # marks the newsletter as spam at his provider
AWAY = "erin@example.com"  # answers from her holidays
#: Rows the batch gives: 4 unknown users, 1 delay notice and 1 expiry for the full
#: mailbox, 1 complaint, 1 auto-reply.
EXPECTED_ROWS = 8
#: The shop's web hook secret (Standard Webhooks signing; at least 16 characters).
HOOK_SECRET = "demo-secret-0123456789"


class HookReceiver(ThreadingHTTPServer):
    """A web hook receiver on loopback that keeps each event it is posted (and its
    ``webhook-id`` and signature headers) and answers 204."""

    def __init__(self) -> None:
        self.events: list[tuple[dict[str, object], str, str]] = []
        super().__init__(("127.0.0.1", 0), _HookHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/bounces"


class _HookHandler(BaseHTTPRequestHandler):
    server: HookReceiver

    def do_POST(self) -> None:  # noqa: N802 - the standard library's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.events.append((json.loads(body), self.headers.get("webhook-id", ""),
                                   self.headers.get("webhook-signature", "")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


#: The demo's MTA: ``postfix`` (the default) or ``sendmail``.
MTA = os.environ.get("MTA", "postfix").strip().lower() or "postfix"


def main() -> int:
    if MTA not in ("postfix", "sendmail"):
        print(f"make demo: MTA must be postfix or sendmail, not {MTA!r}", file=sys.stderr)
        return 2
    reason = sendmail_lab.unavailable() if MTA == "sendmail" else unavailable()
    if reason:
        print(f"make demo: {reason}", file=sys.stderr)
        return 1
    lab: PostfixLab | sendmail_lab.SendmailLab
    if MTA == "sendmail":
        lab = sendmail_lab.SendmailLab()
        root = lab.root
    else:
        root = Path(tempfile.mkdtemp(prefix="bouncefilter-demo-"))
        lab = PostfixLab(root)
    print(f"bouncefilter demo ({MTA}) in {root}")
    hooks = HookReceiver()
    loop = Loop(lab, ACCOUNTS, forward={"shop.example.test": f"{{type: webhook, url: '{hooks.url}', "
                                                            f"secrets: [{HOOK_SECRET}]}}"})
    try:
        start(lab, loop)
        started = time.monotonic()
        send_batch(lab)
        stored = loop.wait_rows("SELECT id FROM bounces", count=EXPECTED_ROWS, timeout=60)
        print(f"  {len(stored)} records stored {time.monotonic() - started:.1f} s after the first message\n")
        print(loop.bouncefilter("report"))
        forward(loop, hooks)
        suppressed(loop, lab)
        download(loop)
    finally:
        loop.stop()
        lab.stop()
        hooks.shutdown()
    left = processes_in(root)  # Postfix's daemons; the peers and the milter were waited for
    if left:
        print(f"make demo: processes still running: {left}", file=sys.stderr)
        return 1
    print(f"Stopped {MTA.capitalize()}, the peers, the milter and the API: nothing left running. The database stays: {loop.database}")
    print(f"  list it:  {loop.runtime.command} --config {loop.config} bounces")
    print(f"  remove everything: rm -rf {root}")
    return 0


def start(lab: PostfixLab | sendmail_lab.SendmailLab, loop: Loop) -> None:
    """Start the MTA and bouncefilter; soft failures expire after a few seconds."""
    lab.start()
    loop.start()
    # The labs warn of a delay after 1 s; a message still undelivered after 4 s expires.
    if isinstance(lab, PostfixLab):
        lab.configure(main={"maximal_queue_lifetime": "4s", "bounce_queue_lifetime": "4s"})
        print(f"  Postfix 127.0.0.1:{lab.ports['submission']} (submission, bouncefilter milter), "
              f"127.0.0.1:{lab.ports['mx']} (MX of {BOUNCE_DOMAIN}: bouncefilter pipe as {loop.pipe_user})")
    else:
        lab.configure(main={**lab.settings.main, "confTO_QUEUERETURN": "4s"})
        print(f"  Sendmail {sendmail_lab.ADDRESS}:25 (bouncefilter milter; mailertable sends {BOUNCE_DOMAIN} "
              f"to the bouncefilter mailer, bouncefilter pipe as {loop.pipe_user})")
    print(f"  peers: {HARD_DOMAIN} answers 550 5.1.1 (no such user), {SOFT_DOMAIN} 452 4.2.2 "
          "(mailbox full), the rest accept")


def send_batch(lab: PostfixLab | sendmail_lab.SendmailLab) -> None:
    """Send :data:`BATCH`, then the complaint and the out-of-office answer it provokes."""
    for sender, subject, recipients in BATCH:
        lab.send(make_message(sender, ", ".join(recipients), subject), sender, recipients)
    count = sum(len(recipients) for _, _, recipients in BATCH)
    print(f"  sent {len(BATCH)} messages to {count} recipients as {' and '.join(ACCOUNTS)}")
    spam = lab.wait_sink(lambda m: COMPLAINER in m.recipients)[0]
    lab.send(complaint(spam.message, COMPLAINER, reporter="isp.example.net"), "fbl@isp.example.net",
             [f"fbl@{BOUNCE_DOMAIN}"], port="mx")
    away = lab.wait_sink(lambda m: AWAY in m.recipients)[0]
    lab.send(out_of_office(away.message, AWAY, away.sender), "", [away.sender], port="mx")
    print(f"  {COMPLAINER} complained (ARF to fbl@{BOUNCE_DOMAIN}), {AWAY} answered from her holidays")


def forward(loop: Loop, hooks: HookReceiver) -> None:
    """Deliver the outbox once (the shop's web hook wants all but delays) and show what arrived."""
    loop.bouncefilter("forward", "--once")
    print(f"bouncefilter forward --once: {len(hooks.events)} signed events posted to the shop's web hook {hooks.url}")
    for event, identifier, signature in hooks.events:
        who = event.get("recipient", event.get("address", ""))
        print(f"  {identifier}  {event['event']:<20}  {who:<24} {event['reason']:<12} "
              f"({signature.split(',')[0]} signature)")
    print()


def submission(lab: PostfixLab | sendmail_lab.SendmailLab) -> tuple[str, int]:
    """Where the lab takes mail to send (with the milter)."""
    return ("127.0.0.1", lab.ports["submission"]) if isinstance(lab, PostfixLab) else (sendmail_lab.ADDRESS, 25)


def suppressed(loop: Loop, lab: PostfixLab | sendmail_lab.SendmailLab) -> None:
    """Show the suppression list, then send the shop's next message to a listed address and
    a good one: Postfix refuses the first at RCPT TO (the milter's 550), the second goes."""
    print("bouncefilter suppression list --account shop:")
    print("  " + loop.bouncefilter("suppression", "list", "--account", "shop").strip().replace("\n", "\n  "))
    recipients = [f"carl@{HARD_DOMAIN}", "ann@example.org"]
    wait_listed(loop, recipients[0])
    with smtplib.SMTP(*submission(lab), local_hostname="client.example.test", timeout=30) as smtp:
        refused = smtp.sendmail("orders@shop.example.test", recipients,
                                make_message("orders@shop.example.test", ", ".join(recipients), "Your order 1005"))
    print(f"  the next message to {' and '.join(recipients)}:")
    for recipient in recipients:
        code, reply = refused.get(recipient, (250, b"accepted"))
        print(f"    RCPT TO:<{recipient}>  {code} {reply.decode()}")
    print()


def wait_listed(loop: Loop, address: str, timeout: float = 10.0) -> None:
    """Wait until the milter has had a moment to load ``address``'s listing (it refreshes
    every second) and a new SMTP session will take RCPT replies."""
    loop.wait_rows("SELECT id FROM suppressions WHERE address_key = ? AND reason != ''", address, count=1,
                   timeout=timeout)
    time.sleep(1.5)


def download(loop: Loop) -> None:
    """Make the shop a token, serve the API, and download the last hour's hard bounces with it."""
    token = loop.bouncefilter("token", "create", "--account", "shop").strip()
    port = free_ports(1)[0]
    command = [str(loop.runtime.command), "--config", str(loop.config), "api", "--listen", f"127.0.0.1:{port}"]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          **as_user(loop.pipe_user)) as api:  # type: ignore[call-overload]
        try:
            _wait_for_port(port)
            now = datetime.now(timezone.utc).replace(microsecond=0)
            start, end = ((now + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ") for m in (-60, 1))
            path = f"/v1/bounces/{start}/{end}?hard=true"
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                             headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                records = json.load(response)
        finally:
            api.terminate()
    print(f"bouncefilter api on 127.0.0.1:{port}, with the shop's token (bouncefilter token create --account shop):")
    print(f"  GET {path}")
    for record in records:
        print(f"  {record['time']}  {record['recipient']}  {record['reason']}  {record['status']}  "
              f"subject={record['subject']!r}")
    print()


def _wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not listening(port):
        if time.monotonic() > deadline:
            raise SystemExit(f"make demo: bouncefilter api did not listen on 127.0.0.1:{port}")
        time.sleep(0.05)


if __name__ == "__main__":
    raise SystemExit(main())
