"""Shared pytest fixtures. Keep each small; helpers for one module belong in its test file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
