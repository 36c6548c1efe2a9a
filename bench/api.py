"""The download API against a large store: rows streamed per second, the server's peak
memory, and the time to first byte, beside ``sqlite3 -json`` on the same query.

The store: 1,000,000 bounce records over 90 days, three accounts (a third each), built
once with ``executemany`` in one transaction and kept at ``--store`` (default
/tmp/bouncefilter-bench-api-*.db, rebuilt when the schema or this layout changes). The
server: ``bouncefilter api`` (the standard library's threaded server, as a separate
process) on 127.0.0.1. Its peak memory is the process's VmHWM, reset before every
request (``/proc/PID/clear_refs``), so each figure is that request's peak.

Windows, each asked in JSON (the default format) by one client reading as fast as it can:

- ``1 day``: one account's records of one day (about 3,700 rows);
- ``30 days``: one account's records of 30 days (about 111,000 rows);
- ``30 days, admin``: every account's records of 30 days (about 333,000 rows).

The floor: ``sqlite3 -json`` running the same SELECT (same columns, same WHERE, same
order) with its output to /dev/null. Every repetition runs every window and its floor,
alternating; the table gives the medians and each repetition. Targets (issue 5): at
least half the sqlite3 rate, peak memory under 100 MB, first byte of the one-day
request under 50 ms.

Usage: .venv/bin/python bench/api.py [--reps N] [--store PATH]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from bouncefilter import store
from bouncefilter.api import tokens

ROWS = 1_000_000
DAYS = 90
ACCOUNTS = ("shop", "news", "billing")
LAYOUT = 1  # bump when the generated rows change
START = datetime(2026, 8, 1, tzinfo=timezone.utc).timestamp()
REASONS = (("userunknown", True, "5.1.1", "550 5.1.1 <{r}>: Recipient address rejected: User unknown in virtual mailbox table"),
           ("mailboxfull", False, "4.2.2", "452 4.2.2 <{r}>: Mailbox full, try again later"),
           ("hostunknown", True, "5.1.2", "Host or domain name not found. Name service error for name={d} type=MX"),
           ("blocked", False, "5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.example.net"),
           ("expired", False, "4.4.1", "delivery temporarily suspended: connect to mx.{d}[192.0.2.7]:25: Connection timed out"))
DOMAINS = ("example.com", "example.net", "example.org", "mail.example.test", "corp.example.com")
CHUNK = 64 * 1024


def build(path: Path) -> None:
    """The store: :data:`ROWS` rows over :data:`DAYS` days, one transaction."""
    temporary = path.with_suffix(".building")
    temporary.unlink(missing_ok=True)
    conn = store.connect(str(temporary))
    store.migrate(conn)
    conn.execute("PRAGMA synchronous = OFF")
    pick = random.Random(5)
    step = DAYS * 86400 / ROWS
    columns = ("dedup_key", "received_at", "account", "message_key", "token", "outcome", "kind", "recipient",
               "reason", "hard", "status", "replycode", "action", "diagnostic", "reporting_mta", "remote_mta",
               "original_message_id", "subject", "envelope_sender")

    def row(number: int) -> tuple[object, ...]:
        account = ACCOUNTS[number % 3]
        domain = DOMAINS[pick.randrange(len(DOMAINS))]
        recipient = f"user{pick.randrange(200_000)}@{domain}"
        reason, hard, status, text = REASONS[pick.randrange(len(REASONS))]
        complaint = number % 97 == 0
        return (f"{number:032x}", START + number * step, account, f"{number:016x}", f"t{number:x}",
                "complaint" if complaint else "bounce", "complaint" if complaint else "bounce", recipient,
                "feedback" if complaint else reason, int(hard and not complaint), status, status[0] + "50",
                "failed", text.format(r=recipient, d=domain), "mx1.bounces.example.com", f"mx.{domain}",
                f"<{number}@{account}.example.com>", f"Your order {number}", f"orders@{account}.example.com")

    with store.Writing(conn):
        conn.executemany(f"INSERT INTO bounces ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                         (row(number) for number in range(ROWS)))
    conn.execute("PRAGMA synchronous = FULL")
    conn.close()
    os.replace(temporary, path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def peak_reset(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as handle:
        handle.write("5")


def peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def fetch(port: int, path: str, token: str) -> tuple[float, float, int]:
    """(seconds to the first byte, seconds to the last, rows) of one request."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    first = time.perf_counter() - started
    if response.status != 200:
        raise SystemExit(f"{path}: {response.status} {response.read()[:200]!r}")
    rows = 0
    tail = b""
    while chunk := response.read(CHUNK):
        rows += (tail + chunk).count(b'{"id":')
        tail = chunk[-5:]  # a match across chunks has at most 5 octets in the first
    connection.close()
    return first, time.perf_counter() - started, rows


