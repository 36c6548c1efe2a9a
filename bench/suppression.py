"""What the suppression list costs: the pipe's count per new counted bounce, and the
milter's lookup and memory with a million listings.

- ``count``: :func:`bouncefilter.store.store_delivery` of 2,000 new counted bounces (half
  hard, half soft) into a fresh database, with the suppression count and without, five
  pairs, fsync skipped so that the count is not hidden behind the disk; microseconds per
  delivery.
- ``lookup``: :class:`bouncefilter.milter.suppressed.SuppressionList` holding 1,000,000
  listings over four accounts; the memory it takes (tracemalloc) and the median time of
  one ``find`` over 5 x 200,000 lookups, half of them listed.

Usage: .venv/bin/python bench/suppression.py [--bounces N] [--listings N] [--lookups N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import tracemalloc

from bouncefilter import store
from bouncefilter.core.record import BounceRecord
from bouncefilter.milter.suppressed import SuppressionList


def deliveries(suppressing: dict[str, store.suppressions.Setting] | None, count: int = 2000) -> float:
    """Microseconds per delivery of ``count`` new counted bounces into a fresh database."""
    folder = tempfile.mkdtemp()
    conn = store.connect(os.path.join(folder, "bouncefilter.db"))
    store.migrate(conn)
    store.skip_fsync(conn)
    started = time.perf_counter()
    for n in range(count):
        record = BounceRecord(recipient=f"u{n}@example.net", kind="bounce", reason="mailboxfull" if n % 2 else "userunknown",
                              hard=not n % 2)
        row = store.Bounce(record, "bounce", account="shop", message_key=f"m{n}")
        store.store_delivery(conn, store.Delivery(f"Subject: {n}\n\nx\n".encode(), 1.8e9 + n), [row],
                             suppressing=suppressing)
    conn.close()
    return (time.perf_counter() - started) / count * 1e6


def lookups(listings: int, count: int) -> tuple[int, float, float]:
    """(listings, MB held, median ns per find of ``count`` lookups, half of them listed)."""
    rows = ((f"acct{n % 4}", f"user{n}@example{n % 1000}.test", "hard", "userunknown", 1.79e9, None)
            for n in range(listings))
    tracemalloc.start()
    listed = SuppressionList(rows)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    keys = [(f"acct{n % 4}", f"user{n * 7 % (2 * listings)}@example{n % 1000}.test") for n in range(count)]
    times = []
    for _ in range(5):
        started = time.perf_counter()
        for account, key in keys:
            listed.find(account, key, 1.8e9)
        times.append((time.perf_counter() - started) / count * 1e9)
    return len(listed), held / 1e6, statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bounces", type=int, default=2000, help="new bounces per run (default 2000)")
    parser.add_argument("--listings", type=int, default=1_000_000, help="listings held (default 1000000)")
    parser.add_argument("--lookups", type=int, default=200_000, help="lookups per round (default 200000)")
    args = parser.parse_args()
    setting = {"shop": store.suppressions.Setting()}
    pairs = [(deliveries(setting, args.bounces), deliveries(None, args.bounces)) for _ in range(5)]
    print(f"count: {' '.join(f'{a:.0f}' for a, _ in pairs)} us per delivery with the count, "
          f"{' '.join(f'{b:.0f}' for _, b in pairs)} without; median extra "
          f"{statistics.median(a - b for a, b in pairs):.0f} us")
    count, megabytes, nanoseconds = lookups(args.listings, args.lookups)
    print(f"lookup: {count:,} listings in {megabytes:.0f} MB; find {nanoseconds:.0f} ns (median of 5 x {args.lookups:,})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
