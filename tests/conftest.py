"""Shared pytest fixtures. Keep each small; helpers for one module belong in its test file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import postfix_lab as lab_harness
import pytest

#: The checkout's root folder.
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[[str], Path]:
    """A factory: ``config_file(yaml_text)`` writes a configuration file and returns its path."""

    def write(text: str, name: str = "bouncefilter.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the tests marked ``postfix`` where no Postfix lab can run, saying why."""
    reason = lab_harness.unavailable()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("postfix"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def postfix_lab() -> Iterator[lab_harness.PostfixLab]:
    """One throwaway Postfix with its smtp-sink peers for the whole run (tests/postfix_lab.py)."""
    reason = lab_harness.unavailable()
    if reason is not None:
        pytest.skip(reason)
    with lab_harness.PostfixLab() as lab:
        yield lab


@pytest.fixture
def lab(postfix_lab: lab_harness.PostfixLab) -> lab_harness.PostfixLab:
    """The session's Postfix lab, emptied (queue, sink, pipe deliveries) and back to its defaults."""
    postfix_lab.reset()
    return postfix_lab
