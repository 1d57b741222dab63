"""Leaderboard: trial folders -> one row per trial, in the spirit of scikit-learn's ``cv_results_``.

Reads only JSON files (``run.json``, ``cv.json``, ``fold<k>.json``, KerasTuner's ``trial.json``),
never Keras, so it is fast and works while a search is still writing and after ``kill -9``: a
missing or half-written file is skipped with a note instead of failing the whole table.

Pure logic (:func:`trials_to_rows`) is kept apart from IO (:func:`collect_trials` in
:mod:`results.trials`, :func:`rows_to_csv`, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from results.errors import ResultsError
from results.leaderboard_formats import (  # noqa: F401  (re-exported: the leaderboard's writers)
    WRITERS, format_table, rows_to_csv, rows_to_json, rows_to_markdown)
# Trial reading lives in results/trials.py; re-exported so `results.leaderboard` keeps its names.
from results.trials import (  # noqa: F401
    COMPLETED, FAILED, FAMILIES, PRUNED, RUNNING, SUSPENDED, collect_trials, group_rounds, is_number,
    other_runs_hint, read_json, read_trial, search_active)

# Logged by the learning-rate schedule callback into the history; a setting, not a score.
_NOT_METRICS = {"learning_rate", "lr"}


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """Returns run.json, or ``{}`` when it is missing or unreadable (the tolerant form of
    :func:`results.model_io.load_run`, which raises instead)."""
    from results.model_io import load_run

    try:
        data = load_run(Path(run_dir))
    except (ResultsError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def run_objective(run_dir: str | Path, family: str | None = None) -> tuple[str, str]:
    """The run's objective and direction from run.json, else from any cv.json, else val_auc/max.

    With ``family``: that family's own objective when ``--objective auto`` gave each family
    one (run.json ``config.objectives``).
    """
    config = load_run_config(run_dir).get("config", {}) or {}
    per_family = config.get("objectives") or {}
    if family in per_family:
        from spaces.metrics import objective_direction

        return str(per_family[family]), objective_direction(str(per_family[family]))
    if config.get("objective"):
        return str(config["objective"]), str(config.get("direction") or "max")
    for cv_path in sorted(Path(run_dir).glob("*/trial_*/cv.json")):
        cv = read_json(cv_path)
        if isinstance(cv, dict) and cv.get("objective"):
            return str(cv["objective"]), str(cv.get("direction") or "max")
    return "val_auc", "max"


def _sort_value(trial: dict[str, Any], objective: str) -> float | None:
    value = (trial.get("mean") or {}).get(objective)
    if value is None:
        value = trial.get("kt_score")
    return float(value) if is_number(value) else None


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
    (ties share the lower rank, like scikit-learn's ``rank_test_score``); running, pruned and
    failed trials follow, unranked, with their reason. Rows are grouped by family (cnn first).
    Every row has the same columns:
    ``rank, model, trial_id, status, mean_<obj>, std_<obj>, fold<k>_<obj>, mean_<metric>...,
    param_<name>..., rounds, epochs, n_params, fold<k>_best_epoch..., duration_s, diagnosis, reason``.

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
        # Hyperband rounds of this configuration (group_rounds; 1 for other tuners) and the
        # epochs per fold of the round shown.
        row["rounds"], row["epochs"] = t.get("rounds", 1), t.get("epochs")
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
        order = {RUNNING: 0, COMPLETED: 1, SUSPENDED: 2, PRUNED: 3, FAILED: 4}
        rest = sorted((r for r in rows if r["rank"] is None),
                      key=lambda r: (order.get(r["status"], 3), r["trial_id"]))
        out.extend(ranked + rest)
    return out


def select_rows(rows: list[dict[str, Any]], *, top_k: int | None = 10,
                include_all: bool = False) -> list[dict[str, Any]]:
    """Keeps the top ``top_k`` ranked rows per family (all of them when ``top_k`` is None);
    ``include_all`` also keeps every unranked (running, failed) row, in the rows' order."""
    counts: dict[str, int] = {}
    out = []
    for r in rows:
        if r.get("rank") is None:
            if include_all:
                out.append(r)
            continue
        counts[r["model"]] = counts.get(r["model"], 0) + 1
        if top_k is None or counts[r["model"]] <= top_k:
            out.append(r)
    return out


def check_run_dir(run_dir: str | Path) -> Path:
    """Raises ResultsError unless ``run_dir`` looks like a run folder with at least one trial."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(
            f"Run folder {run_dir} does not exist.{other_runs_hint(run_dir)} A new run needs a "
            f"search first: `run_search.py search --run-dir {run_dir}` (or `run_search.py "
            f"run`).")
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
                      notes: list[str] | None = None, rounds: str = "latest"
                      ) -> list[dict[str, Any]]:
    """One row per configuration (ranked, every status); raises ResultsError for an empty run
    folder.

    Args:
        rounds: Which Hyperband round is a configuration's row (:func:`group_rounds`):
            ``latest`` (the leaderboard, export) or ``first`` (like budgets, for ``analyze``);
            ``all``: one row per trial.
    """
    run_dir = check_run_dir(run_dir)
    if family not in ("cnn", "ann", "transfer", "both"):
        raise ResultsError(f"--model must be cnn, ann, transfer or both, got {family!r}.")
    obj, dirn = run_objective(run_dir)
    trials = collect_trials(run_dir, family, notes=notes)
    if not trials:
        searched = (load_run_config(run_dir).get("config") or {}).get("model")
        families = {"both": ("cnn", "ann")}.get(searched, (searched,))
        if searched and family != "both" and family not in families:
            # Resuming this folder with another --model is refused (one configuration per
            # run folder), so do not suggest it.
            raise ResultsError(
                f"Run folder {run_dir} searched --model {searched}, so it has no {family} "
                f"trials. Use --model {searched}, or search {family} in a new run folder: "
                f"`run_search.py search --model {family} --run-dir runs/<new name>`.")
        raise ResultsError(
            f"Run folder {run_dir} has no readable {family} trials. Run "
            f"`run_search.py search --run-dir {run_dir} --model {family}` first.")
    if rounds != "all":
        trials = group_rounds(trials, rounds)
    if objective is None:  # each family ranked by its own objective (--objective auto)
        rows = []
        present = {str(t.get("family")) for t in trials}
        for fam in [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES)):
            f_obj, f_dir = run_objective(run_dir, fam)
            rows += trials_to_rows([t for t in trials if str(t.get("family")) == fam],
                                   f_obj, direction or f_dir)
        return rows
    return trials_to_rows(trials, objective, direction or dirn)


def best_trials(run_dir: str | Path, family: str, n: int = 1) -> list[dict[str, Any]]:
    """The ``n`` best completed configurations of one family, best first (for export): each
    configuration's latest completed Hyperband round; a configuration whose last round was
    pruned or failed, and pruned trials, are left out (:func:`group_rounds`)."""
    obj, dirn = run_objective(run_dir, family)
    trials = [t for t in group_rounds(collect_trials(run_dir, family))
              if t["status"] == COMPLETED]
    by_id = {t["trial_id"]: t for t in trials}
    rows = [r for r in trials_to_rows(trials, obj, dirn) if r["rank"] is not None]
    return [by_id[r["trial_id"]] for r in rows[:n]]
