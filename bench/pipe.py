"""What one ``bouncefilter pipe`` delivery costs, with Postfix delivering real bounces to it.

A throwaway Postfix (tests/support/postfix_lab.py, configured from contrib/postfix) first makes
the bounces: ``bouncefilter milter`` gives N messages signed VERP senders and records
them, the hard peer rejects their recipient, and Postfix's DSNs are saved. Then, for
each command in the pipe service's ``argv=``, the same N DSNs are injected on the MX
port and held (``check_recipient_access static:HOLD``), released at once (``postsuper -H
ALL; postqueue -f``) and timed until the queue is empty. Every run must deliver N of N,
and ``bouncefilter`` must store N bounce rows linked to their messages (the rows are
deleted between runs, the sent messages kept). The commands, alternating inside every
repetition:

- ``true``: ``/bin/true``, what Postfix's pipe(8) costs by itself;
- ``floor``: ``/usr/bin/python3 -c "import email.parser"``, the floor of any Python
  mail tool;
- ``bouncefilter``: the installed ``bouncefilter pipe`` as the pipe user, classifying,
  verifying the token, joining the sent message and committing with ``synchronous =
  FULL`` (its fsync included).

``serial``: ``bouncefilter_destination_concurrency_limit = 1``, so the time per delivery
is the cost of one delivery (target from issue 4: bouncefilter at most 2 x floor).
``default``: Postfix's default concurrency (20 per destination): bounces stored per second.
Printed as a Markdown table with the medians and every repetition.

Needs root and Postfix (as ``make test`` does).
Usage: .venv/bin/python bench/pipe.py [--bounces N] [--serial N] [--reps N]
"""

from __future__ import annotations

import argparse
import os
import re
import smtplib
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import postfix_lab  # noqa: E402  (after the path is set)
from support.bouncefilter_lab import Loop  # noqa: E402
from support.postfix_lab import HARD_DOMAIN, PostfixLab, make_message  # noqa: E402

SENDER = "orders@shop.example.test"
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
MODES = ("true", "floor", "bouncefilter")
HOLD = {"smtpd_recipient_restrictions": "check_recipient_access static:HOLD"}
SERIAL = {"bouncefilter_destination_concurrency_limit": "1"}


def commands(loop: Loop) -> dict[str, tuple[str, ...]]:
    """The pipe service's command per mode (contrib's ``pipe --queue-id ...`` follows it)."""
    return {
        "true": ("/bin/true",),
        "floor": (postfix_lab.SYSTEM_PYTHON, "-c", "import email.parser"),
        "bouncefilter": (str(loop.runtime.command), "--config", str(loop.config)),
    }


def make_bounces(lab: PostfixLab, loop: Loop, count: int) -> list[tuple[str, bytes]]:
    """``count`` real Postfix DSNs of tracked messages: (VERP address, message as a remote
    host would send it), saved by the lab's saver; the messages stay recorded."""
    lab.reset(**{**loop.settings(), "pipe_command": ()})
    messages = [make_message(SENDER, f"user{n}@{HARD_DOMAIN}", f"Order {n}") for n in range(count)]
    send_all(lab.ports["submission"], SENDER, [([f"user{n}@{HARD_DOMAIN}"], m) for n, m in enumerate(messages)])
    saved = lab.wait_deliveries(count=count, timeout=120)
    if len(loop.rows("SELECT message_key FROM messages")) < count:
        raise SystemExit("the milter did not record every message")
    return [(d.recipient, re.sub(rb"\r?\n", b"\r\n", re.sub(rb"\AReturn-Path: <>\n", b"", d.message)))
            for d in saved[:count]]


