#!/usr/bin/env python3
"""Prints the Markdown summary of a reference run for ``benchmarks/RESULTS.md``.

Every figure comes from the run folder written by ``benchmarks/reference_run.sh``: the
leaderboard (``leaderboard.csv``), the trial and fold records (search wall time and fit time,
hence the search overhead at full scale), the exports (thresholds) and the comparison report
(``report/metrics.json``).

Usage:
  .venv/bin/python benchmarks/reference_summary.py [--run-dir runs/reference] [--top 5]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from results.leaderboard import run_objective  # noqa: E402  (after the path insert)

KEY_PARAMS = {
    "cnn": ("conv_blocks", "conv_filters", "filter_hierarchy", "convs_per_block", "kernel_size",
            "conv_batch_norm", "conv_dropout", "head", "dense_layers", "optimizer",
            "learning_rate", "batch_size", "augmentation_strength", "augmentation_ranges",
            "border_crop", "intensity_norm", "class_weights"),
    "ann": ("dense_layers", "dense_units", "dense_hierarchy", "dense_batch_norm", "dense_dropout",
            "dense_dropout_rate", "activation", "optimizer", "learning_rate", "batch_size",
            "class_weights"),
}
ANCHORS = [
    ("reference notebook's best CNN (notes, 003)", "0.907", "-", "0.99", "0.76",
     "official Kaggle test split (624 images)"),
    ("Kermany et al. 2018, Inception-V3 transfer", "0.928", "0.968", "0.932", "0.901",
     "official test split (624 images)"),
    ("MedMNIST v2 AutoKeras (28 px)", "0.878", "0.947", "-", "-", "official test split"),
    ("MedMNIST v2 Google AutoML Vision (28 px)", "0.946", "0.991", "-", "-",
     "official test split"),
    ("MedMNIST+ best (224 px, DINO ViT-B/16 probe)", "0.916", "0.989", "-", "-",
     "official test split"),
]


def _fmt(value: object, digits: int = 3) -> str:
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "-"


def _log_times(run_dir: Path) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """First and last search.log timestamp of each family's search (new/resumed to last trial)."""
    spans: dict[str, list[dt.datetime]] = {}
    for line in (run_dir / "search.log").read_text().splitlines():
        m = re.match(r"(\S+) \[(cnn|ann)\] ", line)
        if m:
            spans.setdefault(m.group(2), []).append(dt.datetime.fromisoformat(m.group(1)))
    return {f: (min(t), max(t)) for f, t in spans.items()}


