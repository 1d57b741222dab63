#!/usr/bin/env python3
"""Simulated sites for ``calibrate`` and ``check`` (issue 33, items 2 and 4).

A site is the run's carved test split (patient-grouped, never used for any choice), unshifted
or shifted as a whole by ``data_pipeline.shifts`` (photometric or geometric, mild = strength 0.5,
strong = strength 1.5 of the probes' ranges). Every figure is measured on these images only.

Item 4 (labelled films): per site and n in 20, 40, 80, 160 films per class, 1,000 draws: n
NORMAL and n PNEUMONIA films are the site's labelled films, the rest of the site scores the
threshold each rule picks from them:
- ``calibrate``: the highest threshold whose one-sided 95% Clopper-Pearson lower bound on
  sensitivity is >= 0.90 (none below 29 pneumonia films);
- ``quantile``: the highest threshold with sensitivity >= 0.95 on the labelled films (the plain
  5% quantile of their pneumonia scores);
- ``exported``: the export's own threshold.json (nothing learnt from the site).
Reported: mean specificity and sensitivity on the rest, and how often sensitivity on the rest
fell below the 0.90 floor, on the rest and on the whole site's pneumonia films.

Item 2 (unlabelled films): per site and n in 50, 100, 200, 100 draws of n films at the site's
own class mix, plus same-site draws at other pneumonia shares (a label shift, which moves no
operating point): how often ``check`` warns (p < 0.05).

Usage:
  .venv/bin/python benchmarks/site_calibration.py --run-dir runs/<name> [--export cnn/rank1]
      [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FLOOR, CONFIDENCE, QUANTILE_TARGET = 0.90, 0.95, 0.95
SIZES = (20, 40, 80, 160)
CHECK_SIZES = (50, 100, 200)


def sites(x: np.ndarray) -> dict[str, np.ndarray]:
    """The simulated sites: the test split and its shifted copies."""
    from data_pipeline.shifts import geometric_shifted, photometric_shifted

    return {"same site (carved test split)": x,
            "photometric mild (0.5)": photometric_shifted(x, strength=0.5),
            "photometric strong (1.5)": photometric_shifted(x, strength=1.5),
            "geometric mild (0.5)": geometric_shifted(x, strength=0.5),
            "geometric strong (1.5)": geometric_shifted(x, strength=1.5)}


def labelled_draws(y: np.ndarray, s: np.ndarray, n: int, exported: float, draws: int,
                   seed: int) -> dict[str, Any]:
    """Item 4 for one site and n: each rule's specificity/sensitivity on the rest."""
    from results.site.calibration import guaranteed_threshold
    from results.thresholds import threshold_for_sensitivity

    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rows: dict[str, list[tuple[float, float, float]]] = {"calibrate": [], "quantile": [],
                                                  "exported": []}
    infeasible = 0
    for _ in range(draws):
        lab = np.r_[rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)]
        rest = np.setdiff1d(np.arange(y.size), lab)
        yl, sl, yr, sr = y[lab], s[lab], y[rest], s[rest]
        t_cal = guaranteed_threshold(yl, sl, FLOOR, CONFIDENCE)
        chosen = {"quantile": threshold_for_sensitivity(yl, sl, QUANTILE_TARGET),
                  "exported": exported}
        if t_cal is None:
            infeasible += 1
        else:
            chosen["calibrate"] = t_cal
        for rule, t in chosen.items():
            pred = sr >= t
            # and the whole site's pneumonia films: the finite population the labelled films
            # were drawn from (the rest alone adds its own sampling noise, and is what is left
            # after the draw, so it leans the other way)
            rows[rule].append((float(np.mean(pred[yr == 1])), float(np.mean(~pred[yr == 0])),
                               float(np.mean(s[y == 1] >= t))))
    out: dict[str, Any] = {"n": n, "draws": draws, "calibrate_infeasible": infeasible}
    for rule, vals in rows.items():
        if vals:
            a = np.asarray(vals)
            out[rule] = {"sensitivity": float(a[:, 0].mean()),
                         "specificity": float(a[:, 1].mean()),
                         "below_floor": float(np.mean(a[:, 0] < FLOOR)),
                         "below_floor_site": float(np.mean(a[:, 2] < FLOOR)),
                         "draws": len(vals)}
        else:
            out[rule] = None
    return out


