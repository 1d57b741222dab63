"""Fixtures for the results tests: fake-but-realistic run folders built from constructed records.

The run folder follows ARCHITECTURE.md ("Run folder"): ``run.json``, ``split.json`` and one
KerasTuner project per family holding ``trial_<id>/trial.json`` (KerasTuner's own
``Trial.get_state()`` layout), ``cv.json`` and ``fold<k>.json``. Nothing here imports Keras, so
the leaderboard tests stay fast. Other results tests may append fixtures below (append-only).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

FOLDS = 3
OBJECTIVE = "val_auc"
METRICS = ("loss", "accuracy", "auc", "pr_auc", "precision", "recall")


def _kt_space(values: dict[str, Any]) -> list[dict[str, Any]]:
    """KerasTuner's HyperParameters.get_config()['space'] entries for plain values."""
    space = []
    for name, value in values.items():
        if name.startswith("tuner/"):
            continue
        if isinstance(value, bool):
            space.append({"class_name": "Boolean",
                          "config": {"name": name, "default": False, "conditions": []}})
        elif isinstance(value, int):
            space.append({"class_name": "Int", "config": {
                "name": name, "default": value, "conditions": [], "min_value": 1,
                "max_value": 512, "step": 1, "sampling": "linear"}})
        elif isinstance(value, float):
            space.append({"class_name": "Float", "config": {
                "name": name, "default": value, "conditions": [], "min_value": 0.0,
                "max_value": 1.0, "step": None, "sampling": "linear"}})
        else:
            space.append({"class_name": "Choice", "config": {
                "name": name, "default": value, "conditions": [], "values": [value],
                "ordered": False}})
    return space


def kt_trial_state(trial_id: str, values: dict[str, Any], status: str, objective: str,
                   score: float | None, best_step: int = 0,
                   message: str | None = None) -> dict[str, Any]:
    """A trial.json payload in the format of keras_tuner Trial.get_state() (1.4.8)."""
    metrics: dict[str, Any] = {}
    if score is not None:
        metrics[objective] = {"direction": "max",
                              "observations": [{"value": [score], "step": best_step}]}
    return {"trial_id": trial_id,
            "hyperparameters": {"space": _kt_space(values), "values": dict(values)},
            "metrics": {"metrics": metrics}, "score": score, "best_step": best_step,
            "status": status, "message": message}


def _history(base: float, epochs: int, fold: int) -> dict[str, list[float]]:
    """A plausible training history: losses fall, scores rise towards ``base``."""
    hist: dict[str, list[float]] = {}
    for prefix in ("", "val_"):
        gap = 0.0 if prefix else 0.03
        hist[prefix + "loss"] = [round(0.7 * math.exp(-0.3 * e) + gap + 0.01 * fold, 4)
                                 for e in range(epochs)]
        for m in METRICS[1:]:
            hist[prefix + m] = [round(min(0.999, base - gap - 0.1 * math.exp(-0.5 * e)
                                          + 0.005 * fold), 4) for e in range(epochs)]
    return hist


