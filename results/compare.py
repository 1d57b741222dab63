"""The side-by-side CNN vs ANN evaluation of the exported winners on held-out test images.

Flow: load the rank-1 exports (safe mode) -> load the test images (the run's recorded test split,
or a Kaggle-style folder) at the exports' image size and colour mode, refusing mismatches ->
probabilities -> metrics, patient bootstrap intervals, McNemar, latency -> figures, Grad-CAM ->
``metrics.json``, ``metrics.csv``, ``report.md``, ``report.html``. The report text lives in
``results/compare_report.py``.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from results import compare_figures as figs
from results.errors import ResultsError
from results.metrics import SCALAR_METRICS, curves, evaluate, scalar_metrics
from results.model_io import (LoadedExport, check_compatible, check_model_input, find_exports,
                              load_export, load_run, write_json)
from results.stats import bootstrap, mcnemar


def is_synthetic(data_dir: str | Path | None) -> bool:
    """True for the built-in synthetic set (its generator leaves a marker file)."""
    if not data_dir:
        return False
    root = Path(data_dir)
    return (root / ".synthetic-complete").is_file() or "synthetic" in root.name.lower()


def load_test_data(run_dir: Path, run: dict[str, Any], meta: dict[str, Any],
                   test_dir: str | Path | None, progress: bool = True) -> dict[str, Any]:
    """Test images, labels and patient groups at the export's image size and colour mode.

    With ``test_dir``: its ``test/`` images when it has that folder, else all its images.
    Without: the run's recorded test split (``split.json``).

    Raises:
        ResultsError: class names, image size or colour mode differ from the export's.
    """
    import data_pipeline

    export_name = f"the export {meta.get('family', '')} rank{meta.get('rank', 1)}"
    if test_dir is not None:
        test_dir = Path(test_dir)
        if (test_dir / "test").is_dir() and not (test_dir / "train").is_dir():
            test_dir = test_dir / "test"  # a Kaggle folder holding only test/: read it flat
        # Check the class folders before decoding anything: a mismatch names both sets of names.
        found = sorted(data_pipeline.discover(test_dir).class_names)
        if found != sorted(meta["class_names"]):
            check_compatible(meta, class_names=found, source=str(test_dir), export=export_name)
        ds = data_pipeline.load_dataset(test_dir, image_size=int(meta["image_size"]),
                                        color_mode=meta["color_mode"],
                                        positive_class=meta.get("positive_class"),
                                        progress=progress)
        check_compatible(meta, class_names=ds.class_names, source=str(test_dir),
                         export=export_name)
        idx = np.flatnonzero(ds.origin == "test")
        if idx.size == 0:
            idx = np.arange(len(ds.y))
        source = f"{test_dir} ({'its test/ folder' if (ds.origin == 'test').any() else 'all images'})"
        data_dir = test_dir
    else:
        from results.export import load_run_data

        cfg = run["config"]
        check_compatible(meta, class_names=run.get("class_names"),
                         image_size=cfg.get("image_size"), color_mode=cfg.get("color_mode"),
                         source=f"the run {run_dir}", export=export_name)
        ds, split = load_run_data(run_dir, run, progress=progress)
        idx = np.asarray(split.test_idx)
        source = (f"the run's test split ({getattr(split, 'source', 'recorded')}) of "
                  f"{cfg['data']}")
        data_dir = cfg["data"]
    if idx.size == 0:
        raise ResultsError(f"no test images found in {source}; pass --test-dir with a folder "
                           "of class subfolders.")
    return {"x": ds.x[idx], "y": ds.y[idx].astype(int), "groups": ds.groups[idx],
            "paths": [ds.paths[i] for i in idx], "class_names": list(ds.class_names),
            "source": source, "synthetic": is_synthetic(data_dir)}


def probabilities(model: Any, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Positive-class probabilities ``(N,)`` from raw uint8 images."""
    out = model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0)
    return np.asarray(out, dtype=float).reshape(len(x), -1)[:, -1]


