"""What ``bouncefilter milter`` costs Postfix: relay throughput with and without it.

A throwaway Postfix (tests/support/postfix_lab.py) relays ``smtp-source`` mail to an ``smtp-sink``
that saves nothing. Five modes alternate inside every repetition, each repetition in an
order of its own, so that a slow moment of the machine hits them all alike:

- ``plain``: no milter;
- ``unix``: ``bouncefilter milter`` on a unix socket;
- ``inet``: the same milter on ``inet:127.0.0.1``;
- ``libmilter``: the same milter on a unix socket with ``milter.engine: libmilter``
  (pymilter's libmilter speaking the protocol instead of bouncefilter's asyncio engine);
- ``listed``: the same milter on a unix socket enforcing the suppression list
  (``suppression.enforce: reject``) with :data:`LISTED` addresses of the sender's account
  listed (not the recipient): RCPT TO then takes a reply, and every recipient is looked
  up. The other bouncefilter modes run with ``enforce: off`` over the same database;
- ``minimal``: the yardstick, bench/minimal_milter.py on a unix socket: a pymilter
  milter that only rewrites the sender and adds a header (no database, no header
  callbacks), i.e. what any Python milter costs on the machine at hand.

The milter runs with tracking on for the sender's domain and records every message in
SQLite, as in production. One measure = N / (time from the start of injection until the
queue is empty); every run must deliver N of N. Printed as a Markdown table: msgs/s per
repetition, the median, the medians of the per-repetition ratios to ``plain`` (targets
from issue 3: unix >= 0.80, inet >= 0.70 with 10 sessions) and to ``minimal``, the
milter process's CPU time per message, read from /proc, and the whole machine's.

The whole machine's CPU time per message (Postfix, smtp-source, smtp-sink and the
milter; /proc/stat's busy time, without the time the hypervisor gave to neighbours) gives
the same ratio another way: Postfix with smtp-source keeps both cores busy, so what a
message costs the machine decides how many go through. The two ratios agree, which
tells a slow machine from a costly milter.

Needs root and Postfix (as ``make test`` does).
Usage: .venv/bin/python bench/milter.py [--messages N] [--sessions N] [--size BYTES] [--reps N]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import postfix_lab  # noqa: E402  (after the path is set)
from support.bouncefilter_lab import MilterProcess, MinimalMilter, checkout_python, cpu_seconds, write_config  # noqa: E402
from support.postfix_lab import PostfixLab  # noqa: E402

SENDER = "orders@shop.example.test"
RECIPIENT = "customer@dest.example.test"
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
MODES = ("plain", "unix", "inet", "libmilter", "listed", "minimal")
#: Addresses on the sender's account's suppression list in ``listed`` mode.
LISTED = 100_000


def start_milters(lab: PostfixLab) -> dict[str, MilterProcess]:
    """One milter per mode, all recording to one database (tracking on for the sender)."""
    folder = lab.root / "milter"
    folder.mkdir(mode=0o755, exist_ok=True)
    accounts = {SENDER.split("@")[1]: True}
    unenforced = {SENDER.split("@")[1]: "{enforce: off}"}
    config = write_config(folder / "bouncefilter.yaml", accounts, suppression=unenforced)
    threaded = write_config(folder / "bouncefilter-libmilter.yaml", accounts, engine="libmilter", suppression=unenforced)
    listed = write_config(folder / "bouncefilter-listed.yaml", accounts)
    fill_list(folder / "bouncefilter.db", SENDER.split("@")[1].split(".")[0], LISTED)
    milters = {
        "unix": MilterProcess(config, lab.run_dir / "milter.sock", folder / "milter-unix.log", checkout_python()),
        "inet": MilterProcess(config, postfix_lab.free_ports(1)[0], folder / "milter-inet.log", checkout_python()),
        "libmilter": MilterProcess(threaded, lab.run_dir / "libmilter.sock", folder / "milter-libmilter.log", checkout_python()),
        "listed": MilterProcess(listed, lab.run_dir / "listed.sock", folder / "milter-listed.log", checkout_python()),
    }
    try:
        for milter in milters.values():
            milter.start()
    except postfix_lab.LabError as exc:
        stop(list(milters.values()))
        raise SystemExit(str(exc)) from None
    return milters


def fill_list(database: Path, account: str, count: int) -> None:
    """List ``count`` addresses (none of them the recipient) for ``account``."""
    from bouncefilter import store
    from bouncefilter.core.suppression import Entry

    conn = store.connect(str(database))
    try:
        store.migrate(conn)
        entries = [Entry(f"gone{n}@{RECIPIENT.split('@')[1]}", "manual") for n in range(count)]
        store.suppressions.suppress_many(conn, account, entries, time.time(), "bench", ())
    finally:
        conn.close()


def stop(milters: Sequence[MilterProcess | MinimalMilter]) -> None:
    """SIGTERM them all at once (libmilter takes seconds to exit), then wait for each."""
    for milter in milters:
        milter.terminate()
    for milter in milters:
        milter.stop()


def queued(lab: PostfixLab) -> int:
    """Messages still in Postfix's queues (files under the queue folders)."""
    return sum(len(files) for name in QUEUES for _, _, files in os.walk(lab.spool / name))


