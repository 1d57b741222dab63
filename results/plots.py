"""Learning-curve and ranking plots (matplotlib, Agg backend, PNG) written into the run folder.

- ``plots/<family>/trial_<id>.png``: per fold, train vs validation loss and the objective, with
  the fold mean; the restored best epoch of each fold is marked.
- ``plots/<family>_objective_by_trial.png``: the objective of every trial (fold mean +- std) in
  trial order, with the best-so-far line.
- ``plots/<family>_top<k>.png``: the top-k trials with fold error bars and the fold values.

Only JSON is read (fold<k>.json histories, cv.json), so plots can be drawn while a search runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from results.leaderboard import (COMPLETED, FAMILIES, collect_trials, read_json, run_objective,
                                 select_rows, trials_to_rows)
from results.report.figures import integer_epochs
from search.fit.probes import epoch_metric
from search.store.fold_records import best_epoch_index


def _pyplot():
    # Agg: no display needed (servers, CI, a search running over ssh).
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _fold_histories(trial_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(trial_dir.glob("fold*.json")):
        if not path.stem[4:].isdigit():
            continue
        data = read_json(path)
        if isinstance(data, dict) and isinstance(data.get("history"), dict):
            out.append(data)
    return sorted(out, key=lambda d: d.get("fold", 0))


def _epoch_mean(series: list[list[float]]) -> list[float]:
    """Mean over folds per epoch; folds stopped early simply stop contributing."""
    n = max((len(s) for s in series), default=0)
    means = []
    for e in range(n):
        vals = [s[e] for s in series if len(s) > e and s[e] is not None and math.isfinite(s[e])]
        means.append(sum(vals) / len(vals) if vals else float("nan"))
    return means


def plot_trial(trial_dir: str | Path, out_path: str | Path, objective: str = "val_auc",
               title: str | None = None) -> Path | None:
    """Draws one trial's learning curves; returns the PNG path, or None without fold histories."""
    trial_dir, out_path = Path(trial_dir), Path(out_path)
    folds = _fold_histories(trial_dir)
    if not folds:
        return None
    plt = _pyplot()
    train_obj = objective[4:] if objective.startswith("val_") else objective
    fig, (ax_loss, ax_obj) = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, fold in enumerate(folds):
        hist, c = fold["history"], colors[i % len(colors)]
        k = fold.get("fold", i)
        start = int(fold.get("initial_epoch") or 0)
        for key, style, ax in (("loss", ":", ax_loss), ("val_loss", "-", ax_loss),
                               (train_obj, ":", ax_obj), (objective, "-", ax_obj)):
            vals = hist.get(key)
            if vals:
                label = f"fold{k} {'val' if key.startswith('val_') else 'train'}"
                # Markers keep one-epoch folds (short Hyperband rounds) visible.
                ax.plot(range(start + 1, start + len(vals) + 1), vals, style, color=c,
                        marker=".", alpha=0.6, label=label)
        idx = best_epoch_index(fold)
        if idx is not None and hist.get(objective) and 0 <= idx < len(hist[objective]):
            ax_obj.plot(fold["best_epoch"], hist[objective][idx], "o", color=c)
    for key, ax in (("val_loss", ax_loss), (objective, ax_obj)):
        mean = _epoch_mean([f["history"].get(key) or [] for f in folds])
        if mean:
            start = min(int(f.get("initial_epoch") or 0) for f in folds)
            ax.plot(range(start + 1, start + len(mean) + 1), mean, "-", color="black", lw=2.5,
                    marker=".", label="fold mean (val)")
    ax_loss.set(title="loss (dotted: train, solid: validation)", xlabel="epoch", ylabel="loss")
    ax_obj.set(title=f"{objective} (dots: restored best epoch)", xlabel="epoch", ylabel=objective)
    for ax in (ax_loss, ax_obj):
        integer_epochs(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle(title or trial_dir.name)
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path


def plot_objective_by_trial(rows: list[dict[str, Any]], objective: str, direction: str,
                            out_path: str | Path, title: str = "") -> Path | None:
    """Objective (fold mean +- std) of completed trials in trial order, with the best-so-far line."""
    done = sorted((r for r in rows if r.get("status") == COMPLETED
                   and r.get(f"mean_{objective}") is not None), key=lambda r: r["trial_id"])
    if not done:
        return None
    plt = _pyplot()
    x = list(range(len(done)))
    y = [r[f"mean_{objective}"] for r in done]
    err = [r.get(f"std_{objective}") or 0.0 for r in done]
    pick = max if direction == "max" else min
    best = [pick(y[: i + 1]) for i in range(len(y))]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(done) + 3), 4))
    ax.errorbar(x, y, yerr=err, fmt="o", capsize=3, label="trial (fold mean +- std)")
    ax.step(x, best, where="post", color="tab:red", label="best so far")
    ax.set_xticks(x, [r["trial_id"] for r in done], rotation=90, fontsize=7)
    ax.set(xlabel="trial", ylabel=objective, title=title or f"{objective} by trial")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out_path, plt)