def floor(database: Path, selected: store.BounceQuery) -> tuple[float, int]:
    """(seconds, rows) for ``sqlite3 -json`` on the API's SELECT, output to /dev/null."""
    columns = ", ".join(f"{expression} AS {name}" for name, expression in store.EXPORT_FIELDS)
    where = f"received_at >= {selected.since!r} AND received_at < {selected.until!r}"
    if selected.account:
        where += f" AND account = '{selected.account}'"
    sql = f"SELECT {columns} FROM bounces WHERE {where} ORDER BY received_at, id;"
    started = time.perf_counter()
    subprocess.run(["sqlite3", "-json", str(database), sql], stdout=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - started
    count = subprocess.run(["sqlite3", str(database), f"SELECT count(*) FROM bounces WHERE {where};"],
                           capture_output=True, text=True, check=True).stdout
    return seconds, int(count)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--store", type=Path,
                        default=Path(tempfile.gettempdir()) / f"bouncefilter-bench-api-s{store.SCHEMA_VERSION}-l{LAYOUT}.db")
    args = parser.parse_args(argv)
    if not shutil.which("sqlite3"):
        raise SystemExit("needs the sqlite3 command (apt-get install sqlite3)")
    if not args.store.exists():
        started = time.perf_counter()
        build(args.store)
        print(f"built {args.store}: {ROWS} rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    conn = store.connect(str(args.store))
    account_token = tokens.create(conn, ACCOUNTS[0], time.time(), "bench")
    admin_token = tokens.create(conn, None, time.time(), "bench")
    conn.close()
    day = START + 40 * 86400
    windows = {
        "1 day": (store.BounceQuery(day, day + 86400, ACCOUNTS[0]), account_token),
        "30 days": (store.BounceQuery(day, day + 30 * 86400, ACCOUNTS[0]), account_token),
        "30 days, admin": (store.BounceQuery(day, day + 30 * 86400), admin_token),
    }
    with tempfile.TemporaryDirectory(prefix="bouncefilter-bench-api-") as folder:
        config = Path(folder) / "bouncefilter.yaml"
        config.write_text(f"database: {args.store}\nlogging: {{target: stderr, level: WARNING}}\n"
                          f"accounts:\n" + "".join(f"  - {{name: {name}, domains: [{name}.example.com], tracking: false}}\n"
                                                   for name in ACCOUNTS))
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "bouncefilter", "--config", str(config), "api", "--listen",
                                   f"127.0.0.1:{port}"], stderr=subprocess.PIPE, text=True)
        try:
            results = measure(server.pid, port, windows, args)
        finally:
            server.terminate()
            server.wait(30)
    print(table(results, args))
    return 0


def measure(pid: int, port: int, windows: dict[str, tuple[store.BounceQuery, str]], args: argparse.Namespace
            ) -> dict[str, list[tuple[float, float, float, float, int]]]:
    """Per window, per repetition: (first byte s, rows/s, peak MB, sqlite3 rows/s, rows)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("bouncefilter api did not start") from None
            time.sleep(0.1)
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    found: dict[str, list[tuple[float, float, float, float, int]]] = {name: [] for name in windows}
    for _ in range(args.reps):
        for name, (selected, token) in windows.items():
            path = (f"/v1/bounces/{datetime.fromtimestamp(selected.since, timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
                    f"/{datetime.fromtimestamp(selected.until, timezone.utc):%Y-%m-%dT%H:%M:%SZ}")
            peak_reset(pid)
            first, seconds, rows = fetch(port, path, token)
            peak = peak_mb(pid)
            floor_seconds, floor_rows = floor(args.store, selected)
            if rows != floor_rows:
                raise SystemExit(f"{name}: the API sent {rows} rows, sqlite3 counts {floor_rows}")
            found[name].append((first, rows / seconds, peak, floor_rows / floor_seconds, rows))
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    return found


def table(found: dict[str, list[tuple[float, float, float, float, int]]], args: argparse.Namespace) -> str:
    lines = [
        "| window | rows | first byte ms (median) | API rows/s (median) | sqlite3 -json rows/s (median) | API / sqlite3 "
        "| server peak MB (max) | API rows/s per rep | sqlite3 rows/s per rep |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, reps in found.items():
        first = statistics.median(rep[0] for rep in reps) * 1000
        rate = statistics.median(rep[1] for rep in reps)
        floor_rate = statistics.median(rep[3] for rep in reps)
        ratios = statistics.median(rep[1] / rep[3] for rep in reps)
        lines.append(
            f"| {name} | {reps[0][4]} | {first:.1f} | {rate:,.0f} | {floor_rate:,.0f} | {ratios:.2f} "
            f"| {max(rep[2] for rep in reps):.1f} | {' '.join(f'{rep[1]:,.0f}' for rep in reps)} "
            f"| {' '.join(f'{rep[3]:,.0f}' for rep in reps)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
