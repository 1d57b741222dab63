"""Trial folders -> normalised trial records, read from JSON only (never Keras).

A missing or half-written file (a search still writing, or one killed with ``kill -9``) is skipped
with a note instead of failing the whole run. :mod:`results.leaderboard` ranks these records and
re-exports the public names here.
"""

from __future__ import annotations

import math
import re
import socket
from pathlib import Path
from typing import Any

from search.store.fold_records import best_epoch_index, fold_mean_std
from search.store.files import read_json as _read_json
from spaces import FAMILIES

COMPLETED, FAILED, RUNNING = "COMPLETED", "FAILED", "RUNNING"
# Stopped by the ladder (search.schedule.ladder) or a cost rule (search.schedule.cost, censored):
# partial scores, never ranked or exported.
PRUNED = "PRUNED"
# Waits at a ladder rung for peers (search.schedule.ladder, "Suspension"): a rung's score, not
# ranked or exported until a resumed search finishes it.
SUSPENDED = "SUSPENDED"
_FOLD_FILE = re.compile(r"^fold(\d+)\.json$")
# Keys of a cv.json fold entry that are bookkeeping, not metrics.
_FOLD_META = {"fold", "best_epoch", "epochs_trained", "initial_epoch", "fit_seconds", "seed",
              "probe_seconds",
              "n_params"}


def read_json(path: Path, notes: list[str] | None = None) -> Any | None:
    """Reads a JSON file; a missing or half-written file gives None (and a note when unreadable)."""
    return _read_json(path, lambda p, err: _skip(p, err, notes))


def _skip(path: Path, err: Exception, notes: list[str] | None) -> None:
    if notes is not None:
        # A writer killed mid-write leaves a truncated file; the rest of the run is still usable.
        why = err if isinstance(err, OSError) else "not valid JSON (half-written?)"
        notes.append(f"skipped {path}: {why}")


def search_active(run_dir: str | Path) -> bool:
    """True when a live search holds the run folder (its ``.lock``, or a worker's ``.lock.<id>``).

    On this host the OS lock says it (:func:`search.store.lock.is_held`), so the lock file left
    behind
    by a search killed with ``kill -9`` does not count. A lock record written by another host
    (distributed workers on shared storage) cannot be probed from here and is trusted.
    """
    from search.store.lock import is_held, read_lock

    host = socket.gethostname()
    for lock in Path(run_dir).glob(".lock*"):
        if is_held(lock):
            return True
        record = read_lock(lock)
        if isinstance(record, dict) and record.get("host") not in (None, host):
            return True
    return False


def is_number(value: Any) -> bool:
    """True for a finite int or float (not a bool): a usable metric value."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fold_from_file(data: dict[str, Any]) -> dict[str, Any]:
    """A fold<k>.json payload -> a cv.json-style fold entry (metrics at the best epoch)."""
    entry: dict[str, Any] = {"fold": data.get("fold")}
    best = data.get("best") or {}
    if not best and isinstance(data.get("history"), dict):
        idx = best_epoch_index(data)
        if idx is not None:
            best = {k: v[idx] for k, v in data["history"].items()
                    if isinstance(v, list) and 0 <= idx < len(v)}
    entry.update({k: v for k, v in best.items() if is_number(v)})
    for key in ("best_epoch", "epochs_trained"):
        if data.get(key) is not None:
            entry[key] = data[key]
    return entry


def _mean_std(folds: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Fold means and population standard deviations of every metric (numpy's default, ddof=0)."""
    return fold_mean_std([{k: v for k, v in f.items() if k not in _FOLD_META and is_number(v)}
                          for f in folds])


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
    if cv_status in (COMPLETED, FAILED, PRUNED, SUSPENDED):
        status = cv_status
    elif kt_status in ("FAILED", "INVALID"):
        status = FAILED
        record["reason"] = record["reason"] or (state.get("message") or f"KerasTuner status {kt_status}")
    elif cv_status == RUNNING:
        # A configuration resumed from a ladder rung and then cut (by the budget, a kill):
        # KerasTuner's trial.json still holds the rung's score from when it waited there, but
        # cv.json, written at every rung and fold, says it is unfinished (and resumable).
        status = RUNNING
    elif kt_status == "COMPLETED":
        # Finished, but cv.json is missing or unreadable: rebuild from the fold files, or fall
        # back to KerasTuner's own score.
        status = COMPLETED
        if not fold_files and not record["folds"]:
            if is_number(state.get("score")):
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