def search_table(run_dir: Path) -> list[str]:
    """Per family: what became of the trials, the search wall time, the time inside trials and
    their ratio (the search's own overhead).

    Under the ladder most trials end at a rung, inside their first fold, so the time inside
    trials is each trial's ``duration_s`` (cv.json: every stretch it trained, rungs included),
    not only the fits of finished folds (which left the pruned trials' training out and read
    as an overhead of 1.7-2.2 in the first ladder reference run).
    """
    out = ["| family | trials | completed / pruned at a rung / waiting at a rung / cut / failed "
           "| folds finished | search wall | time inside trials | overhead ratio |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    spans = _log_times(run_dir)
    for family in ("cnn", "ann"):
        cvs = [json.loads(p.read_text()) for p in sorted((run_dir / family).glob("trial_*/cv.json"))]
        counts = [sum(c.get("status") == s for c in cvs)
                  for s in ("COMPLETED", "PRUNED", "SUSPENDED", "RUNNING", "FAILED")]
        folds = sum(len(c.get("folds") or []) for c in cvs if c.get("status") == "COMPLETED")
        inside = sum(float(c.get("duration_s") or 0.0) for c in cvs)
        if family in spans:
            # The log's first line for a family is written when its search starts.
            wall = (spans[family][1] - spans[family][0]).total_seconds()
            ratio = f"{wall / inside:.3f}" if inside else "-"
            out.append(f"| {family} | {len(cvs)} | {' / '.join(map(str, counts))} | {folds} | "
                       f"{wall / 60:.1f} min | {inside / 60:.1f} min | {ratio} |")
    return out


def top_table(run_dir: Path, family: str, top: int) -> list[str]:
    """The top rows of the family's leaderboard with the key hyperparameters."""
    rows = [r for r in csv.DictReader(open(run_dir / "leaderboard.csv"))
            if r["model"] == family and r["status"] == "COMPLETED"][:top]
    if not rows:
        return ["(no completed trials)"]
    # The family's own objective (--objective auto ranks the ANN by another probe).
    obj = run_objective(run_dir, family)[0]
    clean = obj != "val_auc" and "mean_val_auc" in rows[0]
    out = [f"| rank | trial | {obj} (mean +- std over folds) | "
           + ("clean val_auc | " if clean else "") + "diagnosis | params | key "
           "hyperparameters |", "| --- | --- | --- |" + (" --- |" if clean else "")
           + " --- | --- | --- |"]
    for r in rows:
        hps = ", ".join(f"{k}={r[f'param_{k}']}" for k in KEY_PARAMS[family]
                        if r.get(f"param_{k}") not in (None, ""))
        # Floats as sampled (0.35000000000000003, 0.0026120961...) read better at 2 digits.
        hps = re.sub(r"=(\d+\.\d{4,}(?:e-?\d+)?|\d\.?\d*e-\d+)",
                     lambda m: f"={float(m.group(1)):.2g}", hps)
        out.append(f"| {r['rank']} | {r['trial_id']} | {_fmt(r[f'mean_{obj}'], 4)} +- "
                   f"{_fmt(r[f'std_{obj}'], 4)} | "
                   + (f"{_fmt(r['mean_val_auc'], 4)} | " if clean else "")
                   + f"{r['diagnosis']} | {r['n_params']} | {hps} |")
    return out


def test_table(run_dir: Path) -> list[str]:
    """The exported models on the test split, with the bootstrap intervals."""
    m = json.loads((run_dir / "report" / "metrics.json").read_text())
    ci = m["bootstrap"]["ci"]
    keys = [("sensitivity", "sensitivity"), ("specificity", "specificity"),
            ("accuracy", "accuracy"), ("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC")]
    names = list(m["models"])
    out = [f"Test split: {m['source']}, {m['n_test']} images ({m['n_positive']} "
           f"{m['positive_class']}); 95% intervals from {m['bootstrap']['n_boot']} bootstrap "
           f"resamples of {m['bootstrap']['unit']}s.", "",
           "| metric | " + " | ".join(n.upper() for n in names) + " |",
           "| --- |" + " --- |" * len(names)]
    for key, label in keys:
        cells = []
        for n in names:
            v = m["models"][n]["at_threshold"][key]
            lo, hi = ci[n].get(key, [None, None])
            cells.append(f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("| threshold (chosen on validation: sensitivity >= target) | " + " | ".join(
        _fmt(m["models"][n]["threshold"], 4) for n in names) + " |")
    out.append("| parameters | " + " | ".join(str(m["models"][n]["n_params"]) for n in names)
               + " |")
    mc = m.get("mcnemar", {}).get("at_threshold")
    if mc:
        out += ["", f"McNemar's test of the two models' calls at their thresholds: p = "
                    f"{mc['p_value']:.3g} ({mc['n_discordant']} discordant images, "
                    f"{mc['method']})."]
    return out


def anchors_table() -> list[str]:
    out = ["| system | accuracy | AUC | sensitivity | specificity | test split |",
           "| --- | --- | --- | --- | --- | --- |"]
    out += [f"| {' | '.join(a)} |" for a in ANCHORS]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="runs/reference")
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args()
    run_dir = Path(args.run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor() or "unknown")
    lines = [f"Machine: {os.cpu_count()} cores ({cpu}), {platform.platform()}, no GPU; "
             f"backend {run['versions'].get('backend')}, Keras {run['versions'].get('keras')}, "
             f"KerasTuner {run['versions'].get('keras_tuner')}. Run created {run['created']}, "
             f"status `{run['status']}`.", "",
             "Command: `" + " ".join(run["command"]) + "`", "", "### Search", ""]
    lines += search_table(run_dir)
    for family in ("cnn", "ann"):
        lines += ["", f"### Top {args.top} {family.upper()} trials (cross-validation, "
                      f"{run['config']['folds']} patient-grouped folds)", ""]
        lines += top_table(run_dir, family, args.top)
    lines += ["", "### Exported winners on the test split", ""]
    lines += test_table(run_dir)
    lines += ["", "### Anchors (not on the same test split)", ""]
    lines += anchors_table()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
