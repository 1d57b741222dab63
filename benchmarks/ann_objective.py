"""Which validation signal ranks a family's configurations; does ensemble selection pay (issue 34).

Reads a finished search (``run_search.py search ... --run-dir RUN``; bounded by trial and epoch
counts, never by a time budget) and, for every completed configuration of ``--family``, scores
its fold ensemble (the mean of its fold models, from the saved fold weights: no retraining) on
the run's carved, patient-grouped test split and on shifted copies of it
(``data_pipeline.shifts``: border, photometric, geometric). The carved split comes from the
training folder, so every figure here is in-distribution: a shifted copy is a stand-in for
another site's films, not evidence of generalisation to one.

1. **Objective.** The Spearman rank correlation, over the configurations, of each validation
   signal the search records (clean ``val_auc`` and the probes, fold means from ``cv.json``)
   with the test AUC clean, under each shift, and averaged over the three shifts. The signal
   that ranks the shifted test AUC best is the measured choice for ``--objective auto``
   (``search/config.py`` ``AUTO_OBJECTIVES``).
2. **Ensembles.** For each objective in ``--objectives``: the top-1 configuration's fold
   ensemble, the plain average of the top 3, and ``--ensemble select`` (Caruana's selection
   over the out-of-fold files, ``results/selection.py``, cap 5), scored on the same test copies
   (AUC, and the best specificity any threshold gives at sensitivity >= 0.95).

The measurement in RESULTS.md ("ANN objective and ensemble selection"):

    python run_search.py search --data ../shared/data/chest_xray --model ann --tuner random \\
        --max-trials 12 --folds 3 --max-epochs 8 --patience 2 --objective val_auc \\
        --no-racing --no-pruning --seed 42 --image-size 64 \\
        --space benchmarks/ann_objective_space.toml --run-dir runs/ann_objective2
    python benchmarks/ann_objective.py --run runs/ann_objective2 --family ann

(the search records every probe whatever its objective, so one run serves every signal;
the measured run was started with ``--max-trials 8`` and resumed with ``--max-trials 12``).

Writes the JSON and prints Markdown tables for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIGNALS = ("val_auc", "val_auc_border", "val_auc_photometric", "val_auc_geometric",
           "val_auc_robust")
TESTS = ("clean", "border", "photometric", "geometric", "shifted_mean")


def best_specificity(y: np.ndarray, scores: np.ndarray, sensitivity: float = 0.95) -> float:
    """The best specificity any threshold gives at sensitivity >= ``sensitivity``."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, scores)
    ok = tpr >= sensitivity
    return float(1.0 - fpr[ok].min()) if ok.any() else float("nan")


def test_scores(run_dir: Path, family: str) -> dict[str, Any]:
    """Each completed configuration's fold-ensemble scores on the test split and its copies."""
    from data_pipeline import shifted_sets
    from results.ensemble import distinct_configurations, load_fold_models
    from results.rebuild import trial_hyperparameters, build_hypermodel
    from results.run_data import load_run_data
    from results.leaderboard import best_trials
    from results.model_io import load_run
    from search.fit.probes import predict_scores

    run = load_run(run_dir)
    dataset, split = load_run_data(run_dir, run, progress=False)
    train_idx, test_idx = np.asarray(split.train_idx), np.asarray(split.test_idx)
    x_test, y_test = dataset.x[test_idx], dataset.y[test_idx]
    copies = {"clean": x_test, **shifted_sets(x_test)}
    records = distinct_configurations(best_trials(run_dir, family, 10_000))
    hm = build_hypermodel(family, run["config"], tuple(dataset.x.shape[1:]), dataset.y[train_idx],
                     len(dataset.class_names))
    hm.with_augmentation = False
    n_folds = int(run["config"].get("folds") or 3)
    out = {}
    for r in records:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models = load_fold_models(r, hm, trial_hyperparameters(r), n_folds)
        out[str(r["trial_id"])] = {
            "record": r,
            "scores": {name: np.mean([predict_scores(m, x) for m in models], axis=0)
                       for name, x in copies.items()}}
        print(f"scored trial {r['trial_id']}", file=sys.stderr, flush=True)
    return {"run": run, "y": y_test, "trials": out, "n_test": int(len(test_idx)),
            "source": split.source}


