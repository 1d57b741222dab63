"""Figures of the comparison report (matplotlib, Agg, PNG): one function per figure.

Each function takes plain data (from ``results.metrics`` and the exports) and a path, and
returns the path it wrote, so the report can embed it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

COLORS = {"cnn": "#1f77b4", "ann": "#d62728", "transfer": "#2ca02c"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def integer_epochs(ax: Any) -> None:
    """Whole-number ticks on an epoch axis (a 2-epoch curve otherwise shows 1.2, 1.4, ...)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def roc_pr(curves: dict[str, dict[str, Any]], metrics: dict[str, dict[str, Any]],
           path: Path) -> Path:
    """ROC and precision-recall curves of every model, overlaid, with the threshold marked."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.3))
    for name, c in curves.items():
        if "roc" not in c:
            continue
        m = metrics[name]["at_threshold"]
        col = COLORS.get(name)
        ax1.plot(c["roc"]["fpr"], c["roc"]["tpr"], color=col,
                 label=f"{name.upper()} AUC {m['roc_auc']:.3f}")
        ax1.plot([1 - m["specificity"]], [m["sensitivity"]], "o", color=col)
        ax2.plot(c["pr"]["recall"], c["pr"]["precision"], color=col,
                 label=f"{name.upper()} AP {m['pr_auc']:.3f}")
        ax2.plot([m["sensitivity"]], [m["precision"]], "o", color=col)
    ax1.plot([0, 1], [0, 1], ":", color="grey")
    ax1.set(xlabel="1 - specificity (false-positive rate)", ylabel="sensitivity",
            title="ROC (dot: exported threshold)")
    ax2.set(xlabel="recall (sensitivity)", ylabel="precision", title="Precision-recall")
    for ax in (ax1, ax2):
        ax.legend(loc="lower left" if ax is ax2 else "lower right")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def confusion_matrices(metrics: dict[str, dict[str, Any]], class_names: list[str],
                       path: Path) -> Path:
    """Confusion matrices of each model at its exported threshold and at 0.5."""
    plt = _plt()
    names = list(metrics)
    fig, axes = plt.subplots(len(names), 2, figsize=(7.5, 3.3 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for c, (key, label) in enumerate((("confusion_at_threshold", "exported threshold "
                                           f"{metrics[name]['threshold']:.3f}"),
                                          ("confusion_at_0.5", "threshold 0.5"))):
            cm = metrics[name][key]
            mat = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
            ax = axes[r][c]
            ax.imshow(mat, cmap="Blues")
            for (i, j), v in np.ndenumerate(mat):
                ax.text(j, i, str(v), ha="center", va="center",
                        color="white" if v > mat.max() / 2 else "black", fontsize=12)
            ax.set_xticks([0, 1], class_names, fontsize=8)
            ax.set_xlabel("predicted", fontsize=8)
            # Rows are the same classes in both columns: naming them on the left only keeps a
            # long name ("true PNEUMONIA") from running into the matrix beside it.
            ax.set_yticks([0, 1], class_names if c == 0 else [], fontsize=8)
            if c == 0:
                ax.set_ylabel("true", fontsize=8)
            ax.set_title(f"{name.upper()} at {label}", fontsize=9)
    return _save(fig, path)


def calibration(curves: dict[str, dict[str, Any]], path: Path) -> Path:
    """Reliability diagram: observed positive fraction against mean predicted probability."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.3))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    for name, c in curves.items():
        cal = c["calibration"]
        ax.plot(cal["mean_predicted"], cal["fraction_positive"], "o-", color=COLORS.get(name),
                label=name.upper())
    ax.set(xlabel="mean predicted probability", ylabel="fraction positive",
           title="Calibration", xlim=(0, 1), ylim=(0, 1))
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def learning_curves(histories: dict[str, dict[str, list[float]]], objective: str,
                    path: Path) -> Path:
    """Retraining loss and objective (fit vs validation slice) of each exported model."""
    plt = _plt()
    names = list(histories)
    metric = objective.removeprefix("val_")
    fig, axes = plt.subplots(len(names), 2, figsize=(9, 3.2 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        h = histories[name]
        for c, key in enumerate(("loss", metric)):
            ax = axes[r][c]
            if key in h:
                ax.plot(range(1, len(h[key]) + 1), h[key], label="fit", color="#555")
            if "val_" + key in h:
                ax.plot(range(1, len(h["val_" + key]) + 1), h["val_" + key],
                        label="validation slice", color=COLORS.get(name))
            ax.set(title=f"{name.upper()} {key}", xlabel="epoch")
            integer_epochs(ax)
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    return _save(fig, path)


def gradcam_grid(images: np.ndarray, heatmaps: np.ndarray, captions: list[str],
                 path: Path) -> Path:
    """Each image with its Grad-CAM heatmap overlaid."""
    plt = _plt()
    n = len(images)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes[i // cols][i % cols]
        img = images[i]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
        ax.imshow(heatmaps[i], cmap="jet", alpha=0.4, vmin=0, vmax=1)
        ax.set_title(captions[i], fontsize=8)
    return _save(fig, path)
