"""Search efficiency at a fixed wall budget: tuners, racing, and the Hyperband of before (issue 12).

For each variant, one CNN search on the same data, space, folds and seed, each stopped by the
same ``--time-budget``. Reported per variant:

- ``best``: the best cross-validated objective among completed (unpruned) configurations, and
  the time at which it was reached (``best_over_time``: the best so far after each trial);
- ``configs_per_hour``: distinct configurations evaluated (completed or pruned: racing's
  decision is an evaluation) per hour of search, and ``completed_per_hour``;
- ``share_below_0_6``: the share of evaluated configurations whose clean val_auc is under 0.6
  (models that did not learn).

Variants (``--variants``): ``hyperband_before`` is KerasTuner's own bracket sizing as the
service used it before issue 12 (brackets from ``max_epochs`` alone; over-budget draws
become failed trials; no racing); ``hyperband``, ``random`` and ``bayesian`` are today's
oracles with everything on (racing after a fold, pruning inside a fold at epoch rungs, the
cost rules under the time budget), ``_racing`` with racing only (the search as issue 12 left
it) and ``_plain`` with none of them.

The shared training folder is subsampled by patient (``--fraction``, default 0.25, whole
patients only) so a variant trains several configurations within a budget of minutes on a
2-core machine. All numbers are cross-validation on one folder: in-distribution, a measure of
search efficiency, not of generalisation.

    python benchmarks/search_efficiency.py --minutes 5 --out runs/search_efficiency

Writes ``OUT/search_efficiency.json`` and prints a Markdown table. A finished variant in the
JSON is not run again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = ("hyperband_before", "hyperband_plain", "hyperband_racing", "hyperband",
            "random_plain", "random_racing", "random", "bayesian_plain", "bayesian_racing",
            "bayesian")


def subsample(src: Path, dest: Path, fraction: float) -> Path:
    """A folder of symlinks to the patients of ``src/train`` whose id hashes under
    ``fraction`` (whole patients, both classes, deterministic)."""
    from data_pipeline.groups import patient_id

    if (dest / "train").is_dir():
        return dest
    for cls_dir in sorted(p for p in (src / "train").iterdir() if p.is_dir()):
        out = dest / "train" / cls_dir.name
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(cls_dir.iterdir()):
            pid = patient_id(f.name) or f.name
            h = int(hashlib.sha256(f"{cls_dir.name}/{pid}".encode()).hexdigest()[:8], 16)
            if h / 0xFFFFFFFF < fraction:
                os.symlink(f.resolve(), out / f.name)
    return dest


def _legacy_hyperband():
    """The oracle as the service ran it before: KerasTuner's bracket sizing and promotion,
    over-budget configurations drawn as trials (they fail at build)."""
    import keras_tuner as kt

    from search.oracles import CappedOracleMixin

    class BeforeHyperband(CappedOracleMixin, kt.oracles.HyperbandOracle):
        populate_space = kt.oracles.HyperbandOracle.populate_space
        _start_new_bracket = kt.oracles.HyperbandOracle._start_new_bracket
        _random_trial = kt.oracles.HyperbandOracle._random_trial

        def _refused(self, values):
            return False

    return BeforeHyperband


def run_variant(name: str, data: Path, out: Path, minutes: float, args) -> dict[str, Any]:
    """Runs one variant's search and summarises its run folder."""
    import search.oracles as oracles
    from search.config import SearchConfig
    from search.engine import run_search_job

    tuner = name.split("_")[0]
    run_dir = out / name
    cfg = SearchConfig(data=str(data), model="cnn", tuner=tuner, folds=args.folds,
                       max_trials=args.max_trials, max_epochs=args.max_epochs,
                       patience=args.patience, time_budget_min=minutes,
                       image_size=args.image_size, seed=args.seed,
                       racing=not (name.endswith("_plain") or name == "hyperband_before"),
                       run_dir=str(run_dir), overwrite=True, quiet=True,
                       space_file=args.space, tensorboard=None)
    import search.cost as cost

    full = "_" not in name
    cfg.pruning = full
    cfg.max_trial_share = cost.DEFAULT_MAX_TRIAL_SHARE if full else 1.0
    original_cost = cost.cannot_finish_reason
    if not full:  # the cost rule has no flag of its own: off for the variants of before
        cost.cannot_finish_reason = lambda **kw: None
    original = oracles.CappedHyperbandOracle
    if name == "hyperband_before":
        oracles.CappedHyperbandOracle = _legacy_hyperband()
        # KerasTuner sized from max_epochs with its own minimum of 1 epoch.
        cfg.min_epochs = 1
    t0 = time.monotonic()
    try:
        run_search_job(cfg)
    finally:
        oracles.CappedHyperbandOracle = original
        cost.cannot_finish_reason = original_cost
    wall = time.monotonic() - t0
    return summarise(run_dir, wall)


