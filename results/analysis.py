"""What the search learned: which search dimensions mattered, from the leaderboard rows.

For every ``param_<name>`` column of the completed trials of one family:
- a categorical dimension (strings, booleans, or integers with at most 5 distinct values) gets the
  objective's mean / std / count per value and an effect size eta^2 (the share of the objective's
  variance between the values' means);
- a numeric dimension gets Spearman's rank correlation rho with the objective; its effect size
  is rho^2, so both kinds rank on the same "share of variance" scale.

The notes' hypothesis "dropout 0.2 suits low->high hierarchies, 0.5 suits high->low" is tested on
the objective by hierarchy x dropout-rate bin and reported as confirmed, not confirmed, or not
enough trials. With few trials every effect is noisy; the report says how many trials back each
number. Pure functions; :func:`write_analysis` does the IO.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from results.errors import ResultsError
from results.leaderboard import COMPLETED, FAMILIES, build_leaderboard, is_number, run_objective
from results.output_paths import check_output_dir

MIN_PER_VALUE = 2      # a value seen once says nothing about its mean
MIN_NUMERIC = 5        # fewer points than this and a rank correlation is meaningless (two
                       # trials always give rho = +-1; three give one of four values)
LOW_RATE_MAX = 0.35    # dropout-rate bins: (0, 0.35) ~ the notes' 0.2, [0.35, 1) ~ 0.5
# (hierarchy param, dropout rate param, dropout position param) per family, as in
# spaces/default_space.toml; absent params are skipped.
HYPOTHESIS_PARAMS = {
    "cnn": [("dense_hierarchy", "dense_dropout_rate", "dense_dropout"),
            ("filter_hierarchy", "conv_dropout_rate", "conv_dropout")],
    "ann": [("dense_hierarchy", "dense_dropout_rate", "dense_dropout")],
}
LOW_TO_HIGH = {"increasing", "low_to_high", "ascending"}
HIGH_TO_LOW = {"decreasing", "high_to_low", "descending"}


def _mean_std(vals: list[float]) -> tuple[float, float]:
    m = sum(vals) / len(vals)
    return m, (sum((v - m) ** 2 for v in vals) / len(vals)) ** 0.5


def _ranks(vals: list[float]) -> list[float]:
    """Average ranks (ties share the mean rank), as Spearman's rho needs."""
    order = sorted(range(len(vals)), key=lambda i: vals[i])
    ranks = [0.0] * len(vals)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and vals[order[j + 1]] == vals[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation; None when either side is constant or too short."""
    if len(x) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def _is_categorical(values: list[Any]) -> bool:
    if any(isinstance(v, (str, bool)) for v in values):
        return True
    # Small integer choices (blocks, kernel size, batch size) read best as groups; floats
    # (rates, learning rates) are continuous even when few values were sampled.
    return all(isinstance(v, int) for v in values) and len(set(values)) <= 5


def dimension_effects(rows: list[dict[str, Any]], objective: str) -> list[dict[str, Any]]:
    """Effect of every ``param_*`` column on the objective, largest effect first (pure).

    Returns:
        One dict per dimension: ``name``, ``kind`` ("categorical" | "numeric"), ``n`` (trials
        where the dimension was active), ``effect`` (eta^2 or rho^2; None when not estimable),
        ``by_value`` (categorical: value -> {mean, std, count}) or ``spearman`` (numeric), and
        ``note`` when the data are too thin.
    """
    done = [r for r in rows if r.get("status") == COMPLETED and is_number(r.get(f"mean_{objective}"))]
    params = list(dict.fromkeys(c for r in rows for c in r if c.startswith("param_")))
    out = []
    for col in params:
        pairs = [(r[col], r[f"mean_{objective}"]) for r in done if r.get(col) is not None]
        name = col.removeprefix("param_")
        if not pairs:
            continue
        values = [p[0] for p in pairs]
        entry: dict[str, Any] = {"name": name, "n": len(pairs), "effect": None, "note": None}
        if _is_categorical(values):
            groups: dict[str, list[float]] = {}
            for v, score in pairs:
                groups.setdefault(str(v), []).append(score)
            by_value = {}
            for v, scores in sorted(groups.items(), key=lambda kv: -_mean_std(kv[1])[0]):
                m, s = _mean_std(scores)
                by_value[v] = {"mean": m, "std": s, "count": len(scores)}
            entry.update(kind="categorical", by_value=by_value)
            repeated = [g for g in groups.values() if len(g) >= MIN_PER_VALUE]
            if len(groups) < 2:
                entry["note"] = "one value only: not explored"
            elif len(repeated) < 2:
                entry["note"] = f"fewer than two values with >= {MIN_PER_VALUE} trials"
            else:
                scores = [s for _, s in pairs]
                grand, _ = _mean_std(scores)
                total = sum((s - grand) ** 2 for s in scores)
                between = sum(len(g) * (_mean_std(g)[0] - grand) ** 2 for g in groups.values())
                entry["effect"] = between / total if total > 0 else 0.0
        else:
            rho = spearman([float(v) for v in values], [s for _, s in pairs])
            entry.update(kind="numeric", spearman=rho)
            if len(pairs) < MIN_NUMERIC:
                entry["note"] = f"too few trials for a rank correlation (under {MIN_NUMERIC})"
            elif rho is None:
                entry["note"] = "constant: not explored"
            else:
                entry["effect"] = rho * rho
        out.append(entry)
    out.sort(key=lambda e: (e["effect"] is None, -(e["effect"] or 0.0), e["name"]))
    return out


def _hierarchy_kind(value: Any) -> str | None:
    v = str(value).lower()
    if v in LOW_TO_HIGH:
        return "low->high"
    if v in HIGH_TO_LOW:
        return "high->low"
    return None


def dropout_bin(rate: Any, position: Any = None) -> str | None:
    """``"0.2"`` for rates below 0.35, ``"0.5"`` for 0.35 and above; None when dropout is off."""
    if position is not None and str(position).lower() == "none":
        return None
    if not is_number(rate) or rate <= 0:
        return None
    return "0.2" if rate < LOW_RATE_MAX else "0.5"


def check_dropout_hypothesis(rows: list[dict[str, Any]], objective: str, direction: str,
                            hierarchy: str, rate: str, position: str | None = None
                            ) -> dict[str, Any]:
    """The notes' "0.2 for low->high, 0.5 for high->low" on one hierarchy/dropout pair (pure).

    Verdicts:
        ``confirmed``: in both hierarchies the predicted rate bin scores better, by more than
        the two cells' combined standard error; ``direction only``: better in both but within
        noise; ``not confirmed``: the other bin is better in at least one hierarchy;
        ``not enough trials``: a cell has fewer than 2 trials (or the params are absent).
    """
    sign = 1.0 if direction == "max" else -1.0
    cells: dict[str, dict[str, list[float]]] = {"low->high": {"0.2": [], "0.5": []},
                                               "high->low": {"0.2": [], "0.5": []}}
    for r in rows:
        score = r.get(f"mean_{objective}")
        if r.get("status") != COMPLETED or not is_number(score):
            continue
        kind = _hierarchy_kind(r.get(f"param_{hierarchy}"))
        b = dropout_bin(r.get(f"param_{rate}"), r.get(f"param_{position}") if position else None)
        if kind and b:
            cells[kind][b].append(score)
    table = {k: {b: ({"mean": _mean_std(v)[0], "std": _mean_std(v)[1], "count": len(v)}
                     if v else {"mean": None, "std": None, "count": 0})
                 for b, v in bins.items()} for k, bins in cells.items()}
    result: dict[str, Any] = {"hierarchy_param": hierarchy, "rate_param": rate,
                              "position_param": position, "cells": table}
    thin = [f"{k} x {b}" for k, bins in cells.items() for b, v in bins.items() if len(v) < 2]
    if thin:
        result.update(verdict="not enough trials",
                      detail=f"cells with fewer than 2 completed trials: {', '.join(thin)}")
        return result
    checks = []
    for kind, good, bad in (("low->high", "0.2", "0.5"), ("high->low", "0.5", "0.2")):
        g, b = cells[kind][good], cells[kind][bad]
        diff = sign * (_mean_std(g)[0] - _mean_std(b)[0])
        se = math.sqrt(_mean_std(g)[1] ** 2 / len(g) + _mean_std(b)[1] ** 2 / len(b))
        checks.append((kind, diff, se))
    parts = [f"{k}: predicted rate better by {d:+.4f} (se {s:.4f})" for k, d, s in checks]
    if all(d > 0 and d > s for _, d, s in checks):
        verdict = "confirmed"
    elif all(d > 0 for _, d, _ in checks):
        verdict = "direction only"
    else:
        verdict = "not confirmed"
    result.update(verdict=verdict, detail="; ".join(parts))
    return result


PROBES = ("val_auc_border", "val_auc_photometric", "val_auc_geometric", "val_auc_batch",
          "val_auc_robust")


def probe_agreement(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """How each shortcut probe ranks the completed trials against clean ``val_auc`` (pure).

    Clean validation AUC saturates on one folder's folds; where a probe disagrees with it, the
    two would pick different winners, and the probe is the one built to see shortcuts.

    Returns:
        One dict per probe present: ``{"probe", "n", "spearman" (with val_auc), "mean_drop"
        (mean of val_auc - probe), "best_by_clean", "best_by_probe"}`` (trial ids).
    """
    done = [r for r in rows if r.get("status") == COMPLETED and is_number(r.get("mean_val_auc"))]
    out = []
    for probe in PROBES:
        pairs = [(r["trial_id"], r["mean_val_auc"], r[f"mean_{probe}"]) for r in done
                 if is_number(r.get(f"mean_{probe}"))]
        if not pairs:
            continue
        ids, clean, shifted = zip(*pairs)
        out.append({"probe": probe, "n": len(pairs),
                    "spearman": spearman(list(clean), list(shifted)),
                    "mean_drop": sum(c - s for c, s in zip(clean, shifted)) / len(pairs),
                    "best_by_clean": ids[max(range(len(ids)), key=lambda i: clean[i])],
                    "best_by_probe": ids[max(range(len(ids)), key=lambda i: shifted[i])]})
    return out


def analyze_rows(rows: list[dict[str, Any]], objective: str, direction: str,
                 family: str) -> dict[str, Any]:
    """The whole analysis of one family's rows (pure)."""
    done = [r for r in rows if r.get("status") == COMPLETED]
    params = {c.removeprefix("param_") for r in rows for c, v in r.items()
              if c.startswith("param_") and v is not None}
    hyps = [check_dropout_hypothesis(rows, objective, direction, h, r, p)
            for h, r, p in HYPOTHESIS_PARAMS.get(family, []) if h in params and r in params]
    return {"family": family, "objective": objective, "direction": direction,
            "n_completed": len(done), "n_trials": len(rows),
            # Hyperband: the first-round epochs every configuration is compared at.
            "epochs": sorted({int(r["epochs"]) for r in done if r.get("epochs")}),
            "dimensions": dimension_effects(rows, objective), "hypotheses": hyps,
            "probes": probe_agreement(rows)}


def _fmt(v: Any, nd: int = 4) -> str:
    return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def analysis_markdown(results: list[dict[str, Any]]) -> str:
    """Human-readable analysis.md from :func:`analyze_rows` results."""
    lines = ["# What the search learned", ""]
    for res in results:
        obj = res["objective"]
        lines += [f"## {res['family'].upper()} ({res['n_completed']} completed trials of "
                  f"{res['n_trials']}; objective {obj}, {res['direction']})", ""]
        if res["n_completed"] < 5:
            lines += ["With this few trials every effect below is anecdotal.", ""]
        if res.get("epochs"):
            lines += [f"Hyperband: each configuration is compared at its first round "
                      f"({', '.join(map(str, res['epochs']))} epochs per fold), the budget all "
                      "of them had; the leaderboard ranks their latest rounds.", ""]
        lines += ["### Dimensions ranked by effect size", "",
                  "| dimension | kind | trials | effect | detail |", "|---|---|---|---|---|"]
        for d in res["dimensions"]:
            if d["kind"] == "numeric":
                # A rho from 2-4 trials is noise that reads like a finding: the note says why.
                rho = d.get("spearman") if d["n"] >= MIN_NUMERIC else None
                detail = "Spearman rho " + (_fmt(rho, 3) if rho is not None else "n/a")
            else:
                detail = "; ".join(f"{v}: {_fmt(s['mean'])} +- {_fmt(s['std'])} (n={s['count']})"
                                   for v, s in d["by_value"].items())
            if d.get("note"):
                detail += f" ({d['note']})"
            eff = _fmt(d["effect"], 3) if d["effect"] is not None else "n/a"
            lines.append(f"| {d['name']} | {d['kind']} | {d['n']} | {eff} | {detail} |")
        lines += ["", "Effect: eta^2 (categorical) or rho^2 (numeric), the share of the "
                  "objective's variance the dimension accounts for.", ""]
        if res.get("probes"):
            lines += ["### Shortcut probes against clean val_auc", "",
                      "| probe | trials | Spearman rho with val_auc | mean AUC lost | best by "
                      "val_auc | best by probe |", "|---|---|---|---|---|---|"]
            for p in res["probes"]:
                rho = (_fmt(p["spearman"], 3) if p["n"] >= MIN_NUMERIC
                       else f"n/a (too few trials, under {MIN_NUMERIC})")
                lines.append(f"| {p['probe']} | {p['n']} | {rho} | {_fmt(p['mean_drop'])} | "
                             f"{p['best_by_clean']} | {p['best_by_probe']} |")
            lines += ["", "A probe scores each fold model on shifted copies of its validation "
                      "images (search/fit/probes.py). Where the best trial by val_auc and by a "
                      "probe differ, clean cross-validation alone would pick a model that "
                      "loses more under that shift.", ""]
        lines += ["### Notes' hypothesis: dropout 0.2 suits low->high, 0.5 suits high->low", ""]
        if not res["hypotheses"]:
            lines += ["Not testable: the hierarchy or dropout-rate dimension is absent.", ""]
        for h in res["hypotheses"]:
            lines += [f"**{h['hierarchy_param']} x {h['rate_param']}: {h['verdict']}** "
                      f"({h['detail']})", "", f"| hierarchy | {obj} at ~0.2 | {obj} at ~0.5 |",
                      "|---|---|---|"]
            for kind, bins in h["cells"].items():
                cells = [f"{_fmt(c['mean'])} (n={c['count']})" for c in bins.values()]
                lines.append(f"| {kind} | {cells[0]} | {cells[1]} |")
            lines.append("")
    return "\n".join(lines) + "\n"


def plot_analysis(results: list[dict[str, Any]], out_path: Path) -> Path:
    """One figure: effect size per dimension for each family (bars; hatched = not estimable)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n = max(1, len(results))
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 0.3 * max(
        (len(r["dimensions"]) for r in results), default=5) + 2), squeeze=False)
    for ax, res in zip(axes[0], results):
        dims = res["dimensions"][::-1]
        ax.barh(range(len(dims)), [d["effect"] or 0.0 for d in dims],
                color=["tab:blue" if d["kind"] == "categorical" else "tab:orange" for d in dims])
        ax.set_yticks(range(len(dims)), [d["name"] + ("" if d["effect"] is not None else " (n/a)")
                                         for d in dims], fontsize=8)
        ax.set_xlim(0, 1)
        ax.set(xlabel="effect (blue: eta^2 categorical, orange: rho^2 numeric)",
               title=f"{res['family']}: {res['n_completed']} trials, {res['objective']}")
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path


def write_analysis(run_dir: str | Path, family: str = "both",
                   out_dir: str | Path | None = None) -> dict[str, Path]:
    """Analyses a run and writes analysis.md, analysis.json and analysis.png.

    Returns:
        ``{"md": ..., "json": ..., "png": ...}`` paths (default folder ``run_dir/analysis``).
    """
    run_dir = Path(run_dir)
    objective, direction = run_objective(run_dir)
    # Like budgets: a promoted configuration's later rounds trained longer than the others.
    rows = build_leaderboard(run_dir, family, rounds="first")
    out = check_output_dir(out_dir if out_dir else run_dir / "analysis")
    results = []
    for fam in (FAMILIES if family == "both" else (family,)):
        fam_rows = [r for r in rows if r.get("model") == fam]
        if fam_rows:
            results.append(analyze_rows(fam_rows, objective, direction, fam))
    if not any(r["n_completed"] for r in results):
        raise ResultsError(f"Run folder {run_dir} has no completed trials to analyse yet; let the "
                           f"search finish at least one trial (`run_search.py leaderboard "
                           f"--run-dir {run_dir} --all` shows progress).")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "analysis.md", "json": out / "analysis.json", "png": out / "analysis.png"}
    paths["md"].write_text(analysis_markdown(results), encoding="utf-8")
    paths["json"].write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot_analysis(results, paths["png"])
    return paths
