"""Helpers shared by the data and run-folder fault cases of the reliability battery."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


def permissions_enforced() -> bool:
    """True when this process is refused an unreadable folder.

    Root normally bypasses file permissions (CAP_DAC_OVERRIDE), so permission cases skip for
    it; a root shell whose capabilities were dropped (``setpriv --bounding-set=-dac_override,
    -dac_read_search``) is refused like any user, and runs them.
    """
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe"
        probe.mkdir()
        probe.chmod(0)
        try:
            os.listdir(probe)
        except PermissionError:
            return True
        finally:
            probe.chmod(0o700)
    return False


needs_permissions = pytest.mark.skipif(
    not permissions_enforced(), reason="this user bypasses file permissions (root)")


def nothing_trained(run_dir: Path) -> None:
    """Asserts that no fold fit started in ``run_dir``."""
    assert not list(Path(run_dir).glob("*/fits.jsonl")), "a fold was trained before the refusal"
