"""Exporting each family's winners: a selected ensemble (default) or one retrained model.

``--ensemble select`` (the default) weights the fold ensembles of the configurations Caruana's
greedy selection picks from the search's out-of-fold predictions (``results/selection.py``; at
most ``--ensemble-max-members``, 5 by default; ``ensemble.json`` records members and weights);
with one finished configuration it is that configuration's fold ensemble, and says so.
``--ensemble folds`` averages the winner's k fold models, whose best weights the
search saved, into one model: no retraining. ``--ensemble top N`` averages the fold models of
the N best distinct configurations. ``--ensemble none`` retrains one model as described below.
An ensemble's threshold is chosen on the out-of-fold predictions of its fold models over all
k validation folds (:mod:`results.ensemble`; ``"source": "out_of_fold_early_stopped"``), and
its per-fold spread is recorded in ``threshold.json``. Those fold models were early-stopped and
restored on the same validation images, so the promised sensitivity is optimistic, and
``threshold.json`` says so. A retrained model (``--ensemble none``, ``rank1_single``) gets its
own threshold, chosen on its own scores on its validation slice (``"source": "slice"``); the
fold models' threshold is kept beside it under ``out_of_fold``, for reference only.

Winners are the leaderboard's ranking (:func:`results.leaderboard.best_trials`), so ``export``,
``run`` and the leaderboard always agree on rank 1. A winner is retrained on the whole training
pool (the run's ``train_idx``) minus one patient-grouped, stratified validation slice
(``make_folds(..., k=1, seed)``), for the number of epochs cross-validation chose: the median
best epoch over the folds (``best_epoch`` counts from 1, so it is the epoch count itself; see
:func:`results.model_io.chosen_epochs`), with early stopping on the slice as a guard; its
threshold is chosen on the slice (never the test split: its class mix differs). Because the
slice also drove early stopping, the retrained score and the threshold's promise measured on it
are optimistic; the cross-validation score is the honest estimate. Everything a later
``compare`` or ``predict`` needs is written next to the model.

Fold models are rebuilt by :func:`fold_hypermodel` with the search's graph (a transfer
backbone keeps ImageNet's, imagenet-only layers included) and load their own weights, so an
export scores films exactly as its fold models did. A transfer retrain starts from the run's
``--weights``, checked before any training (:func:`check_retrain_weights`; ``--weights PATH``
for a moved file, :func:`with_weights`), and follows the fine-tuning stages the chosen epoch
count had in the search (spaces/transfer.py).
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

from results.ensemble import distinct_configurations  # noqa: F401  (re-exported)
from results.errors import ResultsError
from results.model_io import (FAMILIES, chosen_epochs, export_path, load_run, read_json,
                              write_json)
from results.retrain_weights import check_retrain_weights, with_weights
from results.thresholds import select_thresholds


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


def with_data(run: dict[str, Any], data: str | Path | None) -> dict[str, Any]:
    """The run record pointed at ``data`` (``--data`` of export and compare), else unchanged.

    For data that moved after the search: the run folder is not rewritten, so pass --data
    again to each later command (or resume the search once with --data, which records it).

    Raises:
        ResultsError: ``data`` is not a folder.
    """
    if data is None:
        return run
    path = Path(data).expanduser()
    if not path.is_dir():
        raise ResultsError(f"--data {path}: no such folder. Give the folder the run's data "
                           "moved to (the chest_xray folder with train/ and its class folders).")
    out = dict(run)
    out["config"] = {**run.get("config", {}), "data": str(path.resolve())}
    return out


def _check_data_folder(run_dir: Path, run: dict[str, Any]) -> None:
    """Refuses a run whose data folder is gone, naming the ways to point it at the new place."""
    data = (run.get("config") or {}).get("data")
    if data and not Path(data).is_dir():
        raise ResultsError(
            f"the data folder of the run {run_dir}, {data}, does not exist any more. If the "
            f"data moved, point the run at it: add --data NEW_PATH to export or compare, or "
            f"resume the search once with `run_search.py search --data NEW_PATH --run-dir "
            f"{run_dir}` and the run's other options (that records the new path; the contents "
            "must be the same files).")


def _same_content(run_dir: Path, dataset: Any) -> tuple[bool, list[str]]:
    """Whether the dataset's files are byte for byte the ones the run recorded (data_files.json);
    (False, []) when the run has no such record."""
    from data_pipeline.content import content_differences

    path = Path(run_dir) / "data_files.json"
    record = read_json(path) if path.is_file() else None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return False, []
    current = dict(zip(dataset.paths, dataset.digests))
    # Files the decoder skipped have no digest here; the record lists them like any other.
    skipped = {path for path, _ in dataset.skipped}
    saved = {p: d for p, d in record["files"].items() if p not in skipped}
    diffs = content_differences(saved, current)
    return not diffs, diffs


def load_run_data(run_dir: Path, run: dict[str, Any], *, progress: bool = True) -> tuple[Any, Any]:
    """The run's dataset and its recorded test split, loaded as the search loaded them.

    When the file list's fingerprint differs (a copy has new timestamps) but every file's bytes
    are those recorded in ``data_files.json``, the data is the run's: the dataset is returned
    under the recorded fingerprint, so fold ensembles are rebuilt as usual.

    Raises:
        ResultsError: no split.json (the search never got past loading the data), or the data
            folder is gone.
    """
    import dataclasses

    import data_pipeline

    cfg = run["config"]
    split_file = Path(run_dir) / "split.json"
    if not split_file.is_file():
        raise ResultsError(f"{run_dir} has no split.json: the search did not get as far as "
                           f"splitting the data. Run `run_search.py search --run-dir {run_dir}` "
                           "first.")
    _check_data_folder(Path(run_dir), run)
    dataset = data_pipeline.load_dataset(cfg["data"], image_size=int(cfg["image_size"]),
                                         color_mode=cfg["color_mode"],
                                         positive_class=cfg.get("positive_class"),
                                         progress=progress)
    if run.get("class_names") and list(run["class_names"]) != list(dataset.class_names):
        raise ResultsError(f"the data in {cfg['data']} now has classes {dataset.class_names}, "
                           f"but the run {run_dir} was searched on {run['class_names']}; "
                           "point the run at its original data (--data).")
    if run.get("data_fingerprint") and run["data_fingerprint"] != dataset.fingerprint:
        same, diffs = _same_content(Path(run_dir), dataset)
        if same:  # identical bytes decode to identical arrays: only names or times changed
            dataset = dataclasses.replace(dataset, fingerprint=run["data_fingerprint"])
        else:
            which = f"; first differing files: {', '.join(diffs)}" if diffs else ""
            print(f"warning: the data in {cfg['data']} changed since the search{which}; the "
                  "recorded split is reused by file name.", file=sys.stderr)
    return dataset, data_pipeline.load_split(split_file, dataset)


def fold_hypermodel(family: str, cfg: dict[str, Any], input_shape: tuple[int, ...],
                    y_pool: np.ndarray, num_classes: int) -> Any:
    """The hypermodel that rebuilds a trial's fold models for export.

    The search's graph without augmentation (its layers are random and hold no weights) and
    without reading pretrained weights: each fold model loads its own ``fold<k>.weights.h5``.
    A transfer backbone keeps ImageNet's graph all the same (spaces/backbones.py), so the
    export computes what the fold model computed (tests/results/test_export_parity.py).
    """
    hm = _hypermodel(family, cfg, input_shape, y_pool, num_classes)
    hm.with_augmentation = False  # exports carry no random layers
    hm.load_pretrained = False
    return hm


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
    """The family's hypermodel as the search built it (a transfer family's with its weights
    and the search's epoch horizon, which fixes its fine-tuning stages)."""
    import spaces

    space = cfg.get("space")
    space_cfg = (spaces.SpaceConfig.from_dict(space) if isinstance(space, dict)
                 and family in space else spaces.load_space(cfg.get("space_file")))
    counts = np.bincount(y_fit, minlength=num_classes).tolist()
    extra: dict[str, Any] = {}
    if family == "transfer":
        from spaces.transfer import resolve_weights

        extra["weights"] = resolve_weights(cfg.get("weights"))
        if cfg.get("max_epochs"):
            extra["max_epochs"] = int(cfg["max_epochs"])
    return spaces.HYPERMODELS[family](
        input_shape=input_shape, num_classes=num_classes,
        class_counts=counts if min(counts) > 0 else None, space=space_cfg,
        max_params=int(cfg.get("max_params")
                       or spaces.budget.default_max_params(int(cfg.get("image_size") or 64))),
        **extra)


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
    from search.probes import auc
    from search.run_folder import versions

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
            fold_models = [load_fold_models(t, fold_hm, _hyperparameters(t), len(folds),
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
    hp = _hyperparameters(record)
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


# threshold.json "source": where the exported threshold was chosen.
OUT_OF_FOLD = "out_of_fold_early_stopped"  # fold models' scores on their own validation folds
SLICE = "slice"  # the retrained model's scores on its validation slice


def without_augmentation(hypermodel: Any, hp: Any, model: Any) -> Any:
    """The same model without its augmentation layers (they hold no weights), for export."""
    if not any(layer.name.startswith("augmentation") for layer in model.layers):
        return model
    hypermodel.with_augmentation = False
    try:
        plain = hypermodel.build(hp)
    finally:
        hypermodel.with_augmentation = True
    for layer in plain.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return plain


def _retrain(run: dict[str, Any], record: dict[str, Any], dataset: Any, train_idx: np.ndarray,
             hp: Any, epochs: int, objective: str, direction: str, target_sensitivity: float,
             verbose: int) -> tuple[Any, dict[str, list[float]], dict[str, Any]]:
    """One model on the pool minus a grouped validation slice, early-stopped on the slice."""
    import data_pipeline
    import keras

    from search.probes import epoch_metric

    cfg = run["config"]
    seed = int(cfg.get("seed", 42))
    y_pool, g_pool = dataset.y[train_idx], dataset.groups[train_idx]
    (fit_rel, val_rel), = data_pipeline.make_folds(y_pool, g_pool, 1, seed)
    fit_idx, val_idx = train_idx[fit_rel], train_idx[val_rel]
    x_fit, y_fit = dataset.x[fit_idx], dataset.y[fit_idx]
    x_val, y_val = dataset.x[val_idx], dataset.y[val_idx]
    keras.utils.set_random_seed(seed)
    hypermodel = _hypermodel(record["family"], cfg, tuple(dataset.x.shape[1:]), y_fit,
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


def parse_ensemble(words: list[str] | str | None) -> tuple[str, int]:
    """``--ensemble`` words -> ``(kind, n)``: ``select`` (the default), ``folds``, ``none``, or
    ``top N`` (N >= 2).

    Raises:
        ResultsError: anything else, naming the accepted forms.
    """
    if words is None:
        return "select", 1
    words = words.split() if isinstance(words, str) else list(words)
    if words in (["select"], ["folds"], ["none"]):
        return words[0], 1
    if len(words) == 2 and words[0] == "top" and words[1].isdigit() and int(words[1]) >= 2:
        return "top", int(words[1])
    raise ResultsError(f"--ensemble {' '.join(words)!r} is not understood: use `--ensemble "
                       "select` (greedy ensemble selection over the finished configurations, "
                       "the default), `--ensemble folds` (average the winner's fold models), "
                       "`--ensemble "
                       "top N` with N >= 2 (average the fold models of the N best distinct "
                       "configurations) or `--ensemble none` (retrain one model).")


def export_winners(run_dir: str | Path, *, model: str = "both", top_n: int = 1,
                   target_sensitivity: float = 0.95, verbose: int = 0,
                   progress: bool = True, ensemble: str | list[str] | None = None,
                   with_single: bool = True, data: str | Path | None = None,
                   weights: str | Path | None = None,
                   max_members: int = 5) -> list[ExportResult]:
    """Exports each family's winner(s) (a selected ensemble by default).

    Args:
        run_dir: the run folder (``runs/<name>``).
        model: ``"cnn"``, ``"ann"`` or ``"both"`` (a family without completed trials is skipped
            with a note when ``"both"``).
        top_n: how many trials per family (rank1 .. rankN).
        target_sensitivity: the sensitivity the exported threshold must reach on the slice.
        verbose: Keras fit verbosity.
        progress: print one line per export.
        ensemble: ``"select"`` (default), ``"folds"``, ``"none"`` or ``"top N"`` (see
            :func:`parse_ensemble`); ``select`` and ``top N`` are exported as rank1 only.
        max_members: the most distinct configurations a ``select`` ensemble may hold
            (``--ensemble-max-members``; 1 exports the single best configuration's folds).
        with_single: with an ensemble, also retrain the rank-1 trial as one model into
            ``rank1_single``, so ``compare`` shows single and ensemble side by side.
        data: the run's data folder when it moved since the search (``--data``); default the
            folder run.json records.
        weights: the transfer run's backbone weights file when it moved since the search
            (``--weights``; matched by sha256, see :func:`with_weights`); default the file
            run.json records. Only a retrained model reads it.

    Returns:
        One ExportResult per exported model.

    Raises:
        ResultsError: no run folder, no completed trials, or a bad option.
    """
    run_dir = Path(run_dir)
    if model not in ("cnn", "ann", "transfer", "both"):
        raise ResultsError(f"--model must be cnn, ann, transfer or both; got {model!r}.")
    if top_n < 1:
        raise ResultsError(f"--top-n must be at least 1; got {top_n}.")
    check_max_members(max_members)
    from results.ensemble import family_selection
    from results.leaderboard import best_trials

    kind, n_members = parse_ensemble(ensemble)
    run = with_weights(with_data(load_run(run_dir), data), weights)
    # both: CNN and ANN (noted when missing), plus transfer when the run searched it.
    families = (tuple(f for f in FAMILIES if f in ("cnn", "ann") or (run_dir / f).is_dir())
                if model == "both" else (model,))
    note_live_search(run_dir, "exporting the best trial so far")
    ranked = {f: best_trials(run_dir, f, 10_000 if kind in ("top", "select") else top_n)
              for f in families}
    members = {f: distinct_configurations(r)[:n_members] for f, r in ranked.items()}
    selections: dict[str, Any] = {}
    kinds = {f: kind for f in families}
    if kind == "select":
        for f in families:
            found = family_selection(run_dir, f, run, max_members=max_members) \
                if ranked[f] else None
            if found is None:
                if ranked[f]:
                    print(f"note: {f}: no out-of-fold predictions on disk (the search predates "
                          "them), so --ensemble select falls back to the winner's fold "
                          "ensemble.", file=sys.stderr)
                kinds[f] = "folds"
                continue
            selections[f], members[f] = found
            if selections[f].fallback:
                print(f"note: {f}: {selections[f].fallback}; --ensemble select has nothing "
                      "to choose from yet.", file=sys.stderr)
    plans = {f: (members[f][:1] if kinds[f] in ("top", "select") else r[:top_n])
             for f, r in ranked.items()}
    if not any(plans.values()):
        raise ResultsError(
            f"{run_dir} has no completed {'/'.join(families)} trials to export yet. Run (or "
            f"resume) the search first: `run_search.py search --run-dir {run_dir}`; "
            f"`run_search.py leaderboard --run-dir {run_dir} --all` shows what is there.")
    if len(run["class_names"] if run.get("class_names") else [0, 1]) != 2:
        raise ResultsError("export supports two-class runs only (one sigmoid output and a "
                           f"decision threshold); this run has classes {run['class_names']}.")
    if "transfer" in plans:  # the retrained model's starting weights, before any training
        retrained = (plans["transfer"] if kind == "none" else
                     plans["transfer"][:1] if with_single else [])
        check_retrain_weights(run, retrained, single=kind != "none")
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
                                     target_sensitivity=target_sensitivity, verbose=verbose,
                                     ensemble=kinds[family], members=members[family],
                                     selection=selections.get(family))
            results.append(res)
            if progress:
                print(format_result(res), flush=True)
            if kind != "none" and with_single and rank == 1:
                res = retrain_and_export(run_dir, run, record, rank, dataset,
                                         np.asarray(split.train_idx),
                                         target_sensitivity=target_sensitivity,
                                         verbose=verbose, ensemble="none", single=True)
                results.append(res)
                if progress:
                    print(format_result(res) + " (single model, for comparison)", flush=True)
    return results


def check_max_members(value: int) -> None:
    """Refuses an ``--ensemble-max-members`` below 1, naming the fix."""
    if not isinstance(value, int) or value < 1:
        raise ResultsError(f"--ensemble-max-members must be a whole number of at least 1; got "
                           f"{value!r}. Use 1 for one configuration (its fold ensemble), or "
                           "the default 5.")


def format_result(r: ExportResult) -> str:
    """One line: the retrained validation score next to the cross-validation score.

    The retrained score is measured on the validation slice that also drove early stopping, so
    it reads optimistic; the line says so. An ensemble shows its fold models' out-of-fold AUC.
    """
    if r.ensemble != "none":
        chosen = ("" if not r.weights else " (" + ", ".join(
            f"trial {t} x {w:.2f}" for t, w in r.weights.items()) + ")")
        return (f"{r.family} rank{r.rank} (trial {r.trial_id}): {r.ensemble} ensemble{chosen}, "
                f"CV mean {r.cv_mean:.4f} ± {r.cv_std:.4f} | out-of-fold AUC "
                f"{r.retrained_score:.4f} | {r.n_params:,} params, threshold {r.threshold:.4f} "
                f"(out-of-fold, early-stopped fold models) -> {r.path}")
    from search.probes import epoch_metric

    return (f"{r.family} rank{r.rank} (trial {r.trial_id}): CV {r.objective} "
            f"{r.cv_mean:.4f} ± {r.cv_std:.4f} | retrained validation "
            f"{epoch_metric(r.objective)} "
            f"{r.retrained_score:.4f} (on the slice that also drove early stopping) | "
            f"{r.epochs_run}/{r.epochs} epochs, {r.n_params:,} params, "
            f"threshold {r.threshold:.4f} (its slice) -> {r.path}")


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
