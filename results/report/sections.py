"""The words of the comparison report: the plain-language verdict and the report's sections.

Pure: takes the metrics.json content and figure paths, returns report blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from results.metrics import SCALAR_METRICS
from results.report.page import Block, fmt, fmt_ci
from results.site.report import site_blocks

# Below this specificity at the exported threshold the verdict warns instead of recommending.
MIN_SPECIFICITY = 0.70
LABELS = {"sensitivity": "Sensitivity (recall of pneumonia)", "specificity": "Specificity",
          "accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy",
          "precision": "Precision (PPV)", "npv": "NPV", "f1": "F1", "roc_auc": "ROC-AUC",
          "pr_auc": "PR-AUC (average precision)", "brier": "Brier score (lower is better)"}


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _degenerate(ci: list[float] | None) -> bool:
    """An interval every resample agreed on (e.g. 100.0% to 100.0% on a small test set)."""
    return bool(ci) and not any(c is None or c != c for c in ci) and _pct(ci[0]) == _pct(ci[1])


def _ci_pct(ci: list[float] | None) -> str:
    # A degenerate interval repeats the point value; the verdict says once why it is left out.
    if not ci or any(c is None or c != c for c in ci) or _degenerate(ci):
        return ""
    return f" (95% CI {_pct(ci[0])} to {_pct(ci[1])})"


def _excludes_zero(ci: list[float] | None) -> bool:
    return bool(ci) and ci[0] is not None and ci[0] == ci[0] and (ci[0] > 0 or ci[1] < 0)


def verdict(result: dict[str, Any]) -> str:
    """One paragraph a clinician can read: which model to prefer, sensitivity first, with CIs."""
    models, ci = result["models"], result["bootstrap"]["ci"]
    pos = result["positive_class"]
    unit = "patients" if result["bootstrap"]["unit"] == "patient" else "images"
    parts = [f"On {result['n_test']} test images ({result['n_positive']} {pos}) from "
             f"{result['source']}, at the thresholds chosen on validation data,"]
    for name, m in models.items():
        a = m["at_threshold"]
        parts.append(f"the {name.upper()} found {_pct(a['sensitivity'])} of {pos} cases"
                     f"{_ci_pct(ci[name].get('sensitivity'))} and correctly cleared "
                     f"{_pct(a['specificity'])} of the others{_ci_pct(ci[name].get('specificity'))}"
                     f" (ROC-AUC {fmt(a['roc_auc'])});")
    text = " ".join(parts).rstrip(";") + "."
    if any(_degenerate(ci[n].get(k)) for n in models for k in ("sensitivity", "specificity")):
        text += (" Where no interval is given, every bootstrap resample gave the same value: "
                 "the test set is too small to show that figure's uncertainty, not proof that "
                 "it has none.")
    one_class = [n for n, m in models.items()
                 if m["at_threshold"]["sensitivity"] in (0.0, 1.0)
                 and m["at_threshold"]["specificity"] in (0.0, 1.0)
                 and m["at_threshold"]["sensitivity"] != m["at_threshold"]["specificity"]]
    if one_class:
        names = " and the ".join(n.upper() for n in one_class)
        text += (f" **Warning:** the {names} put every test image in the same class at "
                 "the exported threshold, so "
                 + ("it does" if len(one_class) == 1 else "they do")
                 + " not separate the classes there; a ranking (ROC-AUC) above 0.5 may still "
                 "show some signal, but the model needs more training or data before use.")
    if len(models) == 1:
        name = next(iter(models))
        text += (f" Only the {name.upper()} was exported, so there is nothing to compare it "
                 "with; export both families for a comparison.")
    else:
        a, b = list(models)
        diff = result["bootstrap"].get("diff_ci", {}).get(f"{a}-{b}", {})
        sa, sb = (models[n]["at_threshold"]["sensitivity"] for n in (a, b))
        pa, pb = (models[n]["at_threshold"]["specificity"] for n in (a, b))
        if _excludes_zero(diff.get("sensitivity")):
            best = a if sa > sb else b
            reason = ("it misses fewer pneumonia cases, and the 95% bootstrap interval of the "
                      "difference in sensitivity excludes zero")
        elif _excludes_zero(diff.get("specificity")):
            best = a if pa > pb else b
            reason = ("the bootstrap interval of their difference in sensitivity includes zero, "
                      "and the one of specificity shows it raises fewer false alarms")
        elif _excludes_zero(diff.get("roc_auc")):
            best = a if models[a]["at_threshold"]["roc_auc"] > models[b]["at_threshold"][
                "roc_auc"] else b
            reason = "it ranks cases better (higher ROC-AUC), other differences being within chance"
        elif (sa, pa) == (sb, pb):
            best = min((a, b), key=lambda n: models[n]["n_params"])
            reason = ("the two are tied on sensitivity and specificity, and it is the smaller "
                      "model")
        else:
            best = a if (sa, pa) > (sb, pb) else b
            reason = ("it is ahead by point estimate only (sensitivity, then specificity): the "
                      "intervals overlap, so the data do not separate the two models")
        mc = result.get("mcnemar", {}).get("at_threshold")
        if best in flagged_models(models):
            text += (f" The {best.upper()} is ahead: {reason}; but it is flagged below, so "
                     "neither model is recommended as it is.")
        else:
            text += f" Prefer the **{best.upper()}**: {reason}."
        if mc:
            text += (f" McNemar's test asks another question, whether the two models are right "
                     f"on different images (per image, not per patient): p = "
                     f"{mc['p_value']:.3g} ({mc['n_discordant']} images where exactly one "
                     "model is right).")
    text += shortcut_warnings(models)
    text += (f" Intervals come from {result['bootstrap']['n_boot']} bootstrap resamples of "
             f"{unit}. A threshold tuned on validation data may not hold on a population with a "
             "different pneumonia rate; check it on local data before use.")
    if result.get("synthetic"):
        text += " These figures are from the built-in synthetic images and say nothing clinical."
    return text


def flagged_models(models: dict[str, Any]) -> set[str]:
    """Models the verdict must not recommend: low specificity or a border shortcut."""
    return {n for n, m in models.items()
            if _low_specificity(m["at_threshold"]["specificity"])
            or (m.get("shortcut") or {}).get("leans_on_border")}


def _low_specificity(spec: float | None) -> bool:
    """Below MIN_SPECIFICITY, or undefined (NaN or None: no negative test image), which must not
    pass as acceptable (``nan < 0.70`` is false)."""
    return spec is None or not spec >= MIN_SPECIFICITY


def shortcut_warnings(models: dict[str, Any]) -> str:
    """Plain warnings, instead of a recommendation, for a low specificity or a border shortcut."""
    text = ""
    for name, m in models.items():
        spec = m["at_threshold"]["specificity"]
        if spec is None or spec != spec:
            text += (f" **Not ready for use:** the {name.upper()}'s specificity is undefined "
                     "(no test image of the negative class), so nothing shows it clears "
                     "healthy patients.")
        elif spec < MIN_SPECIFICITY:
            text += (f" **Not ready for use:** the {name.upper()} clears only {_pct(spec)} of "
                     f"NORMAL films at its threshold (below {_pct(MIN_SPECIFICITY)}), so most "
                     "healthy patients it sees would be recalled.")
        sc = m.get("shortcut") or {}
        if sc.get("leans_on_border"):
            share = sc.get("border_share_normal") or sc.get("border_share")
            text += (f" **Shortcut:** the {name.upper()} leans on the film's borders (ROC-AUC "
                     f"{fmt(sc.get('clean'))} clean vs {fmt(sc.get('val_auc_border'))} with the "
                     "outer frame masked"
                     + (f"; {_pct(share)} of its Grad-CAM heat on NORMAL films in the frame"
                        if share else "")
                     + "): its score may not carry to films from another machine.")
    return text


def shortcut_blocks(models: dict[str, Any]) -> list[Block]:
    """The "Shortcut check" section: clean vs shifted ROC-AUC and border attention per model."""
    names = [n for n in models if models[n].get("shortcut")]
    if not names:
        return []
    rows = []
    for n in names:
        sc = models[n]["shortcut"]
        rows.append([n.upper(), ensemble_text(models[n].get("ensemble")),
                     fmt(sc.get("clean")), fmt(sc.get("val_auc_border")),
                     fmt(sc.get("val_auc_photometric")), fmt(sc.get("val_auc_geometric")),
                     fmt(sc.get("val_auc_robust")),
                     "—" if sc.get("border_share") is None else _pct(sc["border_share"]),
                     "—" if sc.get("border_share_normal") is None
                     else _pct(sc["border_share_normal"]),
                     "yes" if sc.get("leans_on_border") else "no"])
    blocks = [Block("h2", "Shortcut check"),
              Block("p", "ROC-AUC on the test images as they are and under fixed shifts: the "
                         "outer 12% frame replaced by the image median (border), per-image "
                         "gamma/contrast/brightness (photometric), small rotation, translation "
                         "and zoom (geometric); robust is the worst of them. Border heat is the "
                         "share of Grad-CAM heat in that frame over a fixed sample of test "
                         "images (an evenly spread map gives 42%; a model reading the lungs "
                         "far less). A large drop under a shift, or heat on the borders, means "
                         "the model uses a cue of the acquisition, not of the disease."),
              Block("table", headers=["model", "ensemble", "clean", "border", "photometric",
                                      "geometric", "robust", "border heat", "border heat "
                                      "(NORMAL)", "leans on border"], rows=rows)]
    notes = [f"{n.upper()}: {models[n]['shortcut']['note']}." for n in names
             if models[n]["shortcut"].get("note")]
    if notes:
        blocks.append(Block("p", " ".join(notes)))
    return blocks


def ensemble_text(ensemble: dict[str, Any] | None) -> str:
    """``select: 0003 x 0.60, 0001 x 0.40`` for a selected ensemble; the kind otherwise."""
    ensemble = ensemble or {}
    kind = ensemble.get("kind", "none")
    weights = ensemble.get("weights")
    if kind == "select" and weights:
        return "select: " + ", ".join(f"{t} x {float(w):.2f}"
                                      for t, w in zip(ensemble.get("members") or [], weights))
    if kind == "top":
        return "top: " + ", ".join(ensemble.get("members") or [])
    return kind


def ensemble_blocks(models: dict[str, Any]) -> list[Block]:
    """"Exported ensembles": each family's members and weights (``--ensemble select``)."""
    rows = []
    for n, m in models.items():
        ens = m.get("ensemble") or {}
        if ens.get("kind", "none") == "none":
            continue
        members = ens.get("members") or []
        weights = ens.get("weights") or [1.0 / max(1, len(members))] * len(members)
        for t, w in zip(members, weights):
            rows.append([n.upper(), ens.get("kind"), t, f"{float(w):.3f}",
                         ens.get("selected_on", "—"), ens.get("fallback") or ""])
    if not rows:
        return []
    return [Block("h2", "Exported ensembles"),
            Block("p", "Members and weights of each exported ensemble. `select` is Caruana's "
                       "greedy forward selection with replacement over the finished "
                       "configurations' out-of-fold predictions, maximising the search "
                       "objective (ensemble.json in the export folder records every step); "
                       "each member contributes the average of its fold models. Its threshold "
                       "and out-of-fold score come from the weighted out-of-fold predictions, "
                       "which also chose each fold model's early stopping: optimistic."),
            Block("table", headers=["model", "kind", "trial", "weight", "selected on", "note"],
                  rows=rows)]


