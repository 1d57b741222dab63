"""Exporting one winner: its ensemble (fold models, a fixed top N or a selection) or one
retrained model, with its threshold and everything ``compare`` and ``predict`` need.

An ensemble's threshold is chosen on the out-of-fold predictions of its fold models over all k
validation folds (:mod:`results.ensemble`; ``"source": "out_of_fold_early_stopped"``): those
fold models were early-stopped on the same images, so the promise is optimistic, and
``threshold.json`` says so. A retrained model gets its own threshold, chosen on its scores on
its validation slice (``"source": "slice"``); the fold models' threshold is kept beside it under
``out_of_fold``, for reference only. (The whole flow: ``results/export.py``.)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from results.errors import ResultsError
from results.model_io import chosen_epochs, export_path, read_json, write_json
from results.rebuild import (build_hypermodel, fold_hypermodel, trial_hyperparameters,
                             without_augmentation)
from results.thresholds import select_thresholds

OUT_OF_FOLD = "out_of_fold_early_stopped"  # fold models' scores on their own validation folds
SLICE = "slice"  # the retrained model's scores on its validation slice


@dataclass
class ExportResult:
    """One exported model and the numbers printed for it.

    ``retrained_score`` is the retrained model's score on its validation slice; for an
    ensemble it is the out-of-fold AUC of its fold models (``score_source`` says which).
    """

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
    ensemble: str = "none"
    score_source: str = "slice"
    weights: dict[str, float] | None = None  # a selected ensemble's members and weights


def retrain_and_export(run_dir: Path, run: dict[str, Any], record: dict[str, Any], rank: int,
                       dataset: Any, train_idx: np.ndarray, *, target_sensitivity: float = 0.95,
                       verbose: int = 0, ensemble: str = "folds",
                       members: list[dict[str, Any]] | None = None,
                       single: bool = False, selection: Any = None) -> ExportResult:
    """Exports one trial (or an ensemble led by it) and writes its folder (module docstring).

    Args:
        run_dir: the run folder.
        run: its run.json content.
        record: the trial record (:func:`results.trials.read_trial`).
        rank: the export's rank within its family (``exports/<family>/rank<k>``).
        dataset: the run's dataset; ``train_idx`` indexes its training pool.
        train_idx: the run's training pool (the test split is never touched).
        target_sensitivity: the sensitivity the exported threshold must reach on the
            out-of-fold predictions.
        verbose: Keras fit verbosity.
        ensemble: ``"folds"`` (average ``record``'s fold models), ``"top"`` (average the fold
            models of ``members``) or ``"none"`` (retrain one model).
        members: the trial records of a ``"top"`` or ``"select"`` ensemble, ``record`` first.
        selection: a ``"select"`` ensemble's :class:`results.selection.Selection` (weights in
            ``members``' order; written to ``ensemble.json``).
        single: write to ``rank<k>_single`` (the retrained model exported beside an ensemble).
    """
    import keras

    from results.ensemble import (average_models, load_fold_models, oof_scores, run_folds,
                                  threshold_spread, weighted_average_models)
    from results.selection import family_objective, to_json
    from search.fit.probes import auc
    from search.store.run_folder import versions

    if ensemble not in ("select", "folds", "top", "none"):
        raise ResultsError(f"--ensemble must be select, none, folds or top N; got {ensemble!r}.")
    if ensemble == "select" and (selection is None or not members):
        raise ResultsError("--ensemble select needs the selection and its members.")
    cfg = run["config"]
    family, seed = record["family"], int(cfg.get("seed", 42))
    objective, direction = family_objective(cfg, family, record)
    y_pool, g_pool = dataset.y[train_idx], dataset.groups[train_idx]
    x_pool = dataset.x[train_idx]
    input_shape = tuple(dataset.x.shape[1:])
    n_classes = len(dataset.class_names)

    keras.utils.set_random_seed(seed)
    trials = members if ensemble in ("top", "select") and members else [record]
    weights = ([selection.weights[str(t["trial_id"])] for t in trials]
               if ensemble == "select" else None)
    same_data = not run.get("data_fingerprint") or run["data_fingerprint"] == dataset.fingerprint
    if ensemble != "none" and not same_data:
        raise ResultsError(
            f"the data in {cfg.get('data')} changed since the search, so its folds cannot be "
            "rebuilt exactly: fold models would be scored on images they trained on. Point the "
            "run at its original data, or export one retrained model with --ensemble none.")
    oof_thresholds, oof_auc, fold_models = None, float("nan"), []
    if same_data:
        folds = run_folds(run, y_pool, g_pool)
        fold_hm = fold_hypermodel(family, cfg, input_shape, y_pool, n_classes)
        try:
            fold_models = [load_fold_models(t, fold_hm, trial_hyperparameters(t), len(folds),
                                            name=f"trial{t['trial_id']}") for t in trials]
        except ResultsError:
            if ensemble != "none":
                raise
        if fold_models:
            oof = oof_scores(fold_models, x_pool, folds, weights=weights)
            seen = np.isfinite(oof)
            oof_thresholds = select_thresholds(y_pool[seen], oof[seen], target_sensitivity)
            n_members = len(fold_models)
            oof_thresholds.update(
                rule=f"highest threshold reaching sensitivity >= {target_sensitivity} on the "
                     f"out-of-fold predictions of the fold models ({len(folds)} fold(s), "
                     f"{int(seen.sum())} images)",
                source=OUT_OF_FOLD,
                scores=_oof_scores_text([str(t["trial_id"]) for t in trials], weights),
                members_per_score=n_members,
                optimistic=True,
                spread=threshold_spread(y_pool, oof, folds, oof_thresholds["threshold"],
                                        target_sensitivity))
            oof_auc = auc(y_pool[seen], oof[seen])
    hp = trial_hyperparameters(record)
    epochs = chosen_epochs(record)
    start = time.monotonic()
    if ensemble == "none":
        model, hist, slice_info = _retrain(run, record, dataset, train_idx, hp, epochs,
                                           objective, direction, target_sensitivity, verbose)
        # The retrained model's own scores: the fold models were trained on less data for
        # other epoch counts and score on another scale, so their threshold is not its own.
        # Theirs is kept for reference only.
        thresholds = dict(
            slice_info["thresholds"], source=SLICE, optimistic=True,
            note=(f"chosen on this retrained model's own scores on its validation slice "
                  f"({slice_info['metadata']['n_validation']} images, patient-grouped, never "
                  "trained on); the slice also chose when early stopping restored its weights, "
                  "so the sensitivity it promises is somewhat optimistic"),
            out_of_fold=oof_thresholds)
        scores, retrained = slice_info["scores"], slice_info["retrained"]
        score_source = "slice"
    else:
        thresholds = oof_thresholds
        thresholds["note"] = (
            "out-of-fold, but not independent of training: each fold model was early-stopped "
            "and restored on the very validation images that score it here, so the "
            "out-of-fold AUC and the sensitivity promised are optimistic."
            + (" The exported model averages every fold model of its member(s), and k - 1 of "
               "every k trained on each of these images, so no score of the ensemble itself "
               "is out of fold; an average of models spreads less than one model, so check "
               "the operating point on data from the site where it will be used."
               if len(folds) > 1 else ""))
        if ensemble == "select":
            model = weighted_average_models(fold_models, weights, input_shape,
                                            name=f"{family}_ensemble")
        else:
            members_flat = [m for ms in fold_models for m in ms]
            model = average_models(members_flat, input_shape, name=f"{family}_ensemble")
        scores, retrained, score_source = {"oof_auc": oof_auc}, oof_auc, "out_of_fold"
        # The learning curves shown for an ensemble are its first fold model's.
        fold0 = read_json(Path(record["path"]) / "fold0.json") if (
            Path(record["path"]) / "fold0.json").is_file() else {}
        hist = dict((fold0 or {}).get("history") or {})
    fit_seconds = time.monotonic() - start

    out = export_path(run_dir, family, rank, single=single)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    values = {k: v for k, v in hp.values.items() if not k.startswith("tuner/")}
    write_json(out / "hyperparameters.json", {"values": values, "keras_tuner": hp.get_config()})
    write_json(out / "threshold.json", thresholds)
    if ensemble == "select":
        write_json(out / "ensemble.json", to_json(selection))
    elif (out / "ensemble.json").exists():
        (out / "ensemble.json").unlink()  # a stale selection must not describe another export
    epochs_run = len(hist.get("loss", [])) if ensemble == "none" else epochs
    write_json(out / "history.json", {"history": hist, "epochs_planned": epochs,
                                      "history_of": "the retrained model" if ensemble == "none"
                                      else f"fold 0 of trial {record['trial_id']}",
                                      "epochs_run": epochs_run,
                                      "stopped_early": epochs_run < epochs,
                                      "fit_seconds": fit_seconds})
    metadata = {
        "family": family, "rank": rank, "trial_id": record["trial_id"],
        "class_names": list(dataset.class_names), "positive_class": dataset.positive_class,
        "image_size": int(dataset.image_size), "color_mode": dataset.color_mode,
        "input_shape": list(input_shape), "backend": keras.backend.backend(),
        "versions": versions(), "data": str(cfg.get("data")),
        "data_fingerprint": dataset.fingerprint, "seed": seed,
        "target_sensitivity": float(target_sensitivity),
        "objective": objective, "direction": direction,
        "ensemble": {"kind": ensemble, "members": [str(t["trial_id"]) for t in trials],
                     "n_models": len(trials) * len(folds) if ensemble != "none" else 1,
                     **({"weights": weights, "selected_on": selection.selected_on,
                         "fallback": selection.fallback, "file": "ensemble.json"}
                        if ensemble == "select" else {})},
        "threshold_source": thresholds["source"], "oof_auc": oof_auc,
        "cv": {"mean": record.get("mean"), "std": record.get("std"),
               "folds": record.get("folds")},
        "retrained": {("validation_" if ensemble == "none" else "") + k: float(v)
                      for k, v in scores.items()},
        "n_params": int(model.count_params()), "epochs": epochs,
        "run_dir": str(Path(run_dir).resolve()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if ensemble == "none":
        metadata.update(slice_info["metadata"])
    write_json(out / "metadata.json", metadata)
    cv_mean = (record.get("mean") or {}).get(objective, record.get("kt_score"))
    return ExportResult(family=family, rank=rank, trial_id=str(record["trial_id"]), path=out,
                        objective=objective if ensemble == "none" else "oof_auc",
                        cv_mean=float(cv_mean) if cv_mean is not None else math.nan,
                        cv_std=float((record.get("std") or {}).get(objective, float("nan"))),
                        retrained_score=float(retrained), epochs=epochs, epochs_run=epochs_run,
                        threshold=float(thresholds["threshold"]),
                        n_params=int(model.count_params()), ensemble=ensemble,
                        score_source=score_source,
                        weights=selection.weights if ensemble == "select" else None)


def _oof_scores_text(trial_ids: list[str], weights: list[float] | None = None) -> str:
    """threshold.json's ``scores``: which models scored each image of the out-of-fold set."""
    which = (f"fold k's model of trial {trial_ids[0]}" if len(trial_ids) == 1 else
             f"the average of fold k's models of the {len(trial_ids)} trials "
             f"({', '.join(trial_ids)})" if weights is None else
             "the weighted average of fold k's models of the selected trials ("
             + ", ".join(f"{t} x {w:.3f}" for t, w in zip(trial_ids, weights)) + ")")
    return (f"each image scored by {which}, where k is the fold whose validation images hold "
            "it: the part of the export that never trained on it")


