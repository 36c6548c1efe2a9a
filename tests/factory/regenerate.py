#!/usr/bin/env python3
"""Run the bounce factory once and rewrite the golden fixtures in tests/fixtures/factory/.

Usage (as root, after ``make venv`` and ``tests/factory/install.sh``)::

    .venv/bin/python tests/factory/regenerate.py [MTA ...]

With MTA names (postfix, exim, sendmail, opensmtpd, dma), only those MTAs run and only
their fixtures are rewritten. The fixtures are exactly what the peer received; each
``.json`` beside them states what the situation stands for (tests/test_fixtures.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from factory import lab, mtas  # noqa: E402  (after the path is set)


def main(names: list[str]) -> int:
    """Run the factory for ``names`` (all MTAs when empty) and write their fixtures."""
    reason = lab.unavailable()
    if reason:
        print(f"regenerate: {reason}", file=sys.stderr)
        return 1
    unknown = [name for name in names if name not in mtas.BY_NAME]
    if unknown:
        print(f"regenerate: unknown MTA(s) {unknown}; known: {sorted(mtas.BY_NAME)}", file=sys.stderr)
        return 2
    chosen = [mtas.BY_NAME[name] for name in names] or list(mtas.MTAS)
    with lab.Factory(chosen) as factory:
        results = factory.run()
        for name, error in factory.errors.items():
            print(f"regenerate: {error}", file=sys.stderr)
        for key, result in sorted(results.items()):
            if not result.complete:
                print(f"regenerate: {key}: {len(result.messages)} of {result.expected} messages", file=sys.stderr)
        written = lab.write_fixtures(results)
    print(f"regenerate: wrote {len(written)} bounces to {lab.FIXTURES} (factory folder {factory.folder})")
    return 0 if not factory.errors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