def cost_blocks(cost: dict[str, Any]) -> list[Block]:
    """The cost of a 5-member selected ensemble at 64 and 224 px (results/report/ensemble_cost)."""
    rows = [[r["family"].upper(), f"{r['image_size']} px", r["n_models"],
             "—" if r.get("n_params") is None else f"{r['n_params']:,}",
             "—" if r.get("megabytes") is None else f"{r['megabytes']:.1f}",
             "—" if r.get("ms_batch_1") is None else f"{r['ms_batch_1']:.1f}",
             "—" if r.get("ms_batched") is None else f"{r['ms_batched']:.2f}", r.get("note", "")]
            for r in cost.get("rows") or []]
    if not rows:
        return []
    return [Block("p", "Cost of a 5-member ensemble (the most `--ensemble select` exports by "
                       "default; each member averages its fold models): the rank-1 "
                       "configuration built at 64 and 224 px, measured while this report was "
                       f"built on {cost.get('machine', 'this machine')}. Other work on the "
                       "machine inflates these times; `--ensemble-max-members 1` exports one "
                       "configuration's fold models only."),
            Block("table", headers=["model", "input", "networks", "parameters",
                                    "MB (float32)", "ms/image (batch 1)",
                                    "ms/image (batch 16)", "note"], rows=rows)]


