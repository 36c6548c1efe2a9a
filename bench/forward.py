"""Events per second ``bouncefilter forward`` delivers to local receivers.

An outbox is filled with N bounces for one account with several targets (stored as the
pipe stores them, each with its raw message), then the installed ``bouncefilter forward
--once`` is timed from start to exit while it drains it to receivers in a process of
their own, on loopback: the web hook receiver of tests/support/forward_lab.py (threading HTTP
server, keep-alive, answers 200 at once, checks every signature) and its aiosmtpd
server. Every run must end with every row ``done`` and the receivers holding each event
exactly once. Modes:

- ``webhook``: 3 web hook targets per account (three paths, one origin);
- ``smtp``: 2 SMTP targets per account (fixed addresses), one relay;
- ``mixed``: 2 web hooks and 1 SMTP target;
- ``webhook x2``: the webhook mode drained by 2 forwarders at once.

Target (issue 6): at least 300 web hook events/s. The load average is printed before
each run: the machine is shared.
Usage: .venv/bin/python bench/forward.py [--bounces N] [--reps N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bouncefilter import config, store  # noqa: E402
from bouncefilter.core.record import BounceRecord  # noqa: E402

import messages  # noqa: E402  (after the path is set)
from support.forward_lab import Hooks, Mailbox  # noqa: E402

SCRIPT = Path(sys.executable).with_name("bouncefilter")
KEY = b"0123456789abcdef0123456789abcdef"
MODES = {"webhook": (3, 0, 1), "smtp": (0, 2, 1), "mixed": (2, 1, 1), "webhook x2": (3, 0, 2)}


def receivers(channel: Connection) -> None:
    """Run both receivers until told to stop; answer how many events each received."""
    with Hooks([KEY]) as hooks, Mailbox() as box:
        channel.send((hooks.url(""), box.port))
        while (command := channel.recv()) != "stop":
            if command == "count":
                verified = sum(r.verified for r in hooks.received)
                ids = {r.headers["webhook-id"] for r in hooks.received}
                channel.send((len(hooks.received), verified, len(ids), len(box.envelopes)))
            elif command == "clear":
                hooks.received.clear()
                box.envelopes.clear()
                channel.send(None)


def write_config(root: Path, url: str, port: int, hooks: int, mails: int) -> Path:
    targets = [f"{{type: webhook, url: '{url}/h{n}', secrets: [whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=]}}"
               for n in range(hooks)]
    targets += [f"{{type: smtp, to: team{n}@example.com}}" for n in range(mails)]
    path = root / "bouncefilter.yaml"
    path.write_text(f"""\
database: bf.db
logging: {{target: stderr, level: WARNING}}
smtp: {{host: 127.0.0.1, port: {port}}}
accounts:
  - {{name: shop, domains: [shop.example.com], tracking: false, forward: [{', '.join(targets)}]}}
""", encoding="utf-8")
    return path


def fill(settings: config.Settings, bounces: int) -> int:
    """Store ``bounces`` bounces with outbox rows for every target; the rows queued."""
    conn = store.connect(settings.database)
    store.migrate(conn)
    store.skip_fsync(conn)
    conn.execute("DELETE FROM outbox")
    conn.execute("DELETE FROM bounces")
    conn.execute("DELETE FROM raw_messages")
    targets = settings.forward_targets("shop", "bounce")
    now = time.time()
    for n in range(bounces):
        recipient = f"user{n}@example.net"
        raw = messages.postfix_dsn(messages.token(), recipient, queue_id=f"Q{n:010d}")
        record = BounceRecord(recipient=recipient, kind="bounce", reason="userunknown", hard=True, status="5.1.1",
                              replycode="550", original_message_id=f"<m{n}@shop.example.com>")
        row = store.Bounce(record, "bounce", "shop", bounce_address="orders@shop.example.com", targets=targets)
        store.store_delivery(conn, store.Delivery(raw, now, rcpt_to=messages.address("x")), [row])
    (queued,) = conn.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()
    conn.close()
    return queued


def drain(config_path: Path, forwarders: int) -> float:
    """Seconds for ``forwarders`` ``bouncefilter forward --once`` to drain the outbox."""
    command = [str(SCRIPT), "--config", str(config_path), "forward", "--once"]
    started = time.perf_counter()
    runs = [subprocess.Popen(command) for _ in range(forwarders)]
    if any(run.wait() for run in runs):
        raise SystemExit("bouncefilter forward failed")
    return time.perf_counter() - started


def run_mode(root: Path, channel: Connection, url: str, port: int, mode: str, bounces: int) -> float:
    hooks, mails, forwarders = MODES[mode]
    path = write_config(root, url, port, hooks, mails)
    settings = config.load(str(path))
    queued = fill(settings, bounces)
    channel.send("clear")
    channel.recv()
    load = os.getloadavg()[0]
    seconds = drain(path, forwarders)
    channel.send("count")
    posted, verified, distinct, mailed = channel.recv()
    conn = store.connect(settings.database)
    states = dict(conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
    conn.close()
    expected = (bounces * hooks, bounces * mails)
    if states != {store.DONE: queued} or (distinct, mailed) != expected or verified != posted:
        raise SystemExit(f"{mode}: not all delivered once: {states}, hooks {posted}/{distinct}, mail {mailed}")
    rate = queued / seconds
    print(f"{mode}: {queued} events in {seconds:.2f} s = {rate:.0f} events/s "
          f"(load average before: {load:.2f}; {posted - distinct} sent twice)", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bounces", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=receivers, args=(theirs,), daemon=True)
    server.start()
    url, port = ours.recv()
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="bouncefilter-bench-") as folder:
        for _ in range(args.reps):
            for mode in MODES:
                results[mode].append(run_mode(Path(folder), ours, url, port, mode, args.bounces))
    ours.send("stop")
    server.join(10)
    print("\n| mode | targets per account | forwarders | events/s (median) | per rep |")
    print("| --- | --- | --- | --- | --- |")
    for mode, rates in results.items():
        hooks, mails, forwarders = MODES[mode]
        kinds = ", ".join(part for part in (f"{hooks} webhook" if hooks else "", f"{mails} smtp" if mails else "") if part)
        print(f"| {mode} | {kinds} | {forwarders} | {statistics.median(rates):.0f} | "
              f"{' '.join(f'{rate:.0f}' for rate in rates)} |")


if __name__ == "__main__":
    main()