def latency_ms(model: Any, x: np.ndarray, batch_size: int = 64, n_single: int = 20) -> dict:
    """Inference latency in ms per image: one image at a time, and in batches (after warm-up)."""
    xf = x.astype(np.float32)
    model.predict_on_batch(xf[:1])  # warm-up: tracing/compilation is not inference time
    n1 = min(n_single, len(xf))
    start = time.perf_counter()
    for i in range(n1):
        model.predict_on_batch(xf[i:i + 1])
    single = (time.perf_counter() - start) * 1000 / n1
    model.predict_on_batch(xf[:batch_size])
    start = time.perf_counter()
    for i in range(0, len(xf), batch_size):
        model.predict_on_batch(xf[i:i + batch_size])
    batched = (time.perf_counter() - start) * 1000 / len(xf)
    return {"batch_1": single, "batched": batched, "batch_size": batch_size}


def _gradcam(export: LoadedExport, data: dict[str, Any], prob: np.ndarray, out: Path,
             n_each: int) -> dict[str, Any]:
    """Grad-CAM figure of the CNN, or a note saying why there is none."""
    from results.gradcam import GradCamUnavailable, grad_cam, pick_examples

    t = float(export.threshold["threshold"])
    picks = pick_examples(data["y"], prob, t, n_each)
    if not picks:
        return {"figure": None, "note": "no test images to explain"}
    idx = [i for i, _ in picks]
    try:
        res = grad_cam(export.model, data["x"][idx], t)
    except GradCamUnavailable as err:
        return {"figure": None, "note": f"Grad-CAM skipped: {err}."}
    except Exception as err:  # noqa: BLE001 - a heatmap must never sink the whole report
        return {"figure": None, "note": f"Grad-CAM failed ({type(err).__name__}: {err})."}
    names = data["class_names"]
    captions = [f"{kind}: true {names[data['y'][i]]}\np={prob[i]:.2f} "
                f"{Path(data['paths'][i]).name[:24]}" for i, kind in picks]
    path = figs.gradcam_grid(data["x"][idx], res.heatmaps, captions, out / "gradcam_cnn.png")
    return {"figure": str(path), "layer": res.layer, "note": None,
            "examples": [{"path": data["paths"][i], "kind": kind, "probability": float(prob[i]),
                          "label": names[data["y"][i]]} for i, kind in picks]}