def write_trial(family_dir: Path, trial_id: str, values: dict[str, Any], *,
                status: str = "COMPLETED", fold_scores: list[float] | None = None,
                folds_done: int | None = None, write_cv: bool = True, epochs: int = 4,
                reason: str | None = None, diagnosis: str = "good_fit",
                objective: str = OBJECTIVE, direction: str = "max",
                n_params: int = 12345, duration_s: float = 12.5) -> Path:
    """Writes one trial folder (trial.json, fold<k>.json, cv.json) and returns it.

    Args:
        family_dir: the family's KerasTuner project folder (``run/cnn``).
        trial_id: KerasTuner's trial id, e.g. ``"0003"``.
        values: hyperparameter values (``tuner/*`` keys allowed, as Hyperband writes them).
        status: COMPLETED, FAILED or RUNNING.
        fold_scores: the objective at the best epoch of each fold.
        folds_done: how many fold files to write (default: all for COMPLETED, 0 for FAILED).
        write_cv: False leaves cv.json out (a trial that is still running).
    """
    tdir = family_dir / f"trial_{trial_id}"
    tdir.mkdir(parents=True, exist_ok=True)
    fold_scores = list(fold_scores or [])
    if folds_done is None:
        folds_done = len(fold_scores) if status != "FAILED" else 0
    folds = []
    for k in range(folds_done):
        hist = _history(fold_scores[k], epochs, k)
        best_epoch = epochs - (k % 2)  # 1-based, as search/fit/fold_fit.py writes it
        best = {key: vals[best_epoch - 1] for key, vals in hist.items()}
        best[objective] = fold_scores[k]
        (tdir / f"fold{k}.json").write_text(json.dumps({
            "fold": k, "history": hist, "best_epoch": best_epoch, "initial_epoch": 0,
            "epochs_trained": epochs, "fit_seconds": 3.0 + k, "best": best}))
        folds.append({"fold": k, **best, "best_epoch": best_epoch, "epochs_trained": epochs})
    score = (sum(fold_scores[:folds_done]) / folds_done) if folds_done else None
    kt_status = "RUNNING" if status == "RUNNING" else status
    (tdir / "trial.json").write_text(json.dumps(kt_trial_state(
        trial_id, values, kt_status, objective, score if status == "COMPLETED" else None,
        message=reason if status == "FAILED" else None)))
    if write_cv:
        keys = sorted({k for f in folds for k in f if k not in ("fold", "best_epoch",
                                                                "epochs_trained")})
        mean = {k: sum(f[k] for f in folds) / len(folds) for k in keys} if folds else {}
        std = {k: (sum((f[k] - mean[k]) ** 2 for f in folds) / len(folds)) ** 0.5
               for k in keys} if folds else {}
        (tdir / "cv.json").write_text(json.dumps({
            "trial_id": trial_id, "family": family_dir.name, "status": status,
            "objective": objective, "direction": direction, "mean": mean, "std": std,
            "folds": folds, "n_params": n_params if status != "FAILED" else None,
            "duration_s": duration_s, "diagnosis": diagnosis if status == "COMPLETED" else None,
            "reason": reason,
            "hyperparameters": {k: v for k, v in values.items()
                                if not k.startswith("tuner/")}}))
    return tdir


CNN_TRIALS = [
    # (id, values, fold scores); names follow spaces/default_space.toml
    ("0000", {"conv_blocks": 2, "filter_hierarchy": "increasing", "conv_dropout": "last_block",
              "conv_dropout_rate": 0.2, "conv_batch_norm": "after_activation",
              "optimizer": "adam", "learning_rate": 1e-3, "pooling": "max", "head": "flatten",
              "tuner/epochs": 2, "tuner/initial_epoch": 0, "tuner/bracket": 1,
              "tuner/round": 0},
     [0.90, 0.92, 0.91]),
    ("0001", {"conv_blocks": 3, "filter_hierarchy": "decreasing", "conv_dropout": "every_block",
              "conv_dropout_rate": 0.5, "conv_batch_norm": "none", "optimizer": "sgd",
              "learning_rate": 1e-2, "pooling": "average", "head": "global_average",
              "tuner/epochs": 2},
     [0.80, 0.84, 0.82]),
    ("0002", {"conv_blocks": 1, "filter_hierarchy": "constant", "conv_dropout": "none",
              "conv_batch_norm": "before_activation", "optimizer": "rmsprop",
              "learning_rate": 3e-4, "pooling": "max", "head": "flatten", "tuner/epochs": 2},
     [0.95, 0.94, 0.96]),
    ("0003", {"conv_blocks": 2, "filter_hierarchy": "increasing", "conv_dropout": "last_block",
              "conv_dropout_rate": 0.5, "conv_batch_norm": "after_activation",
              "optimizer": "adam", "learning_rate": 5e-4, "pooling": "max", "head": "flatten",
              "tuner/epochs": 2},
     [0.70, 0.74, 0.72]),
]

