"""The README's first screen is what a newcomer does, and its commands stay inside the
checkout (the figures, which read a corpus beside it, have their own page)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_first_section_is_the_two_commands_then_what_to_do_after_the_demo():
    sections = re.findall(r"^(#{2,3}) (.+)$", README, re.M)
    assert sections[:2] == [("##", "Try it"), ("###", "After the demo")]
    first = README[README.index("## Try it"):README.index("## make demo")]
    for command in ("make demo", "make test", "token create", " api ", "curl"):
        assert command in first


def test_no_command_points_outside_the_checkout():
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, re.S)
    assert not [line for block in blocks for line in block.splitlines() if "../" in line]
    assert "../shared" not in README


def test_the_figures_have_their_own_page():
    assert "[docs/figures.md](docs/figures.md)" in README
    assert (ROOT / "docs" / "figures.md").read_text(encoding="utf-8").startswith("# bouncefilter: figures")