def recorded(lab: PostfixLab) -> int:
    """Messages the milters have recorded so far."""
    path = lab.root / "milter" / "bouncefilter.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])


def run_once(lab: PostfixLab, milter: str, messages: int, sessions: int, size: int) -> tuple[float, float]:
    """Relay ``messages`` through the submission port; messages per second until the queue
    is empty, and the machine's busy CPU seconds meanwhile.

    Stops the benchmark when any message was not delivered, or (with a milter) not recorded.
    """
    lab.reset(milter=milter)
    before = recorded(lab)
    mark = lab.log_mark()
    command = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size), "-f", SENDER,
               "-t", RECIPIENT, "-M", "client.example.test", f"127.0.0.1:{lab.ports['submission']}"]
    busy = machine_busy()
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=postfix_lab.admin_env())
    while queued(lab):
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    busy = machine_busy() - busy
    sent = delivered(lab, mark, messages)
    if result.returncode != 0 or sent != messages:
        raise SystemExit(f"{milter or 'plain'}: {sent} of {messages} delivered; smtp-source: "
                         f"{result.stdout}{result.stderr}\n{lab.maillog(mark)[-3000:]}")
    if milter and "minimal" not in milter and not all_recorded(lab, before + messages):
        raise SystemExit(f"{milter}: {recorded(lab) - before} of {messages} recorded in the database")
    return messages / elapsed, busy


def delivered(lab: PostfixLab, mark: int, expected: int, timeout: float = 2.0) -> int:
    """Deliveries logged after ``mark``, waiting up to ``timeout`` for ``expected`` of them
    (postlogd writes the log a moment after the queue empties)."""
    deadline = time.monotonic() + timeout
    while (count := lab.maillog(mark).count("status=sent")) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return count


def all_recorded(lab: PostfixLab, expected: int, timeout: float = 1.0) -> bool:
    """Whether the database holds ``expected`` messages within ``timeout`` seconds (the
    milter's writer thread commits up to 100 ms after a message has left)."""
    deadline = time.monotonic() + timeout
    while (count := recorded(lab)) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return count == expected


class Results(NamedTuple):
    """Per mode and repetition: msgs/s, the milter process's and the machine's CPU ms per message."""

    rates: dict[str, list[float]]
    cpu: dict[str, list[float]]
    machine: dict[str, list[float]]


