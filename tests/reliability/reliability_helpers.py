"""Helpers for the reliability battery: run ``run_search.py`` as a user would and check how it
fails.

Every case in ``tests/reliability/`` runs the real command line in a subprocess (tiny images,
tiny epochs) and asserts, through :func:`assert_user_error`, the exit code, that the message
names the path or value and the fix, and that no traceback reaches the user.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from run_helpers import tiny_space

REPO = Path(__file__).resolve().parents[2]


def search_args(folder: Path, data: Path, *extra: str, run_dir: Path | None = None) -> list[str]:
    """``search`` arguments for a seconds-long run: ANN, random search, 2 folds, 16 px, no ladder
    (the cases count trials and folds; the ladder could stop a tiny model early)."""
    return ["search", "--data", str(data), "--model", "ann", "--tuner", "random", "--folds", "2",
            "--max-trials", "2", "--max-epochs", "2", "--image-size", "16", "--seed", "5",
            "--space", str(tiny_space(folder)), "--run-dir", str(run_dir or Path(folder) / "run"),
            "--quiet", "--no-ladder", *extra]


def run_cli(args: list[str], *, env_extra: dict | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Runs ``python run_search.py ARGS`` as a user would; returns the finished process."""
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(REPO)})
    env.pop("CXR_TEST_KILL_AT", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(REPO / "run_search.py"), *args],
                          cwd=str(cwd or REPO), env=env, capture_output=True, text=True,
                          timeout=timeout)


def assert_user_error(result: subprocess.CompletedProcess, *names: str, code: int = 2) -> str:
    """Asserts a clean refusal: exit ``code``, no traceback, every string in ``names`` (the
    path or value, and a word of the fix) in the message. Returns stderr + stdout."""
    out = result.stderr + result.stdout
    assert result.returncode == code, f"exit {result.returncode}, expected {code}:\n{out[-3000:]}"
    assert "Traceback" not in out, f"a traceback reached the user:\n{out[-3000:]}"
    for name in names:
        assert name in out, f"{name!r} not in the message:\n{out[-3000:]}"
    return out
