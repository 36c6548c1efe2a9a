"""Split a labelled bounce corpus in two, stratified by family, with a fixed seed.

Rules are written against the *development* part (about two thirds of every family);
the *held-back* part is scored only at the end, so its figure says how well the rules
generalise rather than how well they learned their samples. Every family (``lhost-exim``,
``rhost-google``, ``arf``, ...) is shuffled with ``random.Random(f"{seed}:{family}")``
and cut at two thirds (rounded up), so a family of one sample is all development, and
adding a family never moves another's files.

Each part becomes a folder of symbolic links to the corpus's messages with its own
``labels.tsv`` (the corpus's header and its rows for those files), which
``../shared/tools/run_classifier.py`` and ``score.py`` read as they read the corpus.

Usage: python3 bench/corpus_split.py [--corpus DIR] [--seed N] OUT_DIR
  -> OUT_DIR/dev, OUT_DIR/held
"""

from __future__ import annotations

import argparse
import math
import random
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "public"
#: The seed of the split the README reports; change it only with the figures.
SEED = 12


def split(files_by_family: dict[str, list[str]], seed: int) -> tuple[set[str], set[str]]:
    """The development and held-back file names: two thirds of each family, rounded up."""
    dev: set[str] = set()
    held: set[str] = set()
    for family, files in sorted(files_by_family.items()):
        shuffled = sorted(files)
        random.Random(f"{seed}:{family}").shuffle(shuffled)
        cut = math.ceil(len(shuffled) * 2 / 3)
        dev.update(shuffled[:cut])
        held.update(shuffled[cut:])
    return dev, held


def read_labels(corpus: Path) -> tuple[str, list[list[str]]]:
    """The header line and the rows of ``corpus/labels.tsv``."""
    header, *lines = (corpus / "labels.tsv").read_text(encoding="utf-8").splitlines()
    return header, [line.split("\t") for line in lines if line]


def write_part(out: Path, corpus: Path, names: set[str], header: str, rows: list[list[str]]) -> None:
    """``out`` as a corpus folder: links to ``names`` and their label rows."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        stale.unlink()
    for name in sorted(names):
        (out / name).symlink_to(corpus / name)
    kept = [header, *("\t".join(row) for row in rows if row[0] in names)]
    (out / "labels.tsv").write_text("\n".join(kept) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    corpus = args.corpus.resolve()
    header, rows = read_labels(corpus)
    family_column = header.split("\t").index("family")
    families: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row[0] not in families[row[family_column]]:
            families[row[family_column]].append(row[0])
    # Messages with no label row (non-bounces the corpus keeps unlabelled) form a family.
    labelled = {row[0] for row in rows}
    families["unlabelled"] = [p.name for p in corpus.glob("*.eml") if p.name not in labelled]
    dev, held = split(families, args.seed)
    write_part(args.out / "dev", corpus, dev, header, rows)
    write_part(args.out / "held", corpus, held, header, rows)
    print(f"{len(dev)} development and {len(held)} held-back messages in {args.out} (seed {args.seed})")


if __name__ == "__main__":
    main()