def variant_blocks(variants: dict[str, Any]) -> list[Block]:
    """"Ensemble vs single model": each family's exported ensemble beside one retrained model."""
    if not variants:
        return []
    rows = []
    for family, pair in variants.items():
        for kind, r in pair.items():
            sc = r["shortcut"]
            rows.append([family.upper(), kind, fmt(r["threshold"], 4), fmt(r["roc_auc"]),
                         _pct(r["sensitivity"]), _pct(r["specificity"]), _pct(r["accuracy"]),
                         fmt(sc.get("val_auc_geometric")), fmt(sc.get("val_auc_robust")),
                         "—" if sc.get("border_share") is None else _pct(sc["border_share"])])
    return [Block("h2", "Ensemble vs single model"),
            Block("p", "The exported model averages fold models (of the winner, or of the "
                       "selected members with their weights); the single model "
                       "is the winning configuration retrained once on the training pool "
                       "(rank1_single). The ensemble's threshold comes from the out-of-fold "
                       "predictions of its fold models (each early-stopped on its own "
                       "validation fold), the single model's from its own validation slice "
                       "(which also chose its early-stopping epoch)."),
            Block("table", headers=["model", "kind", "threshold", "ROC-AUC", "sensitivity",
                                    "specificity", "accuracy", "geometric AUC", "robust AUC",
                                    "border heat"], rows=rows)]


