"""Fold models of finished trials: out-of-fold predictions, thresholds and averaged ensembles.

Every fold of a trial saved its best weights (``fold<k>.weights.h5``), and every trial of a run
shares the same patient-grouped folds (``make_folds(y[train_idx], groups[train_idx], k, seed)``).
So without any retraining:

- each training image has an out-of-fold score: the score of the fold model that did not train
  on it (averaged over the trials of a top-N ensemble), which picks a decision threshold on all
  k validation folds instead of one small slice (the per-fold spread of that threshold is
  recorded too). It is not independent of training: each fold model was early-stopped and
  restored on those same validation images, so the out-of-fold AUC and the sensitivity the
  threshold promises are optimistic (``threshold.json`` says so:
  ``"source": "out_of_fold_early_stopped"``);
- the k fold models of a trial (``--ensemble folds``), or of the top N trials
  (``--ensemble top N``), average into one Keras model that takes raw pixels like any export;
- ``--ensemble select`` (the default) weights the fold ensembles of the configurations that
  Caruana's greedy selection picked from the search's out-of-fold files
  (:func:`family_selection`, ``results/selection.py``): the export's output is
  ``sum_i w_i * mean_k fold_model_ik(x)`` (:func:`weighted_average_models`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from results.errors import ResultsError
from results.thresholds import operating_point, threshold_for_sensitivity
from search.fit.probes import predict_scores


def run_folds(run: dict[str, Any], y_pool: np.ndarray, g_pool: np.ndarray
              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The search's folds over the training pool, rebuilt from run.json (same k and seed)."""
    import data_pipeline

    cfg = run["config"]
    return data_pipeline.make_folds(y_pool, g_pool, int(cfg.get("folds") or 3),
                                    int(cfg.get("seed", 42)))


def load_fold_models(record: dict[str, Any], hypermodel: Any, hp: Any, n_folds: int,
                     name: str | None = None) -> list[Any]:
    """One model per fold of ``record``'s trial, with that fold's best weights.

    Raises:
        ResultsError: a fold's weights are missing (the trial did not finish every fold).
    """
    import keras

    from search.fit.fold_fit import fold_weights

    models = []
    for k in range(n_folds):
        path = fold_weights(Path(record["path"]), k)
        if not path.is_file():
            raise ResultsError(
                f"{path} is missing, so trial {record['trial_id']} has no model for fold {k}; "
                "an ensemble or out-of-fold threshold needs every fold. Resume the search to "
                "finish the trial, or export with --ensemble none.")
        model = hypermodel.build(hp)
        with warnings.catch_warnings():
            # The file also holds the fold's optimizer slots; a model that only predicts has
            # none, so Keras skips them and warns (the weights themselves load). Only that
            # warning: any other says the rebuilt graph is not the fold's.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer",
                                    category=UserWarning)
            model.load_weights(str(path))
        # A uniquely named functional copy, so k of them nest in one ensemble model.
        models.append(keras.Model(model.inputs, model.outputs[0],
                                  name=f"{name or 'trial' + str(record['trial_id'])}_fold{k}"))
    return models


def oof_scores(models_per_trial: list[list[Any]], x: np.ndarray,
               folds: list[tuple[np.ndarray, np.ndarray]],
               weights: list[float] | None = None) -> np.ndarray:
    """Out-of-fold scores: fold k's model(s) on fold k's validation images, averaged over trials.

    Args:
        models_per_trial: for each trial, its fold models in fold order.
        x: the training pool's images (the folds index it).
        folds: the run's folds.
        weights: one weight per trial (summing to 1) for a weighted average; None: equal.

    Returns:
        ``(len(x),)`` scores; NaN for images in no validation fold (k = 1 hold-out).
    """
    out = np.full(len(x), np.nan)
    for k, (_, va) in enumerate(folds):
        out[va] = np.average([predict_scores(models[k], x[va]) for models in models_per_trial],
                             axis=0, weights=weights)
    return out


