"""The side-by-side CNN vs ANN evaluation of the exported winners on held-out test images.

Flow: load the rank-1 exports (safe mode) -> load the test images (the run's recorded test split,
or a Kaggle-style folder) at the exports' image size and colour mode, refusing mismatches ->
probabilities -> metrics, patient bootstrap intervals, McNemar, latency -> figures, Grad-CAM ->
``metrics.json``, ``metrics.csv``, ``report.md``, ``report.html``. The report text lives in
``results/report/sections.py``.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from results.leaderboard_formats import csv_value
from results.metrics import SCALAR_METRICS, curves, evaluate, scalar_metrics
from results.model_io import (LoadedExport, check_compatible, check_model_input, find_exports,
                              load_export, load_run, write_json)
from results.report import figures as figs
from results.report.evaluation_data import check_test_dir, load_test_data
from results.site.site_files import site_records
from results.stats import bootstrap, mcnemar
from search.fit.probes import epoch_metric


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


def explained_model(model: Any) -> tuple[Any, str | None]:
    """The model Grad-CAM can replay: an ensemble's first member, else the model itself.

    Returns:
        ``(model, note)``; the note says when one member stands for the ensemble.
    """
    import keras

    # An ensemble ends in an Average of member models; a transfer model's nested backbone is
    # a part of one model, not a member.
    if not any(isinstance(layer, keras.layers.Average) for layer in model.layers):
        return model, None
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if not members:
        return model, None
    return members[0], (f"the export averages {len(members)} models; Grad-CAM and the border "
                        f"attention show its first member ({members[0].name})")


# Heat share in the outer 12% frame on NORMAL films (an even map gives 0.42). On the shared data
# the plain basic CNN put 0.55 of its NORMAL heat there, the augmented one 0.42
# (benchmarks/RESULTS.md): a coarse, noisy signal, so it only flags, together with the AUC drop.
LEANS_ON_BORDER_SHARE = 0.5
LEANS_ON_BORDER_DROP = 0.03   # ROC-AUC lost when the frame is masked


def shortcut_check(model: Any, x: np.ndarray, y: np.ndarray, shifted: dict[str, np.ndarray],
                   *, cnn: bool, prob: np.ndarray, n_cam: int = 120, seed: int = 0
                   ) -> dict[str, Any]:
    """Clean vs shifted ROC-AUC on the test images, and (CNN) Grad-CAM border attention.

    The border share is measured only on a feature map of at least
    ``MIN_BORDER_MAP_SIDE`` cells a side (results/report/gradcam.py); on a coarser one the note
    says so and only the ROC-AUC drop can flag a border shortcut.

    Args:
        model: the exported model.
        x, y: the test images (raw uint8) and 0/1 labels.
        shifted: ``data_pipeline.shifted_sets(x)``.
        cnn: whether Grad-CAM applies.
        prob: the model's scores on ``x`` (already computed for the report).
        n_cam: test images (a fixed random sample) whose heatmaps give the border share.

    Returns:
        ``{"clean", "val_auc_border", ..., "val_auc_robust", "border_share",
        "border_share_normal", "leans_on_border", "note"}`` (probe keys keep the search's
        names; here they are measured on the test images).
    """
    from results.report.gradcam import GradCamUnavailable, border_map_note, border_share, grad_cam
    from search.fit.probes import probe_scores

    scores = probe_scores(model, x, y, shifted, None, clean=prob)
    out: dict[str, Any] = {"clean": scores.pop("val_auc"), **scores}
    out["border_share"] = out["border_share_normal"] = None
    out["note"] = None
    if cnn:
        cam_model, out["note"] = explained_model(model)
        idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:n_cam])
        try:
            cam = grad_cam(cam_model, x[idx])
            coarse = border_map_note(cam.map_side)
            if coarse is not None:  # a 2x2 or 4x4 map: the share would be noise, not a flag
                out["note"] = "; ".join(filter(None, [out["note"], coarse]))
            else:
                share = border_share(cam.heatmaps)
                out["border_share"] = float(np.nanmean(share))
                normal = share[y[idx] == 0]
                out["border_share_normal"] = float(np.nanmean(normal)) if normal.size else None
        except GradCamUnavailable as err:
            out["note"] = f"border attention not measured: {err}"
    drop = out["clean"] - out["val_auc_border"]
    share = out["border_share_normal"] if out["border_share_normal"] is not None \
        else out["border_share"]
    out["leans_on_border"] = bool((np.isfinite(drop) and drop >= LEANS_ON_BORDER_DROP)
                                  or (share is not None and share > LEANS_ON_BORDER_SHARE))
    return out


def _gradcam(export: LoadedExport, data: dict[str, Any], prob: np.ndarray, out: Path,
             n_each: int, family: str = "cnn") -> dict[str, Any]:
    """Grad-CAM figure of the CNN (or the transfer model: its backbone's last convolution),
    or a note saying why there is none.

    Panels: the most confident correct and wrong calls, plus confident correct NORMAL films
    (where a border shortcut shows: the heat sits on the film's edges instead of the lungs).
    """
    from results.report.gradcam import GradCamUnavailable, grad_cam, pick_examples

    t = float(export.threshold["threshold"])
    picks = pick_examples(data["y"], prob, t, n_each)
    if not picks:
        return {"figure": None, "note": "no test images to explain"}
    taken = {i for i, _ in picks}
    normal_ok = [int(i) for i in np.argsort(prob) if data["y"][i] == 0 and prob[i] < t
                 and int(i) not in taken][:n_each]
    picks += [(i, "correct NORMAL") for i in normal_ok]
    idx = [i for i, _ in picks]
    model, member_note = explained_model(export.model)
    try:
        res = grad_cam(model, data["x"][idx], t)
    except GradCamUnavailable as err:
        return {"figure": None, "note": f"Grad-CAM skipped: {err}."}
    except Exception as err:  # noqa: BLE001 - a heatmap must never sink the whole report
        return {"figure": None, "note": f"Grad-CAM failed ({type(err).__name__}: {err})."}
    names = data["class_names"]
    captions = [f"{kind}: true {names[data['y'][i]]}\np={prob[i]:.2f} "
                f"{Path(data['paths'][i]).name[:24]}" for i, kind in picks]
    path = figs.gradcam_grid(data["x"][idx], res.heatmaps, captions, out / f"gradcam_{family}.png")
    return {"figure": str(path), "layer": res.layer, "note": member_note,
            "examples": [{"path": data["paths"][i], "kind": kind, "probability": float(prob[i]),
                          "label": names[data["y"][i]]} for i, kind in picks]}


def single_vs_ensemble(run_dir: Path, exports: dict[str, LoadedExport], models: dict[str, Any],
                       data: dict[str, Any], shifted: dict[str, np.ndarray]) -> dict[str, Any]:
    """Each family's ensemble export next to its single retrained model (``rank1_single``).

    Returns:
        ``{family: {"ensemble": row, "single": row}}`` for the families that have both, a row
        being the threshold, ROC-AUC, sensitivity, specificity and accuracy at that threshold,
        and the shortcut check.
    """
    from results.model_io import export_path

    out: dict[str, Any] = {}
    y = data["y"]
    for family, export in exports.items():
        path = export_path(run_dir, family, 1, single=True)
        if (export.metadata.get("ensemble") or {}).get("kind", "none") == "none" \
                or not (path / "metadata.json").is_file():
            continue
        single = load_export(path)
        check_model_input(single.model, single.metadata, str(single.path))
        t = float(single.threshold["threshold"])
        prob = probabilities(single.model, data["x"])
        rows = {}
        for name, m, sc in (
                ("ensemble", models[family], models[family]["shortcut"]),
                ("single", evaluate(y, prob, t, data["class_names"]),
                 shortcut_check(single.model, data["x"], y, shifted,
                                cnn=family in ("cnn", "transfer"), prob=prob))):
            a = m["at_threshold"]
            rows[name] = {"threshold": m["threshold"], "roc_auc": a["roc_auc"],
                          "sensitivity": a["sensitivity"], "specificity": a["specificity"],
                          "accuracy": a["accuracy"], "shortcut": sc,
                          "export": str(export.path if name == "ensemble" else single.path)}
        out[family] = rows
    return out


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
                    w.writerow([name, op, metric, *map(csv_value, (m[key][metric], lo, hi))])
            w.writerow([name, "", "n_params", m["n_params"], "", ""])
            w.writerow([name, "", "latency_ms_batch_1", csv_value(m["latency_ms"]["batch_1"]),
                        "", ""])
            w.writerow([name, "", "latency_ms_batched", csv_value(m["latency_ms"]["batched"]),
                        "", ""])


def compare_models(run_dir: str | Path, *, test_dir: str | Path | None = None,
                   out_dir: str | Path | None = None, n_boot: int = 1000,
                   n_gradcam: int = 3, seed: int = 0, progress: bool = True,
                   data: str | Path | None = None) -> dict[str, Any]:
    """Evaluates the exported rank-1 CNN and ANN (or the one exported) and writes the report.

    Args:
        run_dir: the run folder holding ``exports/``.
        test_dir: a Kaggle-style folder to test on instead of the run's test split.
        out_dir: where to write (default ``run_dir/report``).
        n_boot: bootstrap resamples for the 95% intervals.
        n_gradcam: Grad-CAM examples of each kind (correct, wrong).
        seed: bootstrap seed.
        progress: print where the outputs went.
        data: the run's data folder when it moved since the search (``--data``).

    Returns:
        The metrics.json content, plus ``"outputs"``: paths of everything written.

    Raises:
        ResultsError: no run, no exports, or exports that do not match the data.
    """
    from results.export import note_live_search
    from results.output_paths import check_output_dir
    from results.report.page import write_report
    from results.report.sections import build_blocks

    run_dir = Path(run_dir)
    from results.run_data import with_data

    run = with_data(load_run(run_dir), data)
    if test_dir is not None:  # a wrong folder is refused before any model is loaded
        check_test_dir(test_dir, run_dir, (run.get("config") or {}).get("data"))
    # Checked before minutes of evaluation, which a bad --out would otherwise lose at the end.
    out = check_output_dir(out_dir if out_dir is not None else run_dir / "report")
    note_live_search(run_dir, "comparing the best trials exported so far")
    exports = {f: load_export(p) for f, p in find_exports(run_dir).items()}
    first = next(iter(exports.values()))
    for name, e in exports.items():
        check_model_input(e.model, e.metadata, str(e.path))
        check_compatible(e.metadata, class_names=first.metadata["class_names"],
                         image_size=first.metadata["image_size"],
                         color_mode=first.metadata["color_mode"], source=str(first.path),
                         export=str(e.path))
    data = load_test_data(run_dir, run, first.metadata, test_dir, progress)
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
                         objective=e.metadata.get("objective"),
                         retrained=e.metadata.get("retrained"),
                         threshold_record=e.threshold, export=str(e.path))
        models[f]["site"] = site_records(e.path)  # calibrate/check records, when they ran
    import data_pipeline

    shifted = data_pipeline.shifted_sets(data["x"])
    for f, e in exports.items():
        models[f]["shortcut"] = shortcut_check(e.model, data["x"], y, shifted,
                                               cnn=f in ("cnn", "transfer"), prob=probs[f])
        models[f]["ensemble"] = e.metadata.get("ensemble") or {"kind": "none"}
    variants = single_vs_ensemble(run_dir, exports, models, data, shifted)
    from results.report.ensemble_cost import ensemble_cost, machine

    cost_rows = []
    for f, e in exports.items():
        cost_rows += ensemble_cost(
            f, run, (e.hyperparameters or {}).get("values") or {},
            n_folds=int((run.get("config") or {}).get("folds") or 3), timer=latency_ms,
            channels=int((e.metadata.get("input_shape") or [1])[-1]))
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
            histories, epoch_metric(run["config"].get("objective", "val_auc")),
            fig_dir / "learning_curves.png")
    gradcam = ({"figure": None, "note": "no CNN export: Grad-CAM needs convolutions."}
               if "cnn" not in exports else
               _gradcam(exports["cnn"], data, probs["cnn"], fig_dir, n_gradcam))
    if gradcam.get("figure"):
        figures["gradcam"] = Path(gradcam["figure"])
    gradcam_transfer = None
    if "transfer" in exports:
        gradcam_transfer = _gradcam(exports["transfer"], data, probs["transfer"], fig_dir,
                                    n_gradcam, family="transfer")
        if gradcam_transfer.get("figure"):
            figures["gradcam_transfer"] = Path(gradcam_transfer["figure"])

    import keras

    result = {
        "source": data["source"], "synthetic": data["synthetic"], "n_test": int(y.size),
        "n_positive": int(y.sum()), "class_names": names, "positive_class": names[-1],
        "backend": keras.backend.backend(), "models": models, "bootstrap": boot,
        "mcnemar": tests, "gradcam": gradcam, "gradcam_transfer": gradcam_transfer,
        "curves": curve_data,
        "single_vs_ensemble": variants,
        "ensemble_cost": {"machine": machine(), "rows": cost_rows},
        "figures": {k: str(v) for k, v in figures.items()},
    }
    write_json(out / "metrics.json", result)
    write_metrics_csv(result, out / "metrics.csv")
    md, page = write_report(build_blocks(result, figures), out,
                            title=f"{' vs '.join(f.upper() for f in exports)}: {run_dir.name}")
    result["outputs"] = {"dir": str(out), "report_md": str(md), "report_html": str(page),
                         "metrics_json": str(out / "metrics.json"),
                         "metrics_csv": str(out / "metrics.csv")}
    if progress:
        print(f"report: {page}\n        {md}\nmetrics: {out / 'metrics.json'}, "
              f"{out / 'metrics.csv'}", file=sys.stdout)
    return result
