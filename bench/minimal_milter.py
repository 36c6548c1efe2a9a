"""The yardstick for bench/milter.py: the least a pymilter milter can do for bounce tracking.

It rewrites the envelope sender and adds one header at end of message: no database, no
header callbacks, no account matching, no logging. Issue 3 measured it at about 0.82 of
Postfix's throughput without a milter (unix socket). Run beside bouncefilter's milter in
the same benchmark, it shows what any Python milter costs on the machine at hand.

Usage: python -P bench/minimal_milter.py SOCKET   (unix:/path or inet:PORT@HOST; -P, or
``import Milter`` would find bench/milter.py instead of pymilter's ``milter`` module)
"""

from __future__ import annotations

import sys

import Milter  # type: ignore[import-untyped]


class MinimalMilter(Milter.Base):  # type: ignore[misc]
    """Sender rewritten, one header added; nothing else asked for."""

    @Milter.noreply
    def envfrom(self, sender: str, *params: str) -> int:
        return Milter.CONTINUE

    def eom(self) -> int:
        self.chgfrom("<b+minimal@bounces.example.test>")
        self.addheader("X-Minimal", "1")
        return Milter.CONTINUE


def main(argv: list[str]) -> int:
    Milter.factory = MinimalMilter
    Milter.set_flags(Milter.CHGFROM | Milter.ADDHDRS)
    Milter.runmilter("minimal", argv[1], timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
