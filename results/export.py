"""Retraining and exporting each family's winners.

Winners are the leaderboard's ranking (:func:`results.leaderboard.best_trials`), so ``export``,
``run`` and the leaderboard always agree on rank 1. A winner is retrained on the whole training
pool (the run's ``train_idx``) minus one patient-grouped, stratified validation slice
(``make_folds(..., k=1, seed)``), for the number of epochs cross-validation chose: the median
best epoch over the folds (``best_epoch`` counts from 1, so it is the epoch count itself; see
:func:`results.model_io.chosen_epochs`), with early stopping on the slice as a guard. The slice
then picks the decision threshold (never the test split: its class mix differs). Because the
slice also drove early stopping, the retrained score measured on it is optimistic; the
cross-validation score is the honest estimate. Everything a later ``compare`` or ``predict``
needs is written next to the model.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from results.errors import ResultsError
from results.model_io import (FAMILIES, chosen_epochs, export_path, load_run, read_json,
                              write_json)
from results.thresholds import select_thresholds


@dataclass
class ExportResult:
    """One exported model and the numbers printed for it."""

    family: str
    rank: int
    trial_id: str
    path: Path
    objective: str
    cv_mean: float
    cv_std: float
    retrained_score: float
    epochs: int
    epochs_run: int
    threshold: float
    n_params: int


def load_run_data(run_dir: Path, run: dict[str, Any], *, progress: bool = True) -> tuple[Any, Any]:
    """The run's dataset and its recorded test split, loaded as the search loaded them.

    Raises:
        ResultsError: no split.json (the search never got past loading the data).
    """
    import data_pipeline

    cfg = run["config"]
    split_file = Path(run_dir) / "split.json"
    if not split_file.is_file():
        raise ResultsError(f"{run_dir} has no split.json: the search did not get as far as "
                           f"splitting the data. Run `run_search.py search --run-dir {run_dir}` "
                           "first.")
    dataset = data_pipeline.load_dataset(cfg["data"], image_size=int(cfg["image_size"]),
                                         color_mode=cfg["color_mode"],
                                         positive_class=cfg.get("positive_class"),
                                         progress=progress)
    if run.get("class_names") and list(run["class_names"]) != list(dataset.class_names):
        raise ResultsError(f"the data in {cfg['data']} now has classes {dataset.class_names}, "
                           f"but the run {run_dir} was searched on {run['class_names']}; "
                           "point the run at its original data.")
    if run.get("data_fingerprint") and run["data_fingerprint"] != dataset.fingerprint:
        print(f"warning: the data in {cfg['data']} changed since the search (fingerprint "
              "differs); the recorded split is reused by file name.", file=sys.stderr)
    return dataset, data_pipeline.load_split(split_file, dataset)


def _hyperparameters(record: dict[str, Any]) -> Any:
    """The trial's ``kt.HyperParameters``: from KerasTuner's trial.json, else from cv.json."""
    import keras_tuner as kt

    trial_json = Path(record["path"]) / "trial.json"
    if trial_json.is_file():
        state = read_json(trial_json)
        try:
            return kt.HyperParameters.from_config(state["hyperparameters"])
        except Exception:  # noqa: BLE001 - fall back to the plain values below
            pass
    hp = kt.HyperParameters()
    # Pre-set values win over the defaults when build() registers each hyperparameter.
    hp.values.update(record.get("hyperparameters") or {})
    return hp


def _hypermodel(family: str, cfg: dict[str, Any], input_shape: tuple[int, ...],
                y_fit: np.ndarray, num_classes: int) -> Any:
    import spaces

    space = cfg.get("space")
    space_cfg = (spaces.SpaceConfig.from_dict(space) if isinstance(space, dict)
                 and all(f in space for f in spaces.FAMILIES) else spaces.load_space(
                     cfg.get("space_file")))
    counts = np.bincount(y_fit, minlength=num_classes).tolist()
    return spaces.HYPERMODELS[family](
        input_shape=input_shape, num_classes=num_classes,
        class_counts=counts if min(counts) > 0 else None, space=space_cfg,
        max_params=int(cfg.get("max_params") or spaces.DEFAULT_MAX_PARAMS))


def retrain_and_export(run_dir: Path, run: dict[str, Any], record: dict[str, Any], rank: int,
                       dataset: Any, train_idx: np.ndarray, *, target_sensitivity: float = 0.95,
                       verbose: int = 0) -> ExportResult:
    """Retrains one trial's model and writes its export folder (see module docstring).

    Args:
        run_dir: the run folder.
        run: its run.json content.
        record: the trial record (:func:`results.trials.read_trial`).
        rank: the export's rank within its family (``exports/<family>/rank<k>``).
        dataset: the run's dataset; ``train_idx`` indexes its training pool.
        train_idx: the run's training pool (the test split is never touched).
        target_sensitivity: the sensitivity the exported threshold must reach on the slice.
        verbose: Keras fit verbosity.
    """
    import data_pipeline
    import keras

    from search.run_folder import versions

    cfg = run["config"]
    family, seed = record["family"], int(cfg.get("seed", 42))
    objective = cfg.get("objective", record.get("objective", "val_auc"))
    direction = cfg.get("direction", record.get("direction", "max"))
    y_pool, g_pool = dataset.y[train_idx], dataset.groups[train_idx]
    (fit_rel, val_rel), = data_pipeline.make_folds(y_pool, g_pool, 1, seed)
    fit_idx, val_idx = train_idx[fit_rel], train_idx[val_rel]
    x_fit, y_fit = dataset.x[fit_idx], dataset.y[fit_idx]
    x_val, y_val = dataset.x[val_idx], dataset.y[val_idx]

    keras.utils.set_random_seed(seed)
    hp = _hyperparameters(record)
    hypermodel = _hypermodel(family, cfg, tuple(dataset.x.shape[1:]), y_fit,
                             len(dataset.class_names))
    model = hypermodel.build(hp)
    epochs = chosen_epochs(record)
    stop = keras.callbacks.EarlyStopping(monitor=objective, mode=direction,
                                         patience=int(cfg.get("patience") or 3),
                                         restore_best_weights=True)
    start = time.monotonic()
    history = hypermodel.fit(hp, model, x_fit, y_fit, validation_data=(x_val, y_val),
                             epochs=epochs, callbacks=[stop], verbose=verbose, seed=seed)
    fit_seconds = time.monotonic() - start
    scores = model.evaluate(x_val.astype(np.float32), y_val, verbose=0, return_dict=True)
    retrained = float(scores.get(objective.removeprefix("val_"), float("nan")))
    prob_val = np.asarray(model.predict(x_val.astype(np.float32), verbose=0)).reshape(-1)
    thresholds = select_thresholds(y_val, prob_val, target_sensitivity)

    out = export_path(run_dir, family, rank)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    values = {k: v for k, v in hp.values.items() if not k.startswith("tuner/")}
    write_json(out / "hyperparameters.json", {"values": values, "keras_tuner": hp.get_config()})
    write_json(out / "threshold.json", thresholds)
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    write_json(out / "history.json", {"history": hist, "epochs_planned": epochs,
                                      "epochs_run": len(hist.get("loss", [])),
                                      "stopped_early": len(hist.get("loss", [])) < epochs,
                                      "fit_seconds": fit_seconds})
    metadata = {
        "family": family, "rank": rank, "trial_id": record["trial_id"],
        "class_names": list(dataset.class_names), "positive_class": dataset.positive_class,
        "image_size": int(dataset.image_size), "color_mode": dataset.color_mode,
        "input_shape": list(dataset.x.shape[1:]), "backend": keras.backend.backend(),
        "versions": versions(), "data": str(cfg.get("data")),
        "data_fingerprint": dataset.fingerprint, "seed": seed,
        "target_sensitivity": float(target_sensitivity),
        "objective": objective, "direction": direction,
        "cv": {"mean": record.get("mean"), "std": record.get("std"),
               "folds": record.get("folds")},
        "retrained": {"validation_" + k: float(v) for k, v in scores.items()},
        "n_params": int(model.count_params()), "epochs": epochs,
        "n_fit": int(fit_idx.size), "n_validation": int(val_idx.size),
        "validation_paths": [dataset.paths[i] for i in val_idx],
        "run_dir": str(Path(run_dir).resolve()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(out / "metadata.json", metadata)
    cv_mean = (record.get("mean") or {}).get(objective, record.get("kt_score"))
    return ExportResult(family=family, rank=rank, trial_id=str(record["trial_id"]), path=out,
                        objective=objective,
                        cv_mean=float(cv_mean) if cv_mean is not None else math.nan,
                        cv_std=float((record.get("std") or {}).get(objective, float("nan"))),
                        retrained_score=retrained, epochs=epochs,
                        epochs_run=len(hist.get("loss", [])),
                        threshold=float(thresholds["threshold"]),
                        n_params=int(model.count_params()))


def export_winners(run_dir: str | Path, *, model: str = "both", top_n: int = 1,
                   target_sensitivity: float = 0.95, verbose: int = 0,
                   progress: bool = True) -> list[ExportResult]:
    """Retrains and exports the top ``top_n`` trials of each family.

    Args:
        run_dir: the run folder (``runs/<name>``).
        model: ``"cnn"``, ``"ann"`` or ``"both"`` (a family without completed trials is skipped
            with a note when ``"both"``).
        top_n: how many trials per family (rank1 .. rankN).
        target_sensitivity: the sensitivity the exported threshold must reach on the slice.
        verbose: Keras fit verbosity.
        progress: print one line per export.

    Returns:
        One ExportResult per exported model.

    Raises:
        ResultsError: no run folder, no completed trials, or a bad option.
    """
    run_dir = Path(run_dir)
    if model not in ("cnn", "ann", "both"):
        raise ResultsError(f"--model must be cnn, ann or both; got {model!r}.")
    if top_n < 1:
        raise ResultsError(f"--top-n must be at least 1; got {top_n}.")
    from results.leaderboard import best_trials

    run = load_run(run_dir)
    families = FAMILIES if model == "both" else (model,)
    note_live_search(run_dir, "exporting the best trial so far")
    plans = {f: best_trials(run_dir, f, top_n) for f in families}
    if not any(plans.values()):
        raise ResultsError(
            f"{run_dir} has no completed {'/'.join(families)} trials to export yet. Run (or "
            f"resume) the search first: `run_search.py search --run-dir {run_dir}`; "
            f"`run_search.py leaderboard --run-dir {run_dir} --all` shows what is there.")
    if len(run["class_names"] if run.get("class_names") else [0, 1]) != 2:
        raise ResultsError("export supports two-class runs only (one sigmoid output and a "
                           f"decision threshold); this run has classes {run['class_names']}.")
    dataset, split = load_run_data(run_dir, run, progress=progress)
    results = []
    for family in families:
        if not plans[family]:
            print(f"note: no completed {family} trials in {run_dir}; skipping {family}.",
                  file=sys.stderr)
            continue
        for rank, record in enumerate(plans[family], start=1):
            record.setdefault("family", family)
            res = retrain_and_export(run_dir, run, record, rank, dataset,
                                     np.asarray(split.train_idx),
                                     target_sensitivity=target_sensitivity, verbose=verbose)
            results.append(res)
            if progress:
                print(format_result(res), flush=True)
    return results


def format_result(r: ExportResult) -> str:
    """One line: the retrained validation score next to the cross-validation score.

    The retrained score is measured on the validation slice that also drove early stopping (and
    picked the threshold), so it reads optimistic; the line says so.
    """
    return (f"{r.family} rank{r.rank} (trial {r.trial_id}): CV {r.objective} "
            f"{r.cv_mean:.4f} ± {r.cv_std:.4f} | retrained validation {r.objective} "
            f"{r.retrained_score:.4f} (on the slice that also drove early stopping) | "
            f"{r.epochs_run}/{r.epochs} epochs, {r.n_params:,} params, "
            f"threshold {r.threshold:.4f} -> {r.path}")


def note_live_search(run_dir: str | Path, what: str) -> bool:
    """Prints a note to stderr when a search still holds ``run_dir``; returns whether one does.

    Args:
        run_dir: the run folder.
        what: what the caller goes on to do, e.g. ``"exporting the best trial so far"``.
    """
    from results.trials import search_active

    if not search_active(run_dir):
        return False
    print(f"note: a search is still running in {run_dir}; {what} (rerun this command after "
          "the search finishes for its final winners).", file=sys.stderr)
    return True