ANN_TRIALS = [
    ("0000", {"dense_layers": 3, "dense_hierarchy": "increasing", "dense_dropout": "all",
              "dense_dropout_rate": 0.2, "dense_batch_norm": "none", "optimizer": "adam",
              "learning_rate": 1e-3},
     [0.81, 0.83, 0.82]),
    ("0001", {"dense_layers": 4, "dense_hierarchy": "diamond", "dense_dropout": "all",
              "dense_dropout_rate": 0.5, "dense_batch_norm": "after_activation",
              "optimizer": "sgd", "learning_rate": 1e-2},
     [0.75, 0.77, 0.76]),
    ("0002", {"dense_layers": 2, "dense_hierarchy": "decreasing", "dense_dropout": "all",
              "dense_dropout_rate": 0.5, "dense_batch_norm": "none", "optimizer": "adam",
              "learning_rate": 1e-4},
     [0.86, 0.88, 0.87]),
]


def build_fake_run(root: Path, *, with_running: bool = True, with_failed: bool = True,
                   direction: str = "max", objective: str = OBJECTIVE) -> Path:
    """Builds a run folder with completed CNN and ANN trials plus a failed and a running one."""
    run_dir = root
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps({
        "command": ["run_search.py", "search", "--data", "/tmp/data"],
        "config": {"data": "/tmp/data", "model": "both", "tuner": "hyperband", "folds": FOLDS,
                   "max_trials": 6, "max_epochs": 4, "patience": 2, "time_budget_min": None,
                   "objective": objective, "direction": direction, "image_size": 16,
                   "color_mode": "grayscale", "positive_class": "PNEUMONIA",
                   "space_file": None, "space": {"cnn": {}, "ann": {}}, "seed": 42,
                   "test_fraction": 0.15, "max_params": 2000000},
        "data_fingerprint": "sha256:fake", "class_names": ["NORMAL", "PNEUMONIA"],
        "versions": {"python": "3.11", "keras": "3.15.1", "keras_tuner": "1.4.8",
                     "backend": "tensorflow"},
        "created": "2026-01-01T00:00:00+00:00", "updated": "2026-01-01T01:00:00+00:00",
        "status": "running" if with_running else "completed"}))
    (run_dir / "split.json").write_text(json.dumps({
        "source": "carved", "seed": 42, "test_fraction": 0.15,
        "test_paths": ["train/NORMAL/IM-0001-0001.jpeg", "train/PNEUMONIA/person1_bacteria_1.jpeg"]}))
    for family, trials in (("cnn", CNN_TRIALS), ("ann", ANN_TRIALS)):
        fdir = run_dir / family
        fdir.mkdir(exist_ok=True)
        (fdir / "oracle.json").write_text(json.dumps({"ongoing_trials": {}, "tried_so_far": []}))
        for tid, values, scores in trials:
            write_trial(fdir, tid, values, fold_scores=scores, objective=objective,
                        direction=direction)
    if with_failed:
        write_trial(run_dir / "cnn", "0004", dict(CNN_TRIALS[0][1], conv_blocks=6),
                    status="FAILED", reason="model has 9000000 parameters > max_params 2000000",
                    objective=objective, direction=direction)
    if with_running:
        write_trial(run_dir / "cnn", "0005", dict(CNN_TRIALS[2][1], learning_rate=1e-4),
                    status="RUNNING", fold_scores=[0.97], folds_done=1, write_cv=False,
                    objective=objective, direction=direction)
        (run_dir / ".lock").write_text(json.dumps({"pid": 999999, "host": "elsewhere",
                                                   "started": "2026-01-01T00:00:00",
                                                   "role": "single"}))
    return run_dir


