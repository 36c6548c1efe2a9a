"""What one message costs the milter process: CPU time per message, with no MTA in the way.

bench/milter.py measures what the milter costs Postfix, but on a shared 2-core machine
its figures move with the neighbours. This one drives the milters directly: 10 threads
speak the milter protocol as Postfix 3 does (tests/support/milter_client.py's PostfixClient: one
connection per message, as smtp-source makes them; negotiation, a macro packet before
every step, MAIL FROM, RCPT TO, six headers, end of message, each burst of steps that
take no reply in one write), and
the milter's CPU time is read from /proc before and after. Each round runs every milter
in turn, so a slow moment hits them all alike:

- ``asyncio``: ``bouncefilter milter`` with its own engine (the default);
- ``libmilter``: the same with ``milter.engine: libmilter``;
- ``minimal``: bench/minimal_milter.py, the pymilter milter that only rewrites the
  sender and adds a header (no database, no header callbacks).

bouncefilter's milters track the sender's domain and record every message in SQLite, as
in production. Prints a Markdown table: CPU ms per message per round and the median.

Usage: .venv/bin/python bench/milter_cpu.py [--messages N] [--threads N] [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# In place of bench/, whose milter.py would shadow pymilter's own ``milter`` module.
sys.path[0] = str(ROOT / "tests")

from support.bouncefilter_lab import MilterProcess, MinimalMilter, checkout_python, cpu_seconds, write_config  # noqa: E402
from support.milter_client import PostfixClient  # noqa: E402
from support.postfix_lab import LabError  # noqa: E402

MILTERS = ("asyncio", "libmilter", "minimal")
SENDER = "orders@shop.example.test"
RECIPIENT = "customer@dest.example.test"
HEADERS = (
    ("Received", "from client.example.test (localhost [127.0.0.1]) by mx.example.test (Postfix) with ESMTP id "
                 "4Q7RZ1X2Y3 for <customer@dest.example.test>; Thu, 26 Nov 2026 01:00:00 +0000 (UTC)"),
    ("From", f"<{SENDER}>"),
    ("To", f"<{RECIPIENT}>"),
    ("Date", "Thu, 26 Nov 2026 01:00:00 +0000"),
    ("Message-Id", "<20261126010000.1@client.example.test>"),
    ("Subject", "Your order"),
)


def send_one(spec: str) -> None:
    """One message over a new connection, as Postfix's smtpd and cleanup send it."""
    client = PostfixClient(spec)
    client.negotiate()
    client.message(f"<{SENDER}>", [f"<{RECIPIENT}>"], HEADERS, "4Q7RZ1X2Y3")
    client.quit()


def drive(spec: str, threads: int, messages: int) -> None:
    """``threads`` connections at a time, ``messages`` each, one message per connection."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(messages):
                send_one(spec)
        except (OSError, EOFError) as exc:
            failures.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise SystemExit(f"milter on {spec}: {failures[0]}")


def start(folder: Path) -> dict[str, MilterProcess | MinimalMilter]:
    """The milters, each on a unix socket in ``folder``; bouncefilter's track the sender."""
    milters: dict[str, MilterProcess | MinimalMilter] = {}
    try:
        for engine in ("asyncio", "libmilter"):
            config = write_config(folder / f"{engine}.yaml", {SENDER.split("@")[1]: True}, engine=engine)
            milters[engine] = MilterProcess(config, folder / f"{engine}.sock", folder / f"{engine}.log",
                                            checkout_python()).start()
        milters["minimal"] = MinimalMilter(folder / "minimal.sock")
    except LabError as exc:
        stop(milters)
        raise SystemExit(str(exc)) from None
    return milters


def stop(milters: dict[str, MilterProcess | MinimalMilter]) -> None:
    """SIGTERM them all at once (libmilter takes seconds to exit), then wait for each."""
    for milter in milters.values():
        milter.terminate()
    for milter in milters.values():
        milter.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300, help="messages per thread and round (default 300)")
    parser.add_argument("--threads", type=int, default=10, help="connections at a time (default 10)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bouncefilter-milter-cpu-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)
        milters = start(folder)
        try:
            for milter in milters.values():
                drive(milter.postfix_spec, args.threads, 20)  # warm up: database created, code loaded
            costs: dict[str, list[float]] = {name: [] for name in MILTERS}
            for round_ in range(args.rounds):
                for name, milter in milters.items():
                    assert milter.process is not None
                    before = cpu_seconds(milter.process.pid)
                    drive(milter.postfix_spec, args.threads, args.messages)
                    costs[name].append((cpu_seconds(milter.process.pid) - before) * 1000 / (args.threads * args.messages))
                print(f"round {round_ + 1}: " + ", ".join(f"{n} {costs[n][-1]:.3f}" for n in MILTERS), file=sys.stderr)
        finally:
            stop(milters)
    print(f"{args.threads} connections at a time, {args.threads * args.messages} messages per milter and round, "
          f"{args.rounds} rounds; CPU time of the milter process per message.\n")
    print("| milter | ms per message, per round | median |")
    print("| --- | --- | --- |")
    for name in MILTERS:
        print(f"| {name} | {' '.join(f'{c:.3f}' for c in costs[name])} | {statistics.median(costs[name]):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