def summarise(run_dir: Path, wall_s: float) -> dict[str, Any]:
    """The variant's figures from its run folder (cv.json files only)."""
    from results.trials import collect_trials, group_rounds

    trials = sorted(collect_trials(run_dir, "cnn"), key=lambda t: t["trial_id"])
    run = json.loads((run_dir / "run.json").read_text())
    obj, direction = run["config"]["objective"], run["config"]["direction"]
    sign = 1 if direction == "max" else -1
    elapsed, best, over_time = 0.0, None, []
    for t in trials:
        elapsed += t.get("duration_s") or 0.0
        score = (t.get("mean") or {}).get(obj)
        if t["status"] == "COMPLETED" and score is not None and (
                best is None or sign * score > sign * best):
            best = score
        over_time.append({"trial_id": t["trial_id"], "t_s": round(elapsed, 1),
                          "status": t["status"], "best": best})
    configs = group_rounds(trials)
    stopped = {}  # trial id -> the rule that stopped it inside a fold (cv.json)
    for t in trials:
        cv = json.loads((Path(t["path"]) / "cv.json").read_text()) if t.get("path") else {}
        stopped[t["trial_id"]] = (cv.get("stopped_in_fold") or {}).get("rule")
    # A configuration stopped for cost (search.cost) was not judged on its quality.
    by_cost = [c for c in configs if stopped.get(c["trial_id"]) == "cost"]
    evaluated = [c for c in configs if c["status"] in ("COMPLETED", "PRUNED")
                 and c not in by_cost]
    completed = [c for c in configs if c["status"] == "COMPLETED"]
    low = [c for c in evaluated if (c.get("mean") or {}).get("val_auc", 1.0) < 0.6]
    best_t = next((p["t_s"] for p in over_time if p["best"] == best), None)
    hours = wall_s / 3600
    return {"objective": obj, "wall_s": round(wall_s, 1), "trials": len(trials),
            "failed": sum(t["status"] == "FAILED" for t in trials),
            "pruned": sum(t["status"] == "PRUNED" for t in trials),
            "stopped_for_cost": len(by_cost),
            "pruned_in_fold": sum(rule == "rung" for rule in stopped.values()),
            "configs_evaluated": len(evaluated), "configs_completed": len(completed),
            "configs_per_hour": round(len(evaluated) / hours, 1),
            "completed_per_hour": round(len(completed) / hours, 1),
            "share_below_0_6": round(len(low) / len(evaluated), 3) if evaluated else None,
            "best": best, "best_at_s": best_t, "best_over_time": over_time}


def markdown(results: dict[str, Any]) -> str:
    """The table RESULTS.md shows."""
    lines = ["| variant | trials | configs evaluated (pruned; in a fold) | stopped for cost | "
             "configs/hour | completed/hour | share < 0.6 AUC | failed | best objective (at s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in VARIANTS:
        r = results.get(name)
        if not r:
            continue
        best = "-" if r["best"] is None else f"{r['best']:.4f} ({r['best_at_s']:.0f})"
        share = "-" if r["share_below_0_6"] is None else f"{r['share_below_0_6']:.0%}"
        lines.append(f"| {name} | {r['trials']} | {r['configs_evaluated']} ({r['pruned']}; "
                     f"{r.get('pruned_in_fold', 0)}) | {r.get('stopped_for_cost', 0)} | "
                     f"{r['configs_per_hour']} | {r['completed_per_hour']} | {share} | "
                     f"{r['failed']} | {best} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" /
                                              "data" / "chest_xray"))
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--minutes", type=float, default=5.0, help="wall budget per variant")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--max-trials", type=int, default=12,
                        help="trial cap per variant (Hyperband sizes its bracket from it)")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--space", default=None, help="a --space TOML file (default space)")
    parser.add_argument("--out", default="runs/search_efficiency")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = subsample(Path(args.data), out / "data", args.fraction)
    path = out / "search_efficiency.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["_machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    results["_setup"] = vars(args)
    for name in args.variants.split(","):
        if name in results:
            continue
        print(f"== {name}: {args.minutes:g} min", flush=True)
        results[name] = run_variant(name, data, out, args.minutes, args)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(markdown(results), flush=True)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