def check_draws(local: np.ndarray, y: np.ndarray, ref: dict[str, np.ndarray], n: int,
                draws: int, seed: int, share: float | None = None) -> float:
    """Item 2: how often ``check`` warns on n unlabelled films of a site."""
    from results.site.shift_check import check_scores

    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    warned = 0
    for d in range(draws):
        if share is None:
            idx = rng.choice(y.size, n, replace=False)
        else:
            n1 = int(round(share * n))
            idx = np.r_[rng.choice(pos, n1, replace=False), rng.choice(neg, n - n1,
                                                                        replace=n - n1 > neg.size)]
        warned += check_scores(local[idx], ref["oof"], ref["y"], seed=d)["shifted"]
    return warned / draws


def measure(run_dir: Path, export_name: str, draws: int, check_draws_n: int) -> dict[str, Any]:
    from results.run_data import load_run_data
    from results.model_io import load_export, load_run
    from results.site.reference import fold_members, load_or_compute_reference, member_scores
    from results.thresholds import operating_point, threshold_for_sensitivity
    from search.fit.probes import predict_scores

    run = load_run(run_dir)
    dataset, split = load_run_data(run_dir, run, progress=False)
    test = np.asarray(split.test_idx)
    x, y = dataset.x[test], dataset.y[test]
    export_dir = run_dir / "exports" / export_name
    export = load_export(export_dir)
    t_exp = float(export.threshold["threshold"])
    members = fold_members(export.model, export_dir)
    ref = load_or_compute_reference(export_dir, export.model, export.metadata, progress=True)
    result: dict[str, Any] = {"run_dir": str(run_dir), "export": export_name,
                              "test_split": split.source, "n_test": int(y.size),
                              "n_test_positive": int(y.sum()), "exported_threshold": t_exp,
                              "sites": {}}
    for i, (name, xs) in enumerate(sites(x).items()):
        print(f"site: {name}", flush=True)
        s = predict_scores(export.model, xs)
        local = member_scores(members, xs)
        best = threshold_for_sensitivity(y, s, QUANTILE_TARGET)
        site = {"exported_at_site": operating_point(y, s, t_exp),
                "site_best_at_sensitivity_0.95": operating_point(y, s, best),
                "labelled": [labelled_draws(y, s, n, t_exp, draws, 1000 * i + n)
                             for n in SIZES],
                "check_warns": {str(n): check_draws(local, y, ref, n, check_draws_n, 7 * i + n)
                                for n in CHECK_SIZES} if check_draws_n else {}}
        if i == 0 and check_draws_n:  # label shift only: the same site at other pneumonia shares
            site["check_warns_label_shift"] = {
                f"{share} pneumonia, n=100": check_draws(local, y, ref, 100, check_draws_n,
                                                         99, share=share)
                for share in (0.3, 0.5, 0.9)}
        result["sites"][name] = site
    return result


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def print_tables(r: dict[str, Any]) -> None:
    print(f"\nexport {r['export']} of {r['run_dir']}; sites built from the {r['test_split']} test "
          f"split ({r['n_test']} films, {r['n_test_positive']} pneumonia); exported threshold "
          f"{r['exported_threshold']:.4f}\n")
    print("| site | exported: sens / spec | site's own best spec at sens 0.95 |")
    print("| --- | --- | --- |")
    for name, s in r["sites"].items():
        e, b = s["exported_at_site"], s["site_best_at_sensitivity_0.95"]
        print(f"| {name} | {_pct(e['sensitivity'])} / {_pct(e['specificity'])} | "
              f"{_pct(b['specificity'])} |")
    print("\n| site | n/class | calibrate: spec, sens, % sens<0.90 (whole site) | quantile: "
          "same | exported: same |")
    print("| --- | --- | --- | --- | --- |")
    for name, s in r["sites"].items():
        for row in s["labelled"]:
            cells = []
            for rule in ("calibrate", "quantile", "exported"):
                v = row[rule]
                cells.append("too few (29 needed)" if v is None else
                             f"{_pct(v['specificity'])}, {_pct(v['sensitivity'])}, "
                             f"{_pct(v['below_floor'])} ({_pct(v['below_floor_site'])})")
            print(f"| {name} | {row['n']} | " + " | ".join(cells) + " |")
    print("\n| site | check warns, n=" + " / ".join(map(str, CHECK_SIZES)) + " (% of draws) |")
    print("| --- | --- |")
    for name, s in r["sites"].items():
        print(f"| {name} | " + " / ".join(_pct(v) for v in s["check_warns"].values()) + " |")
        for label, v in (s.get("check_warns_label_shift") or {}).items():
            print(f"| {name}, {label} | {_pct(v)} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--export", default="cnn/rank1")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--check-draws", type=int, default=100,
                        help="draws per cell for the unlabelled check (0: skip it)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    r = measure(args.run_dir, args.export, args.draws, args.check_draws)
    print_tables(r)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