def plot_top_k(rows: list[dict[str, Any]], objective: str, out_path: str | Path, k: int = 10,
               title: str = "") -> Path | None:
    """Horizontal bars of the top-k trials' fold means with std error bars and fold points."""
    top = select_rows(rows, top_k=k)
    if not top:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(top) + 1.5))
    labels = [f"#{r['rank']} {r['model']} {r['trial_id']}" for r in top][::-1]
    means = [r[f"mean_{objective}"] for r in top][::-1]
    errs = [r.get(f"std_{objective}") or 0.0 for r in top][::-1]
    ax.barh(range(len(top)), means, xerr=errs, capsize=3, color="tab:blue", alpha=0.6)
    for i, r in enumerate(top[::-1]):
        folds = [v for c, v in r.items() if c.startswith("fold") and c.endswith(f"_{objective}")
                 and v is not None]
        ax.plot(folds, [i] * len(folds), "k.", ms=5)
    lo = min(min(m - e for m, e in zip(means, errs)), *(m for m in means))
    ax.set_xlim(max(0.0, lo - 0.05) if lo > 0 else lo - 0.05, None)
    ax.set_yticks(range(len(top)), labels, fontsize=8)
    ax.set(xlabel=f"{objective} (bar: fold mean, line: std, dots: folds)",
           title=title or f"top {len(top)} by {objective}")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out_path, plt)


def _save(fig: Any, out_path: str | Path, plt: Any) -> Path:
    """Writes the figure as PNG (creating the folder) and frees it."""
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path


def _stale(png: Path, sources: list[Path]) -> bool:
    if not png.exists():
        return True
    mtime = png.stat().st_mtime
    return any(s.exists() and s.stat().st_mtime > mtime for s in sources)


def plot_run(run_dir: str | Path, family: str = "both", *, top_k: int = 10,
             out_dir: str | Path | None = None) -> list[Path]:
    """Draws every plot of a run into ``run_dir/plots`` (or ``out_dir``) and returns the PNG paths.

    Per-trial figures are only redrawn when their fold files changed, so calling this after
    every leaderboard refresh of a long search stays cheap.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "plots"
    objective, direction = run_objective(run_dir)
    written: list[Path] = []
    for fam in (FAMILIES if family == "both" else (family,)):
        trials = collect_trials(run_dir, fam)
        if not trials:
            continue
        for t in trials:
            tdir = Path(t["path"])
            png = out_dir / fam / f"trial_{t['trial_id']}.png"
            sources = list(tdir.glob("fold*.json")) + [tdir / "cv.json"]
            if not _stale(png, sources):
                written.append(png)
                continue
            score = t.get("mean", {}).get(objective)
            title = f"{fam} trial {t['trial_id']} ({t['status']}"
            title += f", mean {objective} {score:.4f})" if isinstance(score, float) else ")"
            # Curves show the per-epoch metric; a probe objective exists at the best epoch only.
            path = plot_trial(tdir, png, epoch_metric(objective), title=title)
            if path:
                written.append(path)
        rows = trials_to_rows(trials, objective, direction)
        for path in (
            plot_objective_by_trial(rows, objective, direction,
                                    out_dir / f"{fam}_objective_by_trial.png",
                                    title=f"{fam}: {objective} by trial"),
            plot_top_k(rows, objective, out_dir / f"{fam}_top{top_k}.png", k=top_k,
                       title=f"{fam}: top {top_k} by {objective}"),
        ):
            if path:
                written.append(path)
    return written
