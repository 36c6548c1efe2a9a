"""``make demo``: the whole bounce loop on a throwaway Postfix, in a temporary folder.

What the test suite's end-to-end tests run (tests/postfix_lab.py, tests/bouncefilter_lab.py),
shown once with a realistic batch: Postfix on loopback, configured from contrib/postfix,
with ``bouncefilter milter`` on its submission port and ``bouncefilter pipe`` as the
pipe transport of the bounce domain; ``smtp-sink`` peers play the remote side
(``bad.example.test`` has no such users, ``soft.example.test`` has full mailboxes, every
other domain accepts). Two accounts send; the bounces Postfix writes, a complaint from a
feedback loop and an out-of-office answer come back to bouncefilter; the report is
printed; everything is stopped. The database stays in the folder for a look.

Needs root and Postfix (``make demo`` installs what is missing).
Usage: .venv/bin/python tests/demo.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bouncefilter_lab import Loop, complaint, out_of_office
from postfix_lab import BOUNCE_DOMAIN, HARD_DOMAIN, SOFT_DOMAIN, PostfixLab, make_message, processes_in, unavailable

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


def main() -> int:
    reason = unavailable()
    if reason:
        print(f"make demo: {reason}", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="bouncefilter-demo-"))
    print(f"bouncefilter demo in {root}")
    lab = PostfixLab(root)
    loop = Loop(lab, ACCOUNTS)
    try:
        start(lab, loop)
        started = time.monotonic()
        send_batch(lab)
        stored = loop.wait_rows("SELECT id FROM bounces", count=EXPECTED_ROWS, timeout=60)
        print(f"  {len(stored)} records stored {time.monotonic() - started:.1f} s after the first message\n")
        print(loop.bouncefilter("report"))
    finally:
        loop.stop()
        lab.stop()
    left = processes_in(root)  # Postfix's daemons; the peers and the milter were waited for
    if left:
        print(f"make demo: processes still running: {left}", file=sys.stderr)
        return 1
    print(f"Stopped Postfix, the peers and the milter: nothing left running. The database stays: {loop.database}")
    print(f"  list it:  {loop.runtime.command} --config {loop.config} bounces")
    print(f"  remove everything: rm -rf {root}")
    return 0


def start(lab: PostfixLab, loop: Loop) -> None:
    """Start Postfix and bouncefilter; soft failures expire after a few seconds."""
    lab.start()
    loop.start()
    # The lab warns of a delay after 1 s; a message still undelivered after 4 s expires.
    lab.configure(main={"maximal_queue_lifetime": "4s", "bounce_queue_lifetime": "4s"})
    print(f"  Postfix 127.0.0.1:{lab.ports['submission']} (submission, bouncefilter milter), "
          f"127.0.0.1:{lab.ports['mx']} (MX of {BOUNCE_DOMAIN}: bouncefilter pipe as {loop.pipe_user})")
    print(f"  peers: {HARD_DOMAIN} answers 550 5.1.1 (no such user), {SOFT_DOMAIN} 452 4.2.2 "
          "(mailbox full), the rest accept")


def send_batch(lab: PostfixLab) -> None:
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


if __name__ == "__main__":
    raise SystemExit(main())
