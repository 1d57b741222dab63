"""Where in the shipped space do models learn within the epoch budget? (issue 22, item 4)

A one-factor-at-a-time sweep around the space's default on one patient-grouped fold of the real
training folder: each configuration changes one or two hyperparameters of a base configuration
and trains exactly as a search fold does (``search.fit.fold_fit.fit_fold``: the spaces fit, early
stopping on ``val_auc`` with the best weights restored, the fold's seed), then is scored on the
fold's validation images: clean ``val_auc``, the geometric probe (``search.fit.probes``, on
``data_pipeline.shifted_sets``, the search's default objective ``val_auc_geometric``) and the
other probes, the epoch of the restored weights and the median seconds per epoch.

Bases: for the CNN the reference run's default (the notes' basic model with augmentation at
strength 1.0, ``benchmarks/reference_space.toml``), for the ANN the shipped default (the notes'
two dense layers of 128). Data, split and folds are built as ``benchmarks/generalisation.py``
builds them (carved patient-grouped test split, then patient-grouped folds of the rest, seed
42); only fold ``--fold`` is trained. Every figure is one fold, one seed, in-distribution: it
says where a model learns on this folder in a few epochs, never how it generalises.

    python benchmarks/priors_sweep.py --out runs/priors               # the whole grid
    python benchmarks/priors_sweep.py --only cnn_lr_1e-4 --only ann_base
    python benchmarks/priors_sweep.py --family ann --out runs/priors_ann

Writes ``OUT/priors.json`` after every configuration (resumable: a configuration already in it
is not trained again) and ``OUT/priors.csv``, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.generalisation import _hp, _machine  # noqa: E402  (after the path insert)

# The CNN base: the reference space's default, which is the first trial of a reference search.
CNN_BASE: dict[str, Any] = {"augmentation": True, "augmentation_strength": 1.0}
ANN_BASE: dict[str, Any] = {}


def _grid() -> dict[str, tuple[str, dict[str, Any]]]:
    """``name -> (family, overrides on the family's base)``, in the order they are trained.

    Ordered by what the issue suspects most (learning rate, then optimiser), so a run cut short
    by the machine still answers those; the cheap ANN rows come before the slower CNN widths
    and depths. SGD momentum is the space's default 0.9 unless named.
    """
    adam = lambda lr: {"learning_rate": lr}  # noqa: E731
    sgd = lambda lr, m=0.9: {"optimizer": "sgd", "momentum": m, "learning_rate": lr}  # noqa: E731
    rms = lambda lr: {"optimizer": "rmsprop", "learning_rate": lr}  # noqa: E731
    rows = [
        ("cnn_base", "cnn", {}),
        ("cnn_lr_3e-5", "cnn", adam(3e-5)),
        ("cnn_lr_1e-4", "cnn", adam(1e-4)),
        ("cnn_lr_1e-2", "cnn", adam(1e-2)),
        ("cnn_sgd_1e-2", "cnn", sgd(1e-2)),
        ("cnn_sgd_1e-3", "cnn", sgd(1e-3)),
        ("cnn_rmsprop_1e-4", "cnn", rms(1e-4)),
        ("cnn_lr_3e-3", "cnn", adam(3e-3)),
        ("cnn_rmsprop_1e-3", "cnn", rms(1e-3)),
        ("ann_base", "ann", {}),
        ("ann_lr_1e-5", "ann", adam(1e-5)),
        ("ann_lr_1e-4", "ann", adam(1e-4)),
        ("ann_lr_3e-3", "ann", adam(3e-3)),
        ("ann_lr_1e-2", "ann", adam(1e-2)),
        ("ann_sgd_1e-3", "ann", sgd(1e-3)),
        ("ann_sgd_1e-2", "ann", sgd(1e-2)),
        ("ann_rmsprop_1e-4", "ann", rms(1e-4)),
        ("ann_rmsprop_1e-3", "ann", rms(1e-3)),
        ("ann_layers_6", "ann", {"dense_layers": 6}),
        ("ann_units_32", "ann", {"dense_units": 32}),
        ("ann_units_512", "ann", {"dense_units": 512}),
        ("ann_bn_after", "ann", {"dense_batch_norm": "after_activation"}),
        ("cnn_filters_8", "cnn", {"conv_filters": 8}),
        ("cnn_blocks_4", "cnn", {"conv_blocks": 4}),
        ("cnn_lr_1e-5", "cnn", adam(1e-5)),
        ("cnn_lr_3e-4", "cnn", adam(3e-4)),
        ("cnn_sgd_3e-2", "cnn", sgd(3e-2)),
        ("cnn_sgd_1e-2_m0.5", "cnn", sgd(1e-2, 0.5)),
        ("cnn_rmsprop_1e-2", "cnn", rms(1e-2)),
        ("cnn_filters_16", "cnn", {"conv_filters": 16}),
        ("cnn_blocks_3", "cnn", {"conv_blocks": 3}),
        ("cnn_blocks_1", "cnn", {"conv_blocks": 1}),
        ("cnn_bn_after", "cnn", {"conv_batch_norm": "after_activation"}),
        ("cnn_conv_dropout_0.25", "cnn", {"conv_dropout": "every_block",
                                          "conv_dropout_rate": 0.25}),
        ("cnn_dense_dropout_0.5", "cnn", {"dense_dropout": "all", "dense_dropout_rate": 0.5}),
        ("cnn_aug_0.5", "cnn", {"augmentation_strength": 0.5}),
        ("cnn_aug_off", "cnn", {"augmentation": False}),
        ("cnn_gap_head", "cnn", {"head": "global_average"}),
        ("cnn_filters_64", "cnn", {"conv_filters": 64}),
        ("cnn_blocks_3_k5_lr_3e-5", "cnn", {"conv_blocks": 3, "kernel_size": 5,
                                            "learning_rate": 3e-5}),
    ]
    return {name: (family, overrides) for name, family, overrides in rows}


GRID = _grid()


def epoch_timer() -> Any:
    """A Keras callback recording the wall seconds of every epoch in ``.seconds``.

    Built on call because Keras is imported late (after the argument checks).
    """
    import keras

    class _Timer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._t0 = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._t0)

    return _Timer()


def load_fold(data: str, image_size: int, folds: int, fold: int, seed: int) -> dict[str, Any]:
    """The fold's arrays, as the search (and ``generalisation.py``) builds them."""
    import data_pipeline

    ds = data_pipeline.load_dataset(data, image_size=image_size, progress=False)
    split = data_pipeline.split_train_test(ds, seed=seed)
    tr_idx = np.asarray(split.train_idx)
    x, y = ds.x[tr_idx], ds.y[tr_idx]
    tr, va = data_pipeline.make_folds(y, ds.groups[tr_idx], folds, seed)[fold]
    batches = np.asarray([data_pipeline.acquisition_batch(ds.paths[i]) for i in tr_idx])
    return {"x_tr": x[tr], "y_tr": y[tr], "x_va": x[va], "y_va": y[va],
            "shifted": data_pipeline.shifted_sets(x[va]), "batches_va": batches[va],
            "counts": np.bincount(y, minlength=2).tolist()}


def run_one(name: str, family: str, overrides: dict[str, Any], d: dict[str, Any],
            args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Trains configuration ``name`` on the fold as a search fold does, and measures it."""
    import spaces
    from search.fit.fold_fit import fit_fold

    values = {**(CNN_BASE if family == "cnn" else ANN_BASE), **overrides}
    shape = tuple(d["x_tr"].shape[1:])
    cls = spaces.CNNHyperModel if family == "cnn" else spaces.ANNHyperModel
    hm = cls(shape, class_counts=d["counts"])
    hp = _hp(values)
    trial_dir = scratch / name
    trial_dir.mkdir(parents=True, exist_ok=True)
    timer = epoch_timer()
    start = time.monotonic()
    rec = fit_fold(hypermodel=hm, hp=hp, trial_id=name, trial_dir=trial_dir, family_dir=scratch,
                   fold=args.fold, x_tr=d["x_tr"], y_tr=d["y_tr"], x_va=d["x_va"], y_va=d["y_va"],
                   epochs=args.epochs, initial_epoch=0, carry_from=None,
                   objective="val_auc_geometric", direction="max", patience=args.patience,
                   seed=args.seed, extra_callbacks=[timer],
                   probe=(d["shifted"], d["batches_va"]))
    wall = time.monotonic() - start
    shutil.rmtree(trial_dir, ignore_errors=True)  # the weights are not needed, only the figures
    curve = rec["history"]["val_auc"]
    # The first epoch carries tracing and compilation; the median of the rest is the rate.
    steady = timer.seconds[1:] or timer.seconds
    best = rec["best"]
    return {"family": family, "overrides": overrides, "hyperparameters": values,
            "val_auc": best.get("val_auc"), "val_auc_geometric": best.get("val_auc_geometric"),
            "val_auc_border": best.get("val_auc_border"),
            "val_auc_photometric": best.get("val_auc_photometric"),
            "val_auc_robust": best.get("val_auc_robust"),
            "val_auc_curve": [round(v, 4) for v in curve],
            "best_epoch": rec["best_epoch"], "epochs_trained": rec["epochs_trained"],
            "seconds_per_epoch": round(statistics.median(steady), 2),
            "first_epoch_seconds": round(timer.seconds[0], 2),
            "n_params": rec["n_params"], "wall_seconds": round(wall, 1),
            "diagnosis": rec.get("diagnosis")}


CSV_KEYS = ("name", "family", "overrides", "val_auc", "val_auc_geometric", "val_auc_border",
            "val_auc_photometric", "val_auc_robust", "best_epoch", "epochs_trained",
            "seconds_per_epoch", "first_epoch_seconds", "n_params", "wall_seconds")


def write_csv(report: dict[str, Any], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_KEYS, extrasaction="ignore")
        w.writeheader()
        for name, r in report["results"].items():
            w.writerow({**r, "name": name, "overrides": json.dumps(r["overrides"])})


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def table(report: dict[str, Any]) -> str:
    """The Markdown table of every measured configuration, in grid order."""
    head = ["configuration", "change", "val_auc", "geometric", "border", "robust",
            "best epoch / trained", "s/epoch", "params"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, r in report["results"].items():
        change = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "(base)"
        lines.append("| " + " | ".join([
            name, change, _f(r["val_auc"]), _f(r["val_auc_geometric"]), _f(r["val_auc_border"]),
            _f(r["val_auc_robust"]), f"{r['best_epoch']} / {r['epochs_trained']}",
            f"{r['seconds_per_epoch']:.1f}", f"{r['n_params']:,}"]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/chest_xray")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--fold", type=int, default=0, help="the one fold trained (default 0)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--only", action="append", default=None, metavar="NAME",
                        help=f"run only these configurations (default: all of {len(GRID)})")
    parser.add_argument("--family", choices=("cnn", "ann"), default=None,
                        help="run only this family's configurations (default: both)")
    parser.add_argument("--out", default="runs/priors")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only or []) - set(GRID))
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; known: {', '.join(GRID)}")

    import keras

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / "priors.json"
    report = json.loads(out_file.read_text()) if out_file.is_file() else {"results": {}}
    t0 = time.monotonic()
    d = load_fold(args.data, args.image_size, args.folds, args.fold, args.seed)
    report.update({"machine": _machine(), "backend": keras.backend.backend(),
                   "data": str(args.data), "image_size": args.image_size, "folds": args.folds,
                   "fold": args.fold, "epochs": args.epochs, "patience": args.patience,
                   "seed": args.seed, "n_fold_train": int(len(d["y_tr"])),
                   "n_fold_val": int(len(d["y_va"])), "load_seconds": round(time.monotonic() - t0, 1),
                   "cnn_base": CNN_BASE, "ann_base": ANN_BASE})
    scratch = out_dir / "scratch"
    scratch.mkdir(exist_ok=True)
    names = [n for n in (args.only or GRID) if args.family in (None, GRID[n][0])]
    for name in names:
        if name in report["results"]:
            print(f"[priors] {name}: done earlier, kept", flush=True)
            continue
        family, overrides = GRID[name]
        print(f"[priors] {name} ({family}, {overrides or 'base'}) ...", flush=True)
        try:
            res = run_one(name, family, overrides, d, args, scratch)
        except Exception as err:  # a failed configuration (NaN loss) is a result, not a crash
            res = {"family": family, "overrides": overrides, "failed": f"{type(err).__name__}: {err}"}
            print(f"[priors] {name} failed: {res['failed']}", flush=True)
            report.setdefault("failed", {})[name] = res
        else:
            report["results"][name] = res
            print(f"[priors] {name}: val_auc {_f(res['val_auc'])} geometric "
                  f"{_f(res['val_auc_geometric'])} best epoch {res['best_epoch']}/"
                  f"{res['epochs_trained']} {res['seconds_per_epoch']:.1f} s/epoch "
                  f"curve {res['val_auc_curve']}", flush=True)
        out_file.write_text(json.dumps(report, indent=1))
        write_csv(report, out_dir / "priors.csv")
    shutil.rmtree(scratch, ignore_errors=True)
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