def send_all(port: int, sender: str, mail: Sequence[tuple[list[str], bytes]]) -> None:
    """Send every (recipients, message) in one SMTP session."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.test", timeout=60) as smtp:
        for recipients, message in mail:
            smtp.sendmail(sender, recipients, message)


def queued(lab: PostfixLab, names: Sequence[str] = QUEUES) -> int:
    """Messages in the named queues of Postfix (files under the queue folders)."""
    return sum(len(files) for name in names for _, _, files in os.walk(lab.spool / name))


def run_once(lab: PostfixLab, loop: Loop, command: tuple[str, ...], bounces: list[tuple[str, bytes]],
             serial: bool) -> float:
    """Hold the bounces, release them, and time the deliveries; seconds per delivery.

    Stops the benchmark when a delivery failed or (for bouncefilter) a row is missing.
    """
    lab.reset(**{**loop.settings(), "pipe_command": command, "main": {**HOLD, **(SERIAL if serial else {})}})
    with loop.connect() as conn:
        for table in ("outbox", "bounces", "raw_messages"):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 - our own table names
    send_all(lab.ports["mx"], "", [([verp], message) for verp, message in bounces])
    deadline = time.monotonic() + 60
    while queued(lab, ("hold",)) < len(bounces):
        if time.monotonic() > deadline:
            raise SystemExit(f"only {queued(lab, ('hold',))} of {len(bounces)} bounces held\n{lab.maillog()[-3000:]}")
        time.sleep(0.01)
    mark = lab.log_mark()
    started = time.perf_counter()
    lab.run(["postsuper", "-c", str(lab.etc), "-H", "ALL"])
    lab.flush()
    while queued(lab):
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    log, sent = logged(lab, mark, r"relay=bouncefilter, .*status=sent", len(bounces))
    if sent != len(bounces):
        raise SystemExit(f"{command[0]}: {sent} of {len(bounces)} delivered\n{log[-3000:]}")
    if command[0] == str(loop.runtime.command):
        stored = loop.rows("SELECT count(*) AS n FROM bounces WHERE outcome = 'bounce' AND account = 'shop'")[0]["n"]
        if stored != len(bounces):
            raise SystemExit(f"bouncefilter: {stored} of {len(bounces)} bounces stored\n{log[-3000:]}")
    return elapsed / len(bounces)


def logged(lab: PostfixLab, mark: int, pattern: str, expected: int, timeout: float = 2.0) -> tuple[str, int]:
    """The log after ``mark`` and how many lines match ``pattern``, waiting up to
    ``timeout`` for ``expected`` (postlogd writes the log a moment after the queue empties)."""
    deadline = time.monotonic() + timeout
    while True:
        log = lab.maillog(mark)
        count = len(re.findall(pattern, log))
        if count >= expected or time.monotonic() > deadline:
            return log, count
        time.sleep(0.02)


def measure(lab: PostfixLab, loop: Loop, bounces: list[tuple[str, bytes]], args: argparse.Namespace
            ) -> dict[tuple[str, bool], list[float]]:
    """Seconds per delivery, per (mode, serial), per repetition; modes alternate."""
    argv = commands(loop)
    for mode in MODES:  # warm up: daemons spawned, caches filled
        run_once(lab, loop, argv[mode], bounces[:20], serial=False)
    found: dict[tuple[str, bool], list[float]] = {(mode, serial): [] for mode in MODES for serial in (True, False)}
    for rep in range(args.reps):
        for serial, sample in ((True, bounces[:args.serial]), (False, bounces)):
            for mode in MODES:
                found[mode, serial].append(run_once(lab, loop, argv[mode], sample, serial))
        print(f"rep {rep + 1}: " + ", ".join(
            f"{mode} {found[mode, True][-1] * 1000:.1f} ms serial, {1 / found[mode, False][-1]:.0f}/s default"
            for mode in MODES), file=sys.stderr)
    return found


def table(found: dict[tuple[str, bool], list[float]], args: argparse.Namespace) -> str:
    """The Markdown table of the results."""
    floor = statistics.median(found["floor", True])
    lines = [
        f"Postfix delivering held DSNs to the pipe service: {args.serial} one at a time (serial), "
        f"{args.bounces} at its default concurrency; {args.reps} repetitions, commands alternating.",
        "",
        "| pipe command | serial ms/delivery (median) | x floor | default: deliveries/s (median) | serial per rep | default per rep |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for mode in MODES:
        serial, default = found[mode, True], found[mode, False]
        lines.append(
            f"| {mode} | {statistics.median(serial) * 1000:.1f} | {statistics.median(serial) / floor:.2f} | "
            f"{1 / statistics.median(default):.0f} | {' '.join(f'{s * 1000:.1f}' for s in serial)} | "
            f"{' '.join(f'{1 / s:.0f}' for s in default)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bounces", type=int, default=500, help="bounces per default-concurrency run (default 500)")
    parser.add_argument("--serial", type=int, default=100, help="bounces per serial run (default 100)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    args = parser.parse_args(argv)
    reason = postfix_lab.unavailable()
    if reason:
        print(f"bench/pipe.py: {reason}", file=sys.stderr)
        return 1
    with PostfixLab(save_sink=False) as lab:
        loop = Loop(lab, {SENDER.split("@")[1]: True})
        try:
            loop.start()
            bounces = make_bounces(lab, loop, max(args.bounces, args.serial))
            found = measure(lab, loop, bounces, args)
        finally:
            loop.stop()
    print(table(found, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