def _round_of(trial: dict[str, Any]) -> int:
    round_num = (trial.get("hyperparameters") or {}).get("tuner/round")
    return int(round_num) if isinstance(round_num, (int, float)) else 0


def group_rounds(trials: list[dict[str, Any]], pick: str = "latest") -> list[dict[str, Any]]:
    """One record per configuration: the Hyperband rounds of a configuration collapsed.

    A configuration promoted through Hyperband rounds is one trial per round (each continues
    the previous one's weights, ``tuner/trial_id``). Trials of the other tuners are their own
    configuration.

    Args:
        trials: Records from :func:`collect_trials`.
        pick: ``latest``: the configuration's last round when it was pruned or failed (the
            row shows that status, so the configuration is neither ranked nor exported: its
            earlier, shorter round is not what it became), otherwise its latest completed
            round (a round still running leaves it at the one before; its latest round when
            none completed), the leaderboard's and export's row; ``first``: its first round,
            the budget every configuration had (``analyze`` compares like budgets).

    Returns:
        The picked records, in the input order, each with ``rounds`` (how many rounds the
        configuration ran), ``configuration`` (the first round's trial id) and ``epochs`` (the
        picked round's epochs per fold; None for tuners without rounds).
    """
    by_key = {(t.get("family"), str(t.get("trial_id"))): t for t in trials}

    def root(t: dict[str, Any]) -> str:
        seen = set()
        while True:
            past = (t.get("hyperparameters") or {}).get("tuner/trial_id")
            key = (t.get("family"), str(past))
            if not past or key not in by_key or key in seen:
                return str(t.get("trial_id"))
            seen.add(key)
            t = by_key[key]

    groups: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for t in trials:
        groups.setdefault((t.get("family"), root(t)), []).append(t)
    picked: dict[tuple[Any, str], dict[str, Any]] = {}
    for (family, first_id), members in groups.items():
        members = sorted(members, key=_round_of)
        if pick == "first":
            chosen = members[0]
        else:
            done = [m for m in members if m.get("status") == COMPLETED]
            last = members[-1]
            chosen = last if last.get("status") in (PRUNED, FAILED) else (done or members)[-1]
        epochs = (chosen.get("hyperparameters") or {}).get("tuner/epochs")
        picked[(family, str(chosen.get("trial_id")))] = {
            **chosen, "rounds": len(members), "configuration": first_id, "epochs": epochs}
    keys = ((t.get("family"), str(t.get("trial_id"))) for t in trials)
    return [picked[k] for k in keys if k in picked]


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
    active = search_active(run_dir)
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


def is_run_folder(path: Path) -> bool:
    """True for a folder a search wrote: run.json, or a family folder of trials."""
    return path.is_dir() and ((path / "run.json").is_file()
                              or any((path / fam).is_dir() for fam in FAMILIES))


def other_runs_hint(run_dir: str | Path, limit: int = 10) -> str:
    """A sentence naming the run folders beside a missing ``run_dir`` (e.g. the default
    ``runs/default`` when the user's run is ``runs/quickstart``), for error messages."""
    parent = Path(run_dir).parent
    try:
        runs = sorted(p for p in parent.iterdir() if p != Path(run_dir) and is_run_folder(p))
    except OSError:
        return ""
    if not runs:
        return f" There are no run folders under {parent}/."
    shown = ", ".join(str(p) for p in runs[:limit]) + (", ..." if len(runs) > limit else "")
    return (f" Run folders under {parent}/: {shown}; pass one with --run-dir "
            f"(e.g. --run-dir {runs[-1]}).")
