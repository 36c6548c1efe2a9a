"""What one message costs the milter process: CPU time per message, with no MTA in the way.

bench/milter.py measures what the milter costs Postfix, but on a shared 2-core machine
its figures move with the neighbours. This one drives the milters directly: 10 threads
speak the milter protocol as Postfix does (one connection per message, as smtp-source
makes them; negotiation, macros, MAIL FROM, RCPT TO, six headers, end of message), and
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
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# In place of bench/, whose milter.py would shadow pymilter's own ``milter`` module.
sys.path[0] = str(ROOT / "tests")

from bouncefilter_lab import checkout_python, cpu_seconds  # noqa: E402  (after the path is set)
from milter_client import WireClient  # noqa: E402

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


def send_one(path: str) -> None:
    """One message over a new connection, as Postfix's smtpd and cleanup send it."""
    client = WireClient(f"unix:{path}")
    client.negotiate()
    client.start(f"<{SENDER}>", [f"<{RECIPIENT}>"], HEADERS)
    client.end("4Q7RZ1X2Y3")
    client.close()


def drive(path: str, threads: int, messages: int) -> None:
    """``threads`` connections at a time, ``messages`` each, one message per connection."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(messages):
                send_one(path)
        except (OSError, EOFError) as exc:
            failures.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise SystemExit(f"milter on {path}: {failures[0]}")


def start(folder: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
    """A milter on a unix socket in ``folder``; the process and the socket's path."""
    path = folder / f"{name}.sock"
    log = (folder / f"{name}.log").open("wb")
    if name == "minimal":
        # -P: with bench/ first on the path, ``import Milter`` would find bench/milter.py.
        command = [checkout_python(), "-P", str(ROOT / "bench" / "minimal_milter.py"), f"unix:{path}"]
    else:
        command = [checkout_python(), "-m", "bouncefilter", "milter", "--config", str(folder / f"{name}.yaml"),
                   "--socket", f"unix:{path}"]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{name} did not start:\n{(folder / f'{name}.log').read_text()}")
        time.sleep(0.05)
    return process, str(path)


def write_config(folder: Path, engine: str) -> None:
    """bouncefilter.yaml for ``engine``: the shop's mail tracked and recorded, as in production."""
    (folder / f"{engine}.yaml").write_text(
        f"database: {folder / 'bouncefilter.db'}\n"
        "verp: {domain: bounces.example.test, keys: [bench-signing-key-0123456789abcdef]}\n"
        f"milter: {{engine: {engine}, socket_group: null}}\n"
        "logging: {target: stderr, level: INFO}\n"
        "accounts: [{name: shop, domains: [shop.example.test]}]\n",
        encoding="utf-8",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300, help="messages per thread and round (default 300)")
    parser.add_argument("--threads", type=int, default=10, help="connections at a time (default 10)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bouncefilter-milter-cpu-") as tmp:
        folder = Path(tmp)
        for engine in ("asyncio", "libmilter"):
            write_config(folder, engine)
        milters = {name: start(folder, name) for name in MILTERS}
        try:
            for _, path in milters.values():
                drive(path, args.threads, 20)  # warm up: database created, code loaded
            costs: dict[str, list[float]] = {name: [] for name in MILTERS}
            for round_ in range(args.rounds):
                for name, (process, path) in milters.items():
                    before = cpu_seconds(process.pid)
                    drive(path, args.threads, args.messages)
                    costs[name].append((cpu_seconds(process.pid) - before) * 1000 / (args.threads * args.messages))
                print(f"round {round_ + 1}: " + ", ".join(f"{n} {costs[n][-1]:.3f}" for n in MILTERS), file=sys.stderr)
        finally:
            for process, _ in milters.values():
                process.terminate()
            for process, _ in milters.values():
                process.wait(30)
    print(f"{args.threads} connections at a time, {args.threads * args.messages} messages per milter and round, "
          f"{args.rounds} rounds; CPU time of the milter process per message.\n")
    print("| milter | ms per message, per round | median |")
    print("| --- | --- | --- |")
    for name in MILTERS:
        print(f"| {name} | {' '.join(f'{c:.3f}' for c in costs[name])} | {statistics.median(costs[name]):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