def report_title(names: list[str]) -> str:
    """``CNN vs ANN on held-out test images``; one family (a transfer-only run) is named alone."""
    return f"{' vs '.join(n.upper() for n in names)} on held-out test images"


def build_blocks(result: dict[str, Any], figures: dict[str, Path]) -> list[Block]:
    """The report, top to bottom."""
    models, ci = result["models"], result["bootstrap"]["ci"]
    names = list(models)
    blocks = [Block("h1", report_title(names))]
    if result.get("synthetic"):
        blocks.append(Block("banner", "SYNTHETIC DATA: these models were trained and tested on "
                                      "the built-in synthetic images, not real X-rays. The "
                                      "numbers demonstrate the pipeline only."))
    blocks += [Block("h2", "Verdict"), Block("p", verdict(result))]
    level = int(round(100 * result["bootstrap"]["level"]))
    blocks += [Block("h2", "Metrics at the exported threshold"),
               Block("p", f"Values with {level}% bootstrap intervals "
                          f"({result['bootstrap']['unit']}-level, {result['bootstrap']['n_boot']} "
                          "resamples). Thresholds: " + ", ".join(
                              f"{n.upper()} {models[n]['threshold']:.4f}" for n in names) + "."),
               Block("table", headers=["metric"] + [n.upper() for n in names],
                     rows=[[LABELS[m]] + [fmt_ci(models[n]["at_threshold"][m],
                                                 ci[n].get(m)) for n in names]
                           for m in SCALAR_METRICS])]
    blocks += shortcut_blocks(models)
    blocks += variant_blocks(result.get("single_vs_ensemble") or {})
    blocks += site_blocks(models)
    blocks += [Block("h2", "Metrics at threshold 0.5"),
               Block("table", headers=["metric"] + [n.upper() for n in names],
                     rows=[[LABELS[m]] + [models[n]["at_0.5"][m] for n in names]
                           for m in SCALAR_METRICS])]
    blocks.append(Block("h2", "Per class (exported threshold)"))
    rows = [[n.upper(), r["class"], r["precision"], r["recall"], r["f1"], r["support"]]
            for n in names for r in models[n]["per_class_at_threshold"]]
    blocks.append(Block("table", headers=["model", "class", "precision", "recall", "F1",
                                          "support"], rows=rows))
    if result.get("mcnemar"):
        blocks.append(Block("h2", f"McNemar's test ({names[0].upper()} vs {names[1].upper()})"))
        blocks.append(Block("table", headers=["operating point", f"only {names[0].upper()} right",
                                              f"only {names[1].upper()} right", "method",
                                              "statistic", "p-value"],
                            rows=[[k, t["a_only_correct"], t["b_only_correct"], t["method"],
                                   t["statistic"], f"{t['p_value']:.4g}"]
                                  for k, t in result["mcnemar"].items()]))
    blocks += ensemble_blocks(models)
    blocks.append(Block("h2", "Size, speed and provenance"))
    blocks.append(Block("table", headers=["model", "trial", "parameters", "ms/image (batch 1)",
                                          "ms/image (batched)", "CV objective (mean ± std)"],
                        rows=[[n.upper(), models[n].get("trial_id"), f"{models[n]['n_params']:,}",
                               models[n]["latency_ms"]["batch_1"],
                               models[n]["latency_ms"]["batched"], _cv(models[n])]
                              for n in names]))
    blocks.append(Block("p", f"Backend: {result['backend']}. Test data: {result['source']}."))
    blocks += cost_blocks(result.get("ensemble_cost") or {})
    blocks.append(Block("h2", "Figures"))
    captions = {"roc_pr": "ROC and precision-recall curves (dots: the exported thresholds)",
                "confusion": "Confusion matrices at the exported threshold and at 0.5",
                "calibration": "Calibration (reliability) curve",
                "learning_curves": "Learning curves of the winners (an ensemble: its first fold)",
                "gradcam": "Grad-CAM of the CNN on confident correct and wrong test calls and "
                           "on correct NORMAL films",
                "gradcam_transfer": "Grad-CAM of the transfer model (its backbone's last "
                                    "convolution) on the same kinds of test calls"}
    for key, caption in captions.items():
        if key in figures:
            blocks.append(Block("image", caption, path=Path(figures[key])))
    for key in ("gradcam", "gradcam_transfer"):
        note = (result.get(key) or {}).get("note")
        if note:
            blocks.append(Block("p", note))
    return blocks


def _cv(m: dict[str, Any]) -> str:
    """The run's objective (the export's ``metadata.json`` ``objective``) over the trial's
    folds; an export without it (older) falls back to the first of val_auc, val_pr_auc,
    val_loss, and the cell names the metric either way."""
    cv = m.get("cv") or {}
    mean, std = cv.get("mean") or {}, cv.get("std") or {}
    if not mean:
        return "—"
    key = m.get("objective")
    if key not in mean:
        key = next((k for k in ("val_auc", "val_pr_auc", "val_loss") if k in mean),
                   next(iter(mean)))
    return f"{key} {fmt(mean[key])} ± {fmt(std.get(key))}"