def machine_busy() -> float:
    """Seconds of CPU time the machine has spent busy (user, nice, system, irq, softirq;
    not idle, not waiting for I/O, not stolen by the hypervisor), all cores."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def measure(lab: PostfixLab, specs: dict[str, str], pids: dict[str, int], args: argparse.Namespace) -> Results:
    """Every mode once per repetition, in an order of its own (:func:`shuffled`)."""
    for mode in MODES:  # warm up: daemons spawned, database created
        run_once(lab, specs[mode], min(100, args.messages), args.sessions, args.size)
    results = Results({mode: [] for mode in MODES}, {mode: [] for mode in MODES if mode in pids},
                      {mode: [] for mode in MODES})
    for rep in range(args.reps):
        order = shuffled(MODES, rep)
        for mode in order:
            before = cpu_seconds(pids[mode]) if mode in pids else 0.0
            rate, busy = run_once(lab, specs[mode], args.messages, args.sessions, args.size)
            results.rates[mode].append(rate)
            results.machine[mode].append(busy * 1000 / args.messages)
            if mode in pids:
                results.cpu[mode].append((cpu_seconds(pids[mode]) - before) * 1000 / args.messages)
        print(f"rep {rep + 1}: " + ", ".join(f"{m} {results.rates[m][-1]:.0f}/s" for m in order),
              file=sys.stderr)
    return results


def shuffled(modes: Sequence[str], repetition: int) -> list[str]:
    """``modes`` in the order of ``repetition``: shuffled, the same in every run (seeded by
    the repetition's number), so that no mode always runs first, or just after the same
    other mode, or always before or after the plain run it is compared with."""
    order = list(modes)
    random.Random(repetition).shuffle(order)
    return order


def table(results: Results, args: argparse.Namespace) -> str:
    """The Markdown table of the results."""
    lines = [
        f"`smtp-source -s {args.sessions} -m {args.messages} -l {args.size}` into Postfix, relayed to "
        f"smtp-sink; {args.reps} repetitions, modes alternating.",
        "",
        "| mode | msgs/s per repetition | median msgs/s | ratio to plain (median of per-rep ratios) "
        "| ratio to minimal (same) | milter CPU ms/msg (median) | machine CPU ms/msg (median) "
        "| ratio to plain by machine CPU (median of per-rep ratios) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode in MODES:
        rates, machine = results.rates[mode], results.machine[mode]
        cpu = f"{statistics.median(results.cpu[mode]):.2f}" if mode in results.cpu else ""
        by_cpu = _ratio(results.machine["plain"], machine)  # less CPU per message: more messages
        lines.append(f"| {mode} | {' '.join(f'{r:.0f}' for r in rates)} | {statistics.median(rates):.0f} | "
                     f"{_ratio(rates, results.rates['plain']):.2f} | {_ratio(rates, results.rates['minimal']):.2f} | {cpu} | "
                     f"{statistics.median(machine):.2f} | {by_cpu:.2f} |")
    return "\n".join(lines)


def _ratio(rates: Sequence[float], yardstick: Sequence[float]) -> float:
    """The median of the per-repetition ratios of ``rates`` to ``yardstick``."""
    return statistics.median(rate / other for rate, other in zip(rates, yardstick))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per run (default 2000)")
    parser.add_argument("--sessions", type=int, default=10, help="parallel SMTP sessions (default 10)")
    parser.add_argument("--size", type=int, default=2000, help="message size in bytes (default 2000)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    args = parser.parse_args(argv)
    reason = postfix_lab.unavailable()
    if reason:
        print(f"bench/milter.py: {reason}", file=sys.stderr)
        return 1
    with PostfixLab(save_sink=False) as lab:
        milters: dict[str, MilterProcess | MinimalMilter] = {**start_milters(lab), "minimal": MinimalMilter(lab.run_dir / "minimal.sock")}
        specs = {"plain": "", **{kind: milter.postfix_spec for kind, milter in milters.items()}}
        pids = {kind: milter.process.pid for kind, milter in milters.items() if milter.process is not None}
        try:
            results = measure(lab, specs, pids, args)
        finally:
            stop(list(milters.values()))
    print(table(results, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