@pytest.fixture
def fake_run_dir(tmp_path: Path) -> Path:
    """A run folder: 4 completed + 1 failed + 1 running CNN trials, 3 completed ANN trials.

    CNN ranking by mean val_auc: 0002 (0.95) > 0000 (0.91) > 0001 (0.82) > 0003 (0.72);
    ANN: 0002 (0.87) > 0000 (0.82) > 0001 (0.76). Objective ``val_auc``, direction ``max``.
    """
    return build_fake_run(tmp_path / "runs" / "fake")


@pytest.fixture
def fake_run_factory(tmp_path: Path):
    """``make(name, **kwargs) -> Path``: builds a fake run folder with options (see build_fake_run)."""

    def make(name: str = "fake2", **kwargs: Any) -> Path:
        return build_fake_run(tmp_path / "runs" / name, **kwargs)

    return make


@pytest.fixture
def trial_writer():
    """The ``write_trial(family_dir, trial_id, values, ...)`` helper, for custom trial folders."""
    return write_trial


# --- export / compare / predict fixtures (appended by the export-compare-predict tests) -------

TINY_VALUES = {
    "cnn": {"conv_blocks": 1, "conv_filters": 8, "dense_layers": 1, "dense_units": 32,
            "batch_size": 16, "learning_rate": 3e-3},
    "ann": {"dense_layers": 1, "dense_units": 16, "batch_size": 16, "learning_rate": 3e-3},
}


def build_tiny_real_run(root: Path, data_root: Path, *, families: tuple[str, ...] = ("cnn", "ann"),
                        image_size: int = 16) -> Path:
    """A run folder over real (synthetic) images with one completed trial per family.

    The trial records are hand-written (no search is run), but the data, the split and the
    space are real, and each fold's weights come from a real one-epoch fit on that fold, so
    ``export`` can retrain real models and average real fold models from it.
    """
    import data_pipeline
    import spaces

    ds = data_pipeline.load_dataset(data_root, image_size=image_size, progress=False,
                                    cache_dir=root / "cache")
    split = data_pipeline.split_train_test(ds, test_fraction=0.25, seed=42)
    run_dir = root / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    data_pipeline.save_split(split, ds, run_dir / "split.json")
    (run_dir / "run.json").write_text(json.dumps({
        "command": ["run_search.py", "search"],
        "config": {"data": str(data_root), "model": "both", "tuner": "random", "folds": 2,
                   "max_trials": 1, "max_epochs": 2, "patience": 2, "time_budget_min": None,
                   "objective": OBJECTIVE, "direction": "max", "image_size": image_size,
                   "color_mode": "grayscale", "positive_class": "PNEUMONIA",
                   "space_file": None, "space": spaces.load_space(None).to_dict(), "seed": 42,
                   "test_fraction": 0.25, "max_params": 2000000},
        "data_fingerprint": ds.fingerprint, "class_names": ds.class_names,
        "versions": {}, "status": "completed"}))
    import keras
    import keras_tuner as kt

    pool = np.asarray(split.train_idx)
    folds = data_pipeline.make_folds(ds.y[pool], ds.groups[pool], 2, 42)
    for family in families:
        trial_dir = write_trial(run_dir / family, "0000", TINY_VALUES[family],
                                fold_scores=[0.8, 0.82], epochs=2)
        hm = spaces.HYPERMODELS[family]((image_size, image_size, 1))
        for k, (tr, va) in enumerate(folds):
            keras.utils.set_random_seed(k)
            hp = kt.HyperParameters()
            hp.values.update(TINY_VALUES[family])
            model = hm.build(hp)
            hm.fit(hp, model, ds.x[pool[tr]], ds.y[pool[tr]],
                   validation_data=(ds.x[pool[va]], ds.y[pool[va]]), epochs=1, seed=k)
            model.save_weights(str(trial_dir / f"fold{k}.weights.h5"))
    return run_dir


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """``build_tiny_real_run`` after ``export_winners`` (both families, rank1). Shared: read only."""
    from results.export import export_winners

    run_dir = build_tiny_real_run(tmp_path_factory.mktemp("exported"), synthetic_root)
    export_winners(run_dir, progress=False)
    return run_dir