def threshold_spread(y: np.ndarray, scores: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                     threshold: float, target: float) -> dict[str, Any]:
    """How the out-of-fold threshold varies by fold.

    Returns:
        ``{"per_fold": [{"fold", "threshold" (that fold's own), "sensitivity", "specificity"
        (of the pooled threshold on that fold)}], "threshold_min/max", "specificity_min/max"}``.
    """
    rows = []
    for k, (_, va) in enumerate(folds):
        yk, sk = y[va], scores[va]
        if yk.min() == yk.max():
            continue
        point = operating_point(yk, sk, threshold)
        rows.append({"fold": k, "threshold": threshold_for_sensitivity(yk, sk, target),
                     "sensitivity": point["sensitivity"], "specificity": point["specificity"]})
    ts = [r["threshold"] for r in rows]
    spec = [r["specificity"] for r in rows]
    return {"per_fold": rows,
            "threshold_min": min(ts) if ts else None, "threshold_max": max(ts) if ts else None,
            "specificity_min": min(spec) if spec else None,
            "specificity_max": max(spec) if spec else None}


def average_models(members: list[Any], input_shape: tuple[int, ...], name: str) -> Any:
    """One Keras model whose output is the mean of ``members``' sigmoid outputs."""
    import keras

    if len(members) == 1:
        return members[0]
    inputs = keras.Input(shape=input_shape, name="image")
    outputs = keras.layers.Average(name="average")([m(inputs) for m in members])
    return keras.Model(inputs, outputs, name=name)


def weighted_average_models(groups: list[list[Any]], weights: list[float],
                            input_shape: tuple[int, ...], name: str) -> Any:
    """One Keras model whose output is ``sum_i weights[i] * mean(groups[i]'s outputs)``.

    Built from stock layers only (``Average``, ``Rescaling``, ``Add``), so the saved model
    loads without custom objects. One group of weight 1 is that group's plain average.
    """
    import keras

    if len(groups) == 1:
        return average_models(groups[0], input_shape, name)
    inputs = keras.Input(shape=input_shape, name="image")
    parts = []
    for i, (members, w) in enumerate(zip(groups, weights)):
        out = [m(inputs) for m in members]
        mean = out[0] if len(out) == 1 else keras.layers.Average(name=f"member{i}_average")(out)
        parts.append(keras.layers.Rescaling(float(w), name=f"member{i}_weight")(mean))
    return keras.Model(inputs, keras.layers.Add(name="weighted_sum")(parts), name=name)


def distinct_configurations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records with a hyperparameter set not seen earlier in the list (best first kept).

    A configuration promoted through Hyperband rounds is one trial per round; an ensemble of
    "the top N" must not average one configuration with itself.
    """
    seen, out = set(), []
    for r in records:
        key = tuple(sorted((k, repr(v)) for k, v in (r.get("hyperparameters") or {}).items()
                           if not k.startswith("tuner/")))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def family_selection(run_dir: Path, family: str, run: dict[str, Any], *,
                     max_members: int = 5) -> tuple[Any, list[dict[str, Any]]] | None:
    """Caruana's selection over a family's finished configurations, from their OOF files.

    Candidates are the leaderboard's completed, distinct configurations in rank order (ties go
    to the higher-ranked one); the objective is the run's.

    Returns:
        ``(selection, member records in the selection's order)``, or None when the family has
        no completed configuration with out-of-fold files.
    """
    from results.leaderboard import best_trials
    from results.selection import aligned_candidates, caruana_select, file_digests

    cfg = run.get("config") or {}
    n_folds = int(cfg.get("folds") or 3)
    records = distinct_configurations(best_trials(run_dir, family, 10_000))
    cands, excluded = aligned_candidates([(str(r["trial_id"]), Path(r["path"]))
                                          for r in records], n_folds)
    if not cands:
        return None
    from results.selection import family_objective

    objective, direction = family_objective(cfg, family, records[0])
    sel = caruana_select(cands, objective=objective, direction=direction,
                         max_members=max_members)
    sel.excluded = excluded
    by_id = {str(r["trial_id"]): r for r in records}
    sel.files = {t: file_digests(Path(by_id[t]["path"]), n_folds) for t in cands}
    return sel, [by_id[m["trial_id"]] for m in sel.members]
