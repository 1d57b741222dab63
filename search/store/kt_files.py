"""KerasTuner's own project files (``oracle.json``, ``tuner0.json``, ``trial_*/trial.json``):
atomic saves, and repair of damaged ones before a resume.

KerasTuner writes these files in place (``keras_tuner.src.utils.save_json`` opens the file for
writing, which empties it, then writes), so a kill or a full disk in the middle leaves a
truncated file, and every later resume dies on a ``JSONDecodeError``. :func:`install_atomic_saves`
is the one seam that changes KerasTuner's behaviour here. :func:`repair_project` rebuilds what
the service's own records allow before KerasTuner reloads the project.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keras_tuner.errors import FatalError

from search.errors import SearchError
from search.runtime import compat
from search.store.fold_records import oracle_metrics
from search.store.files import DiskFullError, write_text_atomic

ORACLE_BACKUP = "oracle.json.bak"


class FatalDiskFull(DiskFullError, FatalError):
    """A full disk inside KerasTuner's loop: a FatalError, so KerasTuner does not record the
    trial as failed (it is not the configuration's fault) but stops, resumable."""


def _atomic_save_json(path: str, obj: Any) -> str:
    text = json.dumps(obj)
    try:
        write_text_atomic(Path(path), text)
        if os.path.basename(path) == "oracle.json":
            # A second copy, so outside damage to oracle.json (which no cv.json can rebuild:
            # it holds the tuner's own state) can be repaired on resume.
            write_text_atomic(Path(path).with_name(ORACLE_BACKUP), text)
    except DiskFullError as err:
        raise FatalDiskFull(str(err)) from None
    return text


def install_atomic_saves() -> None:
    """Makes KerasTuner save its JSON files through write-then-rename (idempotent).

    Replaces ``keras_tuner.src.utils.save_json`` (through ``search.runtime.compat``), through which
    ``Oracle.save``, ``Tuner.save`` and ``Trial.save`` all write. Run folders are local paths,
    so the ``backend.io`` layer it bypasses (for ``gs://`` paths) is not needed. A full disk
    raises :class:`FatalDiskFull`.
    """
    compat.replace_save_json(_atomic_save_json)


def _load(path: Path) -> Any | None:
    """The file's JSON, or None when it is missing or damaged."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _say(warn: Callable[[str], None] | None, text: str) -> None:
    if warn is not None:
        warn(text)
    else:
        print(f"warning: {text}", file=sys.stderr, flush=True)


def trial_state_from_cv(cv: dict[str, Any], space: list[dict[str, Any]]) -> dict[str, Any]:
    """KerasTuner's trial.json content rebuilt from the service's ``cv.json``.

    Args:
        cv: the trial's cv.json (hyperparameters, status, fold means).
        space: the ``space`` list of ``HyperParameters.get_config()`` (oracle.json's
            ``hyperparameters`` or a healthy trial.json's).
    """
    values = dict(cv.get("hyperparameters") or {})
    for key, value in (cv.get("hyperband") or {}).items():
        values[f"tuner/{key}"] = value
    objective, direction = cv.get("objective"), cv.get("direction", "max")
    mean = cv.get("mean") or {}
    status = cv.get("status", "RUNNING")
    metrics = {}
    # KerasTuner's view of a pruned trial: completed, with the pruned flag (search.schedule.ladder)
    if status == "PRUNED":
        status, mean = "COMPLETED", oracle_metrics(cv)
    if status == "COMPLETED":
        metrics = {name: {"direction": (direction if name == objective else
                                        "min" if name.endswith("loss") else "max"),
                          "observations": [{"value": [float(v)], "step": 0}]}
                   for name, v in mean.items() if v is not None}
    score = mean.get(objective) if status == "COMPLETED" else None
    return {"trial_id": cv["trial_id"], "hyperparameters": {"space": space, "values": values},
            "metrics": {"metrics": metrics}, "score": score,
            "best_step": 0 if score is not None else None, "status": status,
            "message": cv.get("reason")}


def repair_project(family_dir: Path, warn: Callable[[str], None] | None = None) -> list[str]:
    """Repairs damaged KerasTuner files of one project before KerasTuner reloads it.

    * ``tuner0.json`` (``Tuner.get_state()`` is always ``{}``) is rewritten as ``{}``;
    * ``oracle.json`` is restored from ``oracle.json.bak`` (written beside it by every save);
    * ``trial_<id>/trial.json`` is rebuilt from the trial's ``cv.json``.

    Args:
        family_dir: ``run_dir/<family>``.
        warn: where to say what was repaired (default stderr).

    Returns:
        The repaired files.

    Raises:
        SearchError: a damaged file the records cannot rebuild, naming it and what to do.
    """
    family_dir = Path(family_dir)
    if not family_dir.is_dir():
        return []
    repaired: list[str] = []
    tuner_files = sorted(family_dir.glob("tuner*.json"))
    for path in tuner_files:
        if _load(path) is None:
            write_text_atomic(path, "{}")
            repaired.append(str(path))
            _say(warn, f"{path} was damaged; rewritten (KerasTuner's Tuner keeps no state in "
                       "it: it is always {})")
    oracle = family_dir / "oracle.json"
    state = _load(oracle)
    if state is None and (oracle.exists() or tuner_files):
        backup = _load(family_dir / ORACLE_BACKUP)
        if backup is None:
            what = "is damaged" if oracle.exists() else "is missing"
            raise SearchError(
                f"{oracle} {what} and there is no intact copy ({ORACLE_BACKUP}) to restore it "
                f"from: it holds KerasTuner's search state, which the trial records cannot "
                f"rebuild. The finished trials' records (trial_*/cv.json, fold<k>.json) are "
                f"still in {family_dir}. Fix: restore {oracle.name} from a backup and rerun the "
                f"same command to resume; or keep this run folder for `leaderboard` and start a "
                f"new search with another --run-dir (or --overwrite, which deletes it).")
        write_text_atomic(oracle, json.dumps(backup))
        state = backup
        repaired.append(str(oracle))
        _say(warn, f"{oracle} was damaged or missing; restored from {ORACLE_BACKUP}")
    space = ((state or {}).get("hyperparameters") or {}).get("space")
    for path in sorted(family_dir.glob("trial_*/trial.json")):
        if _load(path) is not None:
            continue
        cv = _load(path.with_name("cv.json"))
        if not isinstance(cv, dict) or "hyperparameters" not in cv or space is None:
            raise SearchError(
                f"{path} is damaged and cannot be rebuilt: its trial has no readable cv.json "
                f"(the trial never started training, so no result is lost). Fix: restore that "
                f"file from a backup and rerun the same command; or keep this run folder for "
                f"`leaderboard` and start a new search with another --run-dir.")
        write_text_atomic(path, json.dumps(trial_state_from_cv(cv, space)))
        repaired.append(str(path))
        _say(warn, f"{path} was damaged; rebuilt from cv.json (status {cv.get('status')})")
    return repaired
