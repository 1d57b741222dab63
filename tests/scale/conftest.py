"""Fixtures for the scale tests (helpers live in scale_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from scale_helpers import Procs


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """Subprocess starter whose processes are killed at teardown, whatever happened."""
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.cleanup()