def test_metrics(y: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Test AUC clean and per shift, their shift mean, and best specificity at sens 0.95."""
    from search.fit.probes import auc

    out = {name: auc(y, s) for name, s in scores.items()}
    out["shifted_mean"] = float(np.mean([out[n] for n in ("border", "photometric",
                                                          "geometric")]))
    out["spec95_clean"] = best_specificity(y, scores["clean"])
    out["spec95_geometric"] = best_specificity(y, scores["geometric"])
    return out


def rank_correlations(trials: dict[str, Any], y: np.ndarray) -> dict[str, Any]:
    """Spearman of every validation signal with every test measure, over the configurations."""
    from scipy.stats import spearmanr

    table = {t: test_metrics(y, v["scores"]) for t, v in trials.items()}
    out: dict[str, Any] = {"per_trial": {}, "spearman": {}}
    for t, v in trials.items():
        mean = v["record"].get("mean") or {}
        out["per_trial"][t] = {"validation": {s: mean.get(s) for s in SIGNALS},
                               "test": table[t]}
    for s in SIGNALS:
        vals = [(trials[t]["record"].get("mean") or {}).get(s) for t in trials]
        if any(v is None for v in vals):
            continue
        out["spearman"][s] = {m: float(spearmanr(vals, [table[t][m] for t in trials])[0])
                              for m in TESTS}
    return out


def ensembles(run_dir: Path, family: str, trials: dict[str, Any], y: np.ndarray,
              objective: str, max_members: int = 5) -> dict[str, Any]:
    """Top 1, fixed top 3 and the Caruana selection under ``objective``, on the test copies."""
    from results.model_io import load_run
    from results.selection import aligned_candidates, caruana_select
    from spaces.metrics import objective_direction

    direction = objective_direction(objective)
    sign = 1 if direction == "max" else -1
    order = sorted(trials, key=lambda t: (-sign * float(
        (trials[t]["record"].get("mean") or {}).get(objective, float("nan"))), t))
    n_folds = int((load_run(run_dir).get("config") or {}).get("folds") or 3)
    cands, excluded = aligned_candidates(
        [(t, Path(trials[t]["record"]["path"])) for t in order], n_folds)
    sel = caruana_select(cands, objective=objective, direction=direction,
                         max_members=max_members)

    def mix(weights: dict[str, float]) -> dict[str, float]:
        scores = {name: sum(w * trials[t]["scores"][name] for t, w in weights.items())
                  for name in trials[order[0]]["scores"]}
        return test_metrics(y, scores)

    top3 = order[:3]
    return {"objective": objective, "order": order,
            "top1": {"members": {order[0]: 1.0}, "test": mix({order[0]: 1.0})},
            "top3": {"members": {t: 1 / len(top3) for t in top3},
                     "test": mix({t: 1 / len(top3) for t in top3})},
            "select": {"members": sel.weights, "oof_score": sel.score,
                       "test": mix(sel.weights), "excluded": excluded}}


def markdown(report: dict[str, Any]) -> str:
    """RESULTS.md tables."""
    lines = ["| validation signal | " + " | ".join(f"test {m}" for m in TESTS) + " |",
             "|---|" + "---|" * len(TESTS)]
    for s, row in report["correlations"]["spearman"].items():
        lines.append(f"| {s} | " + " | ".join(f"{row[m]:.2f}" for m in TESTS) + " |")
    lines += ["", "| objective | export | members | test AUC clean | test AUC shifted mean | "
              "test AUC geometric | best spec. @ sens 0.95 (clean) |",
              "|---|---|---|---|---|---|---|"]
    for e in report["ensembles"]:
        for kind in ("top1", "top3", "select"):
            r = e[kind]
            members = ", ".join(f"{t} x {w:.2f}" for t, w in r["members"].items())
            t = r["test"]
            lines.append(f"| {e['objective']} | {kind} | {members} | {t['clean']:.4f} | "
                         f"{t['shifted_mean']:.4f} | {t['geometric']:.4f} | "
                         f"{t['spec95_clean']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a finished search's run folder")
    parser.add_argument("--family", default="ann")
    parser.add_argument("--objectives", nargs="+", default=None,
                        help="objectives to select under (default: val_auc and the signal that "
                             "ranks the shifted test AUC best)")
    parser.add_argument("--out", default=None, help="JSON file (default: RUN/objective.json)")
    args = parser.parse_args(argv)
    run_dir = Path(args.run)
    data = test_scores(run_dir, args.family)
    corr = rank_correlations(data["trials"], data["y"])
    ranked = sorted(corr["spearman"], key=lambda s: -corr["spearman"][s]["shifted_mean"])
    chosen = ranked[0] if ranked else "val_auc"
    objectives = args.objectives or list(dict.fromkeys(["val_auc", chosen]))
    report = {
        "family": args.family, "run": str(run_dir), "data": data["run"]["config"]["data"],
        "config": {k: data["run"]["config"].get(k) for k in (
            "tuner", "folds", "max_trials", "max_epochs", "patience", "objective",
            "image_size", "seed", "test_fraction")},
        "test_split": {"source": data["source"], "n": data["n_test"],
                       "note": "carved from the training folder: in-distribution"},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "python": platform.python_version()},
        "n_configurations": len(data["trials"]),
        "correlations": corr, "measured_choice": chosen,
        "ensembles": [ensembles(run_dir, args.family, data["trials"], data["y"], o)
                      for o in objectives]}
    out = Path(args.out) if args.out else run_dir / "objective.json"
    out.write_text(json.dumps(report, indent=1, default=float))
    print(markdown(report))
    print(f"\nmeasured choice for --objective auto ({args.family}): {chosen}; written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