def write_metrics_csv(result: dict[str, Any], path: Path) -> None:
    """Long format: model, operating point, metric, value, 95% CI (at the exported threshold)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "operating_point", "metric", "value", "ci_low", "ci_high"])
        for name, m in result["models"].items():
            ci = result["bootstrap"]["ci"].get(name, {})
            for op, key in (("exported_threshold", "at_threshold"), ("0.5", "at_0.5")):
                for metric in SCALAR_METRICS:
                    lo, hi = ci.get(metric, [None, None]) if op != "0.5" else (None, None)
                    w.writerow([name, op, metric, m[key][metric], lo, hi])
            w.writerow([name, "", "n_params", m["n_params"], "", ""])
            w.writerow([name, "", "latency_ms_batch_1", m["latency_ms"]["batch_1"], "", ""])
            w.writerow([name, "", "latency_ms_batched", m["latency_ms"]["batched"], "", ""])


def compare_models(run_dir: str | Path, *, test_dir: str | Path | None = None,
                   out_dir: str | Path | None = None, n_boot: int = 1000,
                   n_gradcam: int = 3, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Evaluates the exported rank-1 CNN and ANN (or the one exported) and writes the report.

    Args:
        run_dir: the run folder holding ``exports/``.
        test_dir: a Kaggle-style folder to test on instead of the run's test split.
        out_dir: where to write (default ``run_dir/report``).
        n_boot: bootstrap resamples for the 95% intervals.
        n_gradcam: Grad-CAM examples of each kind (correct, wrong).
        seed: bootstrap seed.
        progress: print where the outputs went.

    Returns:
        The metrics.json content, plus ``"outputs"``: paths of everything written.

    Raises:
        ResultsError: no run, no exports, or exports that do not match the data.
    """
    from results.compare_report import build_blocks
    from results.report import write_report

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    exports = {f: load_export(p) for f, p in find_exports(run_dir).items()}
    first = next(iter(exports.values()))
    for name, e in exports.items():
        check_model_input(e.model, e.metadata, str(e.path))
        check_compatible(e.metadata, class_names=first.metadata["class_names"],
                         image_size=first.metadata["image_size"],
                         color_mode=first.metadata["color_mode"], source=str(first.path),
                         export=str(e.path))
    data = load_test_data(run_dir, run, first.metadata, test_dir, progress)
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    (out / "figures").mkdir(parents=True, exist_ok=True)

    y, names = data["y"], data["class_names"]
    probs = {f: probabilities(e.model, data["x"]) for f, e in exports.items()}
    thresholds = {f: float(e.threshold["threshold"]) for f, e in exports.items()}
    models: dict[str, Any] = {}
    for f, e in exports.items():
        models[f] = evaluate(y, probs[f], thresholds[f], names)
        models[f].update(n_params=int(e.model.count_params()),
                         latency_ms=latency_ms(e.model, data["x"]),
                         trial_id=e.metadata.get("trial_id"), cv=e.metadata.get("cv"),
                         retrained=e.metadata.get("retrained"),
                         threshold_record=e.threshold, export=str(e.path))
    curve_data = {f: curves(y, probs[f]) for f in exports}
    use_groups = len(np.unique(data["groups"])) < len(y)
    boot = bootstrap(y, probs, lambda yy, pp, m: scalar_metrics(yy, pp, thresholds[m]),
                     groups=data["groups"] if use_groups else None, n_boot=n_boot, seed=seed)
    tests = {}
    if len(exports) == 2:
        a, b = list(exports)
        tests = {key: mcnemar(y, (probs[a] >= ta).astype(int), (probs[b] >= tb).astype(int))
                 for key, ta, tb in (("at_threshold", thresholds[a], thresholds[b]),
                                     ("at_0.5", 0.5, 0.5))}
    fig_dir = out / "figures"
    figures = {"roc_pr": figs.roc_pr(curve_data, models, fig_dir / "roc_pr.png"),
               "confusion": figs.confusion_matrices(models, names, fig_dir / "confusion.png"),
               "calibration": figs.calibration(curve_data, fig_dir / "calibration.png")}
    histories = {f: e.history.get("history", {}) for f, e in exports.items()
                 if e.history.get("history")}
    if histories:
        figures["learning_curves"] = figs.learning_curves(
            histories, run["config"].get("objective", "val_auc"), fig_dir / "learning_curves.png")
    gradcam = ({"figure": None, "note": "no CNN export: Grad-CAM needs convolutions."}
               if "cnn" not in exports else
               _gradcam(exports["cnn"], data, probs["cnn"], fig_dir, n_gradcam))
    if gradcam.get("figure"):
        figures["gradcam"] = Path(gradcam["figure"])

    import keras

    result = {
        "source": data["source"], "synthetic": data["synthetic"], "n_test": int(y.size),
        "n_positive": int(y.sum()), "class_names": names, "positive_class": names[-1],
        "backend": keras.backend.backend(), "models": models, "bootstrap": boot,
        "mcnemar": tests, "gradcam": gradcam, "curves": curve_data,
        "figures": {k: str(v) for k, v in figures.items()},
    }
    write_json(out / "metrics.json", result)
    write_metrics_csv(result, out / "metrics.csv")
    md, page = write_report(build_blocks(result, figures), out,
                            title=f"CNN vs ANN: {run_dir.name}")
    result["outputs"] = {"dir": str(out), "report_md": str(md), "report_html": str(page),
                         "metrics_json": str(out / "metrics.json"),
                         "metrics_csv": str(out / "metrics.csv")}
    if progress:
        print(f"report: {page}\n        {md}\nmetrics: {out / 'metrics.json'}, "
              f"{out / 'metrics.csv'}", file=sys.stdout)
    return result
