"""Which validation signal predicts generalisation, measured on the shared data (issue 11).

Trains CNN configurations with patient-grouped k-fold cross-validation exactly as a search fold
does (``spaces`` fit, early stopping on ``val_auc`` with restore), then reports for each one:

- clean CV AUC and every shortcut probe (``search/fit/probes.py``) on each fold's validation images;
- on the carved, patient-grouped test split (same folder, so still in-distribution: it is not
  evidence of generalisation to another hospital): ROC-AUC of the single fold models and of
  their average (the fold ensemble), the probes on the test images, sensitivity and specificity
  at the threshold chosen on the out-of-fold predictions (target sensitivity 0.95);
- Grad-CAM border attention: the share of heat in the outer 12% frame over test images.

The default configurations are the notes' basic CNN without augmentation (``plain``) and with
the project's augmentation at strength 1.0 (``augmented``), both up to 30 epochs, patience 6.
``--config NAME='{"hp": value, ...}'`` adds configurations (hyperparameter overrides on the
space's defaults; ``_epochs`` and ``_patience`` override the budget); ``--run NAME=RUN_DIR`` adds a
finished search's best CNN trial, evaluated
from its saved fold weights (no retraining), so a search winner is compared on the same terms.

    python benchmarks/generalisation.py --out runs/generalisation
    python benchmarks/generalisation.py --config bn='{"conv_batch_norm": "after_activation"}'

Writes ``OUT/generalisation.json`` and prints a Markdown table. Resumable per configuration
(a finished configuration in the JSON is not trained again).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_CONFIGS = {
    "plain": {},
    "augmented": {"augmentation": True, "augmentation_strength": 1.0},
    # What the former default search handed over (issue 11): the notes' basic model, no
    # augmentation, at most 12 epochs with patience 3 (the reference run's settings).
    "former_default": {"_epochs": 12, "_patience": 3},
}


def _machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu or platform.processor()}, {platform.system()}"


def _hp(values: dict[str, Any]):
    import keras_tuner as kt

    hp = kt.HyperParameters()
    hp.values.update(values)
    return hp


def evaluate_models(models: list[Any], data: dict[str, Any], *, hypermodel=None, hp=None,
                    train: bool, epochs: int, patience: int, seed: int,
                    target_sensitivity: float) -> dict[str, Any]:
    """Trains (or takes) one model per fold and measures it; see the module docstring."""
    import keras

    from results.report.gradcam import GradCamUnavailable, border_share, grad_cam
    from results.thresholds import operating_point, threshold_for_sensitivity
    from search.fit.fold_fit import fold_seed
    from search.fit.probes import auc, predict_scores, probe_scores

    x, y, batches = data["x"], data["y"], data["batches"]
    x_test, y_test = data["x_test"], data["y_test"]
    folds_out, test_probs, oof = [], [], np.full(len(y), np.nan)
    cam_idx = np.random.default_rng(0).permutation(len(x_test))[:data["cam_images"]]
    shares, shares_normal = [], []
    shifted_probs: dict[str, list[np.ndarray]] = {}
    for k, (tr, va) in enumerate(data["folds"]):
        start = time.monotonic()
        if train:
            keras.utils.set_random_seed(fold_seed(seed, k))
            model = hypermodel.build(hp)
            stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience,
                                                 restore_best_weights=True)
            hist = hypermodel.fit(hp, model, x[tr], y[tr], validation_data=(x[va], y[va]),
                                  epochs=epochs, callbacks=[stop], seed=fold_seed(seed, k))
            n_epochs = len(hist.history["loss"])
            best_epoch = int(np.argmax(hist.history["val_auc"])) + 1
        else:
            model, n_epochs, best_epoch = models[k], None, None
        fit_s = time.monotonic() - start
        start = time.monotonic()
        oof[va] = predict_scores(model, x[va])
        probes = probe_scores(model, x[va], y[va], data["shifted"][k], batches[va],
                              clean=oof[va])
        probe_s = time.monotonic() - start
        p_test = predict_scores(model, x_test)
        test_probs.append(p_test)
        single_test = {}
        for name, images in data["shifted_test"].items():
            shifted_probs.setdefault(name, []).append(predict_scores(model, images))
            single_test[f"test_auc_{name}"] = auc(y_test, shifted_probs[name][-1])
        try:
            cams = grad_cam(model, x_test[cam_idx]).heatmaps
            share = border_share(cams)
            shares.append(float(np.nanmean(share)))
            shares_normal.append(float(np.nanmean(share[y_test[cam_idx] == 0])))
        except GradCamUnavailable:
            pass
        folds_out.append({"fold": k, "val_auc": auc(y[va], oof[va]), **probes,
                          "epochs_trained": n_epochs, "best_epoch": best_epoch,
                          "fit_seconds": round(fit_s, 2), "probe_seconds": round(probe_s, 2),
                          "test_auc": auc(y_test, p_test), **single_test})
        del model
        keras.backend.clear_session()
    ens = np.mean(test_probs, axis=0)
    t = threshold_for_sensitivity(y, oof, target_sensitivity)
    point = operating_point(y_test, ens, t)
    # The ensemble's AUC on the shifted test images (same shifts as the validation probes).
    ens_probe = {f"test_auc_{name}": auc(y_test, np.mean(p, axis=0))
                 for name, p in shifted_probs.items()}
    mean = {key: float(np.nanmean([f[key] for f in folds_out if f.get(key) is not None]))
            for key in folds_out[0] if key not in ("fold", "epochs_trained", "best_epoch")}
    # Single fold model vs the fold ensemble, at the same out-of-fold threshold.
    single_points = [operating_point(y_test, p, t) for p in test_probs]
    return {"folds": folds_out, "mean": mean, "oof_threshold": t,
            "test_specificity_single_mean": float(np.mean([p["specificity"]
                                                           for p in single_points])),
            "test_sensitivity_single_mean": float(np.mean([p["sensitivity"]
                                                           for p in single_points])),
            "test_auc_ensemble": auc(y_test, ens),
            "test_auc_single_mean": float(np.mean([f["test_auc"] for f in folds_out])),
            "test_sensitivity": point["sensitivity"], "test_specificity": point["specificity"],
            "test_accuracy": float(np.mean((ens >= t) == (y_test == 1))),
            "border_share": float(np.mean(shares)) if shares else None,
            "border_share_normal": float(np.mean(shares_normal)) if shares_normal else None,
            **ens_probe}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/chest_xray")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cam-images", type=int, default=150)
    parser.add_argument("--config", action="append", default=[], metavar="NAME=JSON")
    parser.add_argument("--run", action="append", default=[], metavar="NAME=RUN_DIR")
    parser.add_argument("--only", action="append", default=None, metavar="NAME",
                        help="run only these configurations (default: all)")
    parser.add_argument("--out", default="runs/generalisation")
    args = parser.parse_args(argv)

    import keras

    import data_pipeline
    import spaces

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / "generalisation.json"
    report = json.loads(out_file.read_text()) if out_file.is_file() else {"results": {}}
    configs = dict(DEFAULT_CONFIGS)
    for item in args.config:
        name, _, js = item.partition("=")
        configs[name] = json.loads(js)
    runs = dict(item.partition("=")[::2] for item in args.run)
    wanted = args.only or [*configs, *runs]

    ds = data_pipeline.load_dataset(args.data, image_size=args.image_size, progress=False)
    split = data_pipeline.split_train_test(ds, seed=args.seed)
    tr_idx, te_idx = np.asarray(split.train_idx), np.asarray(split.test_idx)
    x, y = ds.x[tr_idx], ds.y[tr_idx]
    folds = data_pipeline.make_folds(y, ds.groups[tr_idx], args.folds, args.seed)
    data = {"x": x, "y": y, "folds": folds, "x_test": ds.x[te_idx], "y_test": ds.y[te_idx],
            "batches": np.asarray([data_pipeline.acquisition_batch(ds.paths[i]) for i in tr_idx]),
            "cam_images": args.cam_images}
    start = time.monotonic()
    data["shifted"] = [data_pipeline.shifted_sets(x[va]) for _, va in folds]
    data["shifted_test"] = data_pipeline.shifted_sets(data["x_test"])
    report["shift_seconds"] = round(time.monotonic() - start, 2)
    report.update({"machine": _machine(), "backend": keras.backend.backend(),
                   "data": str(args.data), "image_size": args.image_size, "folds": args.folds,
                   "epochs": args.epochs, "patience": args.patience, "seed": args.seed,
                   "n_train": int(tr_idx.size), "n_test": int(te_idx.size),
                   "test": "carved patient-grouped split of the same folder (in-distribution)"})
    counts = np.bincount(y, minlength=2).tolist()
    for name in wanted:
        if name in report["results"]:
            print(f"[generalisation] {name}: done earlier, kept", flush=True)
            continue
        print(f"[generalisation] {name} ...", flush=True)
        t0 = time.monotonic()
        if name in configs:
            hm = spaces.CNNHyperModel(tuple(x.shape[1:]), class_counts=counts)
            values = {k: v for k, v in configs[name].items() if not k.startswith("_")}
            res = evaluate_models([], data, hypermodel=hm, hp=_hp(values), train=True,
                                  epochs=int(configs[name].get("_epochs", args.epochs)),
                                  patience=int(configs[name].get("_patience", args.patience)),
                                  seed=args.seed, target_sensitivity=0.95)
            res["hyperparameters"] = configs[name]
        else:
            res = _evaluate_run(runs[name], data, args)
        res["seconds"] = round(time.monotonic() - t0, 1)
        report["results"][name] = res
        out_file.write_text(json.dumps(report, indent=1))
        print(_row(name, res), flush=True)
    print(table(report))
    return 0


def _evaluate_run(run_dir: str, data: dict[str, Any], args) -> dict[str, Any]:
    """The run's best CNN trial, from its saved fold weights."""
    from results.rebuild import trial_hyperparameters, build_hypermodel
    from results.leaderboard import best_trials
    from results.model_io import load_run
    from search.fit.fold_fit import fold_weights

    run = load_run(Path(run_dir))
    cfg = run["config"]
    if (int(cfg["image_size"]), int(cfg.get("folds", 3)), int(cfg.get("seed", 42)),
            float(cfg.get("test_fraction", 0.15)), Path(cfg["data"]).resolve()) != (
            args.image_size, args.folds, args.seed, 0.15, Path(args.data).resolve()):
        # Other folds or another split: its fold models would be scored on images they saw.
        raise SystemExit(f"{run_dir} was searched on other data, image size, folds, seed or "
                         "test fraction than this benchmark; its fold models cannot be scored "
                         "on this benchmark's folds and test split")
    record = best_trials(Path(run_dir), "cnn", 1)[0]
    hp = trial_hyperparameters(record)
    hm = build_hypermodel("cnn", cfg, tuple(data["x"].shape[1:]), data["y"], 2)
    models = []
    for k in range(len(data["folds"])):
        model = hm.build(hp)
        model.load_weights(str(fold_weights(Path(record["path"]), k)))
        models.append(model)
    res = evaluate_models(models, data, train=False, epochs=0, patience=0, seed=args.seed,
                          target_sensitivity=0.95)
    res["hyperparameters"] = record.get("hyperparameters")
    res["trial_id"] = record["trial_id"]
    return res


COLUMNS = ("val_auc", "val_auc_border", "val_auc_photometric", "val_auc_geometric",
           "val_auc_batch", "val_auc_robust")


def _row(name: str, r: dict[str, Any]) -> str:
    m = r["mean"]
    cells = [name] + [f"{m.get(c, float('nan')):.4f}" for c in COLUMNS] + [
        f"{r['test_auc_single_mean']:.4f}", f"{r['test_auc_ensemble']:.4f}",
        f"{r['test_sensitivity']:.3f}", f"{r['test_specificity']:.3f}",
        "-" if r.get("border_share") is None else f"{r['border_share']:.3f}",
        f"{m.get('fit_seconds', 0):.0f}", f"{m.get('probe_seconds', 0):.1f}"]
    return "| " + " | ".join(cells) + " |"


def table(report: dict[str, Any]) -> str:
    head = (["model"] + [c.replace("val_auc_", "cv ") if c != "val_auc" else "cv clean"
                         for c in COLUMNS]
            + ["test AUC (single)", "test AUC (fold ensemble)", "test sens", "test spec",
               "border heat", "fit s/fold", "probe s/fold"])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += [_row(n, r) for n, r in report["results"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