def _retrain(run: dict[str, Any], record: dict[str, Any], dataset: Any, train_idx: np.ndarray,
             hp: Any, epochs: int, objective: str, direction: str, target_sensitivity: float,
             verbose: int) -> tuple[Any, dict[str, list[float]], dict[str, Any]]:
    """One model on the pool minus a grouped validation slice, early-stopped on the slice."""
    import keras

    import data_pipeline
    from search.fit.probes import epoch_metric

    cfg = run["config"]
    seed = int(cfg.get("seed", 42))
    y_pool, g_pool = dataset.y[train_idx], dataset.groups[train_idx]
    (fit_rel, val_rel), = data_pipeline.make_folds(y_pool, g_pool, 1, seed)
    fit_idx, val_idx = train_idx[fit_rel], train_idx[val_rel]
    x_fit, y_fit = dataset.x[fit_idx], dataset.y[fit_idx]
    x_val, y_val = dataset.x[val_idx], dataset.y[val_idx]
    keras.utils.set_random_seed(seed)
    hypermodel = build_hypermodel(record["family"], cfg, tuple(dataset.x.shape[1:]), y_fit,
                             len(dataset.class_names))
    model = hypermodel.build(hp)
    monitor = epoch_metric(objective)  # a probe objective is not a per-epoch metric
    stop = keras.callbacks.EarlyStopping(monitor=monitor, mode=direction,
                                         patience=int(cfg.get("patience") or 3),
                                         restore_best_weights=True)
    history = hypermodel.fit(hp, model, x_fit, y_fit, validation_data=(x_val, y_val),
                             epochs=epochs, callbacks=[stop], verbose=verbose, seed=seed)
    model = without_augmentation(hypermodel, hp, model)
    scores = model.evaluate(x_val.astype(np.float32), y_val, verbose=0, return_dict=True)
    retrained = float(scores.get(monitor.removeprefix("val_"), float("nan")))
    prob_val = np.asarray(model.predict(x_val.astype(np.float32), verbose=0)).reshape(-1)
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    return model, hist, {
        "scores": scores, "retrained": retrained,
        "thresholds": select_thresholds(y_val, prob_val, target_sensitivity),
        "metadata": {"n_fit": int(fit_idx.size), "n_validation": int(val_idx.size),
                     "validation_paths": [dataset.paths[i] for i in val_idx]}}
