"""Leaderboard: trial folders -> one row per trial, in the spirit of scikit-learn's ``cv_results_``.

Reads only JSON files (``run.json``, ``cv.json``, ``fold<k>.json``, KerasTuner's ``trial.json``),
never Keras, so it is fast and works while a search is still writing and after ``kill -9``: a
missing or half-written file is skipped with a note instead of failing the whole table.

Pure logic (:func:`trials_to_rows`) is kept apart from IO (:func:`collect_trials`,
:func:`rows_to_csv`, ...).
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
from pathlib import Path
from typing import Any

from results.errors import ResultsError
from results.leaderboard_formats import (  # noqa: F401  (re-exported: the leaderboard's writers)
    WRITERS, format_table, rows_to_csv, rows_to_json, rows_to_markdown)

FAMILIES = ("cnn", "ann")
COMPLETED, FAILED, RUNNING = "COMPLETED", "FAILED", "RUNNING"
_FOLD_FILE = re.compile(r"^fold(\d+)\.json$")
# Keys of a cv.json fold entry that are bookkeeping, not metrics.
_FOLD_META = {"fold", "best_epoch", "epochs_trained", "initial_epoch", "fit_seconds", "seed",
              "n_params"}
# Logged by the learning-rate schedule callback into the history; a setting, not a score.
_NOT_METRICS = {"learning_rate", "lr"}


def read_json(path: Path, notes: list[str] | None = None) -> Any | None:
    """Reads a JSON file; a missing or half-written file gives None (and a note when unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        if notes is not None:
            notes.append(f"skipped {path}: {err}")
        return None
    try:
        return json.loads(text)
    except ValueError:
        # A writer killed mid-write leaves a truncated file; the rest of the run is still usable.
        if notes is not None:
            notes.append(f"skipped {path}: not valid JSON (half-written?)")
        return None


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """Returns run.json (``{}`` when missing or unreadable)."""
    data = read_json(Path(run_dir) / "run.json")
    return data if isinstance(data, dict) else {}


def run_objective(run_dir: str | Path) -> tuple[str, str]:
    """The run's objective and direction from run.json, else from any cv.json, else val_auc/max."""
    config = load_run_config(run_dir).get("config", {}) or {}
    if config.get("objective"):
        return str(config["objective"]), str(config.get("direction") or "max")
    for cv_path in sorted(Path(run_dir).glob("*/trial_*/cv.json")):
        cv = read_json(cv_path)
        if isinstance(cv, dict) and cv.get("objective"):
            return str(cv["objective"]), str(cv.get("direction") or "max")
    return "val_auc", "max"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else
    return True


def _search_active(run_dir: Path) -> bool:
    """True when a search holds the run folder's lock.

    A lock left by a killed search (``kill -9`` cannot clean up) on this host names a dead pid
    and does not count; a lock from another host (distributed workers) is trusted.
    """
    host = socket.gethostname()
    for lock in run_dir.glob(".lock*"):
        data = read_json(lock)
        if not isinstance(data, dict):
            return True  # being written right now, or unreadable: assume a live search
        pid = data.get("pid")
        if data.get("host") == host and isinstance(pid, int) and not _pid_alive(pid):
            continue
        return True
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fold_from_file(data: dict[str, Any]) -> dict[str, Any]:
    """A fold<k>.json payload -> a cv.json-style fold entry (metrics at the best epoch)."""
    entry: dict[str, Any] = {"fold": data.get("fold")}
    best = data.get("best") or {}
    if not best and isinstance(data.get("history"), dict) and data.get("best_epoch") is not None:
        # best_epoch is 1-based and counts from the trial's first epoch (search/fold_fit.py).
        idx = int(data["best_epoch"]) - int(data.get("initial_epoch") or 0) - 1
        best = {k: v[idx] for k, v in data["history"].items()
                if isinstance(v, list) and 0 <= idx < len(v)}
    entry.update({k: v for k, v in best.items() if _is_number(v)})
    for key in ("best_epoch", "epochs_trained"):
        if data.get(key) is not None:
            entry[key] = data[key]
    return entry


def _mean_std(folds: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Fold means and population standard deviations of every metric (numpy's default, ddof=0)."""
    keys = sorted({k for f in folds for k in f if k not in _FOLD_META and _is_number(f[k])})
    mean, std = {}, {}
    for key in keys:
        vals = [f[key] for f in folds if _is_number(f.get(key))]
        m = sum(vals) / len(vals)
        mean[key] = m
        std[key] = (sum((v - m) ** 2 for v in vals) / len(vals)) ** 0.5
    return mean, std


def _kt_values(trial_state: dict[str, Any] | None) -> dict[str, Any]:
    if not isinstance(trial_state, dict):
        return {}
    hps = trial_state.get("hyperparameters") or {}
    values = hps.get("values") if isinstance(hps, dict) else None
    return dict(values) if isinstance(values, dict) else {}


def read_trial(trial_dir: Path, family: str, *, search_active: bool = False,
               notes: list[str] | None = None) -> dict[str, Any] | None:
    """Reads one ``trial_<id>`` folder into a normalised trial record (None when nothing is readable).

    The record has the cv.json keys (trial_id, family, status, objective, direction, mean, std,
    folds, n_params, duration_s, diagnosis, reason, hyperparameters) plus ``path``. cv.json is
    authoritative when present and finished; otherwise the record is rebuilt from the fold files
    and KerasTuner's trial.json, so unfinished and interrupted trials still show their progress.
    """
    notes = notes if notes is not None else []
    trial_id = trial_dir.name.removeprefix("trial_")
    cv = read_json(trial_dir / "cv.json", notes)
    state = read_json(trial_dir / "trial.json", notes)
    fold_files = sorted((int(m.group(1)), p) for p in trial_dir.iterdir()
                        if (m := _FOLD_FILE.match(p.name)))
    if not isinstance(cv, dict) and not isinstance(state, dict) and not fold_files:
        notes.append(f"skipped {trial_dir}: no readable trial.json, cv.json or fold files")
        return None

    record: dict[str, Any] = {
        "trial_id": trial_id, "family": family, "status": None, "objective": None,
        "direction": None, "mean": {}, "std": {}, "folds": [], "n_params": None,
        "duration_s": None, "diagnosis": None, "reason": None, "hyperparameters": {},
        "path": str(trial_dir)}
    values = _kt_values(state)
    record["hyperparameters"] = {k: v for k, v in values.items()}
    if isinstance(cv, dict):
        for key in record:
            if key in cv and cv[key] is not None and key != "path":
                record[key] = cv[key]
        # KerasTuner's own values keep the tuner/* keys; trials_to_rows drops them.
        record["hyperparameters"] = {**(cv.get("hyperparameters") or {}), **values}
        record["trial_id"] = str(cv.get("trial_id") or trial_id)

    kt_status = state.get("status") if isinstance(state, dict) else None
    cv_status = record["status"] if isinstance(cv, dict) else None
    if cv_status in (COMPLETED, FAILED):
        status = cv_status
    elif kt_status in ("FAILED", "INVALID"):
        status = FAILED
        record["reason"] = record["reason"] or (state.get("message") or f"KerasTuner status {kt_status}")
    elif kt_status == "COMPLETED":
        # Finished, but cv.json is missing or unreadable: rebuild from the fold files, or fall
        # back to KerasTuner's own score.
        status = COMPLETED
        if not fold_files and not record["folds"]:
            if _is_number(state.get("score")):
                record["kt_score"] = state["score"]
            notes.append(f"{trial_dir}: no cv.json or fold files; using KerasTuner's score")
    else:
        status = RUNNING

    if status == RUNNING or (not record["folds"] and fold_files):
        folds = []
        for _, path in fold_files:
            data = read_json(path, notes)
            if isinstance(data, dict):
                folds.append(_fold_from_file(data))
        if folds:
            record["folds"] = folds
            record["mean"], record["std"] = _mean_std(folds)
    if status == RUNNING:
        done = len(record["folds"])
        where = ("in progress" if search_active
                 else "interrupted (no search holds the run); resuming the search reruns it")
        record["reason"] = f"{where}: {done} fold(s) finished"
    record["status"] = status
    return record


def collect_trials(run_dir: str | Path, family: str = "both", *,
                   notes: list[str] | None = None) -> list[dict[str, Any]]:
    """Reads every trial folder of a run.

    Args:
        run_dir: the run folder (``runs/<name>``).
        family: ``"cnn"``, ``"ann"`` or ``"both"``.
        notes: when given, receives one line per skipped or repaired file.

    Returns:
        Trial records (see :func:`read_trial`), in family then trial-id order.
    """
    run_dir = Path(run_dir)
    families = FAMILIES if family == "both" else (family,)
    active = _search_active(run_dir)
    records = []
    for fam in families:
        fam_dir = run_dir / fam
        if not fam_dir.is_dir():
            continue
        for trial_dir in sorted(p for p in fam_dir.glob("trial_*") if p.is_dir()):
            rec = read_trial(trial_dir, fam, search_active=active, notes=notes)
            if rec is not None:
                records.append(rec)
    return records


def _sort_value(trial: dict[str, Any], objective: str) -> float | None:
    value = (trial.get("mean") or {}).get(objective)
    if value is None:
        value = trial.get("kt_score")
    return float(value) if _is_number(value) else None


def _param_names(trials: list[dict[str, Any]]) -> list[str]:
    """Hyperparameter names in first-seen order, KerasTuner's ``tuner/*`` bookkeeping left out."""
    names: dict[str, None] = {}
    for t in trials:
        for name in (t.get("hyperparameters") or {}):
            if not name.startswith("tuner/"):
                names.setdefault(name, None)
    return list(names)


def trials_to_rows(trials: list[dict[str, Any]], objective: str,
                   direction: str = "max") -> list[dict[str, Any]]:
    """Turns trial records into leaderboard rows (pure; no IO).

    Completed trials are ranked within their model family by the fold mean of ``objective``
    (ties share the lower rank, like scikit-learn's ``rank_test_score``); running and failed
    trials follow, unranked, with their reason. Rows are grouped by family (cnn first).
    Every row has the same columns:
    ``rank, model, trial_id, status, mean_<obj>, std_<obj>, fold<k>_<obj>, mean_<metric>...,
    param_<name>..., n_params, fold<k>_best_epoch..., duration_s, diagnosis, reason``.

    Args:
        trials: records from :func:`collect_trials`.
        objective: the metric to rank by, e.g. ``"val_auc"``.
        direction: ``"max"`` or ``"min"``.
    """
    if direction not in ("max", "min"):
        raise ResultsError(f"direction must be 'max' or 'min', got {direction!r}.")
    n_folds = max((len(t.get("folds") or []) for t in trials), default=0)
    n_folds = max([n_folds] + [int(f["fold"]) + 1 for t in trials for f in t.get("folds") or []
                               if isinstance(f.get("fold"), int)])
    metrics = sorted({m for t in trials for m in (t.get("mean") or {})
                      if m != objective and m not in _NOT_METRICS},
                     key=lambda m: (not m.startswith("val_"), m))
    params = _param_names(trials)

    def row_for(t: dict[str, Any]) -> dict[str, Any]:
        mean, std = t.get("mean") or {}, t.get("std") or {}
        folds = {int(f["fold"]) if isinstance(f.get("fold"), int) else i: f
                 for i, f in enumerate(t.get("folds") or [])}
        row: dict[str, Any] = {"rank": None, "model": t.get("family"),
                               "trial_id": str(t.get("trial_id")), "status": t.get("status"),
                               f"mean_{objective}": _sort_value(t, objective),
                               f"std_{objective}": std.get(objective)}
        for k in range(n_folds):
            row[f"fold{k}_{objective}"] = folds.get(k, {}).get(objective)
        for m in metrics:
            row[f"mean_{m}"] = mean.get(m)
        hps = t.get("hyperparameters") or {}
        for p in params:
            row[f"param_{p}"] = hps.get(p)
        row["n_params"] = t.get("n_params")
        for k in range(n_folds):
            row[f"fold{k}_best_epoch"] = folds.get(k, {}).get("best_epoch")
        row["duration_s"] = t.get("duration_s")
        row["diagnosis"] = t.get("diagnosis")
        row["reason"] = t.get("reason")
        if t.get("status") == COMPLETED and row[f"mean_{objective}"] is None:
            row["reason"] = row["reason"] or f"no {objective} recorded"
        return row

    sign = -1.0 if direction == "max" else 1.0
    out: list[dict[str, Any]] = []
    families = [f for f in FAMILIES if any(t.get("family") == f for t in trials)]
    families += sorted({str(t.get("family")) for t in trials} - set(families))
    for fam in families:
        rows = [row_for(t) for t in trials if t.get("family") == fam]
        ranked = [r for r in rows if r["status"] == COMPLETED and r[f"mean_{objective}"] is not None]
        ranked.sort(key=lambda r: (sign * r[f"mean_{objective}"], r["trial_id"]))
        prev, rank = None, 0
        for i, r in enumerate(ranked, start=1):
            if r[f"mean_{objective}"] != prev:
                rank, prev = i, r[f"mean_{objective}"]
            r["rank"] = rank
        order = {RUNNING: 0, COMPLETED: 1, FAILED: 2}
        rest = sorted((r for r in rows if r["rank"] is None),
                      key=lambda r: (order.get(r["status"], 3), r["trial_id"]))
        out.extend(ranked + rest)
    return out


def select_rows(rows: list[dict[str, Any]], *, top_k: int | None = 10,
                include_all: bool = False) -> list[dict[str, Any]]:
    """Keeps the top ``top_k`` ranked rows per family; ``include_all`` keeps every row."""
    if include_all:
        return list(rows)
    kept = [r for r in rows if r.get("rank") is not None]
    if top_k is None:
        return kept
    counts: dict[str, int] = {}
    out = []
    for r in kept:
        counts[r["model"]] = counts.get(r["model"], 0) + 1
        if counts[r["model"]] <= top_k:
            out.append(r)
    return out


def check_run_dir(run_dir: str | Path) -> Path:
    """Raises ResultsError unless ``run_dir`` looks like a run folder with at least one trial."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(
            f"Run folder {run_dir} does not exist. A leaderboard needs a search first: run "
            f"`run_search.py search --run-dir {run_dir}` (or `run_search.py run`), then retry.")
    if not any((run_dir / fam).glob("trial_*") for fam in FAMILIES):
        what = "run.json but no trial folders yet" if (run_dir / "run.json").exists() else \
            "no run.json and no cnn/ or ann/ trial folders"
        raise ResultsError(
            f"Run folder {run_dir} has {what}, so there is nothing to rank. Start or resume the "
            f"search with `run_search.py search --run-dir {run_dir}` and wait for the first "
            f"trial to finish (or pass the right --run-dir).")
    return run_dir


def build_leaderboard(run_dir: str | Path, family: str = "both", *,
                      objective: str | None = None, direction: str | None = None,
                      notes: list[str] | None = None) -> list[dict[str, Any]]:
    """All rows of a run (ranked, every status); raises ResultsError for an empty run folder."""
    run_dir = check_run_dir(run_dir)
    if family not in ("cnn", "ann", "both"):
        raise ResultsError(f"--model must be cnn, ann or both, got {family!r}.")
    obj, dirn = run_objective(run_dir)
    trials = collect_trials(run_dir, family, notes=notes)
    if not trials:
        raise ResultsError(
            f"Run folder {run_dir} has no readable {family} trials. Run "
            f"`run_search.py search --run-dir {run_dir} --model {family}` first.")
    return trials_to_rows(trials, objective or obj, direction or dirn)


def best_trials(run_dir: str | Path, family: str, n: int = 1) -> list[dict[str, Any]]:
    """The ``n`` best completed trial records of one family, best first (for export)."""
    obj, dirn = run_objective(run_dir)
    trials = [t for t in collect_trials(run_dir, family) if t["status"] == COMPLETED]
    by_id = {t["trial_id"]: t for t in trials}
    rows = [r for r in trials_to_rows(trials, obj, dirn) if r["rank"] is not None]
    return [by_id[r["trial_id"]] for r in rows[:n]]
