"""Classifier speed: messages per second in one process, and the cost of one process.

Two measures, printed as a Markdown table the README can show:

1. Throughput in one process: every message of a folder (default
   ``../shared/corpus/public``) is read into memory once, then parsed and classified,
   best of ``--repeat`` passes; process start and imports are not counted. Parsing alone
   is shown beside it, with :mod:`bouncefilter.classify.mime` and with ``email``'s compat32
   parser: the latter is a fixed yardstick, so the ratio of classifying to it travels
   between machines and across load.
2. One message per process, as Postfix's pipe transport runs it: the median wall time of
   ``bouncefilter classify --json < MESSAGE`` over ``--runs`` runs, against
   ``python3 -c "import email.parser"`` with the same interpreter, and their ratio
   (target: at most 1.5x). The console script of ``.venv`` is used when it exists, else
   ``python3 -m bouncefilter``; the table says which. The package's ``.pyc`` files are
   brought up to date first, as an installed package has them (with
   ``PYTHONDONTWRITEBYTECODE`` set, a stale one would be compiled in every run).

Usage: python3 bench/classify.py [--corpus DIR] [--repeat N] [--runs N] [--message FILE]...
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bouncefilter.classify import mime  # noqa: E402  (after the path is set)
from bouncefilter.classify.pipeline import classify  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "public"
DEFAULT_MESSAGES = (
    ROOT / "tests" / "fixtures" / "autoreply" / "postfix-dsn-auto-submitted.eml",
    ROOT / "tests" / "fixtures" / "lhost" / "qmail-user-unknown.eml",
)
VENV_SCRIPT = ROOT / ".venv" / "bin" / "bouncefilter"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def compat32_parse(raw: bytes) -> object:
    """The message parsed as the classifier parsed it before :mod:`bouncefilter.classify.mime`."""
    from email._policybase import compat32
    from email.parser import BytesParser

    return BytesParser(policy=compat32).parsebytes(raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))


def load(folder: Path) -> list[bytes]:
    """Every ``*.eml`` message in ``folder``, as bytes, in name order."""
    return [path.read_bytes() for path in sorted(folder.glob("*.eml"))]


def best_pass(messages: Sequence[bytes], work: Callable[[bytes], object], repeat: int) -> tuple[float, float]:
    """The fastest of ``repeat`` passes of ``work(message)`` over all messages: wall
    seconds, and CPU seconds of this process (less disturbed by other processes)."""
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        for raw in messages:
            work(raw)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return min(wall), min(cpu)


def _rate(count: int, wall: float, cpu: float) -> str:
    return f"{count / wall:,.0f} msg/s ({1000 * wall / count:.3f} ms/msg); CPU time: {count / cpu:,.0f} msg/s"


def cli_command() -> tuple[list[str], str, str]:
    """The classify command, its description, and the interpreter it runs on."""
    if VENV_SCRIPT.exists():
        return [str(VENV_SCRIPT), "classify", "--json"], ".venv/bin/bouncefilter (console script)", str(VENV_PYTHON)
    return [sys.executable, "-m", "bouncefilter", "classify", "--json"], "python3 -m bouncefilter", sys.executable


def median_runs(commands: dict[str, list[str]], stdin: Path, runs: int) -> dict[str, float]:
    """Median wall seconds of each command over ``runs`` rounds, run in turn each round."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            with stdin.open("rb") as handle:
                started = time.perf_counter()
                subprocess.run(command, stdin=handle, stdout=subprocess.DEVNULL, check=True, cwd=ROOT)
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Run both measures and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of .eml messages")
    parser.add_argument("--repeat", type=int, default=5, help="passes over the folder (best counts)")
    parser.add_argument("--runs", type=int, default=30, help="process runs per command (median counts)")
    parser.add_argument("--message", type=Path, action="append", help="message for the one-process measure")
    args = parser.parse_args(argv)

    rows: list[tuple[str, str]] = []
    messages = load(args.corpus)
    if messages:
        parse_s, parse_cpu = best_pass(messages, mime.parse, args.repeat)
        compat32_s, compat32_cpu = best_pass(messages, compat32_parse, args.repeat)
        classify_s, classify_cpu = best_pass(messages, classify, args.repeat)
        count = len(messages)
        where = f"{count} messages of {args.corpus.name}/, best of {args.repeat}"
        rows.append((f"classify in one process ({where})", _rate(count, classify_s, classify_cpu)))
        rows.append(("parse alone, bouncefilter.classify.mime", _rate(count, parse_s, parse_cpu)))
        rows.append(("parse alone, email compat32 (yardstick)", _rate(count, compat32_s, compat32_cpu)))
        # Machine load moves all figures together; their ratio travels between machines.
        rows.append(("classify time / compat32 parse time (CPU)", f"{classify_cpu / compat32_cpu:.2f}"))

    compileall.compile_dir(ROOT / "bouncefilter", quiet=1)
    command, described, python = cli_command()
    baseline = [python, "-c", "import email.parser"]
    for message in args.message or [path for path in DEFAULT_MESSAGES if path.exists()]:
        medians = median_runs({"cli": command, "baseline": baseline}, message, args.runs)
        name = message.relative_to(ROOT) if message.is_relative_to(ROOT) else message
        rows.append((f"`{described} classify --json < {name}`", f"{1000 * medians['cli']:.1f} ms (median of {args.runs})"))
        rows.append(('`python3 -c "import email.parser"` (same interpreter)', f"{1000 * medians['baseline']:.1f} ms"))
        rows.append(("ratio (target: at most 1.5x)", f"{medians['cli'] / medians['baseline']:.2f}x"))

    width = max(len(label) for label, _ in rows)
    print(f"| {'measure'.ljust(width)} | result |")
    print(f"|-{'-' * width}-|--------|")
    for label, value in rows:
        print(f"| {label.ljust(width)} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
