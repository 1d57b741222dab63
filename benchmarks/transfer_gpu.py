"""GPU benchmark of the transfer family: a fixed-budget search at 224 px, the winner's CV figures.

Meant for a GPU box (``KERAS_BACKEND=jax`` works: no TensorFlow needed, see gpu_benchmark.py).
It searches ``--model transfer`` on the real data (``--data``, default
``../shared/data/chest_xray``) at ``--image-size 224`` with the GPU preset's budgets (50M
parameters, 20 GFLOPs per image: every backbone fits), random search, 3 patient-grouped folds,
mixed precision, within ``--minutes`` (the search's own ``--time-budget``; finished folds are
kept and the run stays resumable), and records the winner's cross-validation figures: mean and
standard deviation of the objective, val_auc, recall and precision, its backbone and stages,
trials completed/pruned/failed and the backbones tried.

Weights: ``--weights imagenet`` (default) needs internet or Keras' cache (``~/.keras/models``)
on the box; an offline box takes ``--weights PATH`` with ``--backbone`` fixed to that file's
backbone. The search refuses missing weights before any training.

    KERAS_BACKEND=jax python benchmarks/transfer_gpu.py --minutes 40 \\
        --append benchmarks/RESULTS.md
    python benchmarks/transfer_gpu.py --backbone resnet50 \\
        --weights ~/.keras/models/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5

It prints a markdown block and, with ``--append``, appends it to RESULTS.md. The numbers are
in-distribution cross-validation on the training folder (see README, "Selecting for new
patients"): they rank the backbones, they are not evidence of generalisation to the test folder.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METRICS = ("val_auc", "val_recall", "val_precision", "val_loss")


def _space_file(folder: Path, backbone: str | None) -> Path:
    """The shipped transfer space at 224 px (input_size 0 = the image size), backbone optional."""
    lines = ["[transfer]", "input_size = 0"]
    if backbone:
        lines.append(f'backbone = "{backbone}"')
    path = folder / "transfer_space.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _winner(run_dir: Path, objective: str, direction: str) -> dict[str, Any] | None:
    """The best completed trial's cv.json (never a pruned one)."""
    best, best_score = None, None
    for path in sorted((run_dir / "transfer").glob("trial_*/cv.json")):
        record = json.loads(path.read_text())
        score = (record.get("mean") or {}).get(objective)
        if record.get("status") != "COMPLETED" or score is None:
            continue
        if best is None or (score > best_score if direction == "max" else score < best_score):
            best, best_score = record, score
    return best


def _tried(run_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in (run_dir / "transfer").glob("trial_*/cv.json"):
        key = (json.loads(path.read_text()).get("hyperparameters") or {}).get("backbone", "?")
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _block(args: argparse.Namespace, summary: dict[str, Any], best: dict[str, Any] | None,
           tried: dict[str, int], objective: str, elapsed: float) -> str:
    import keras

    fam = summary["families"].get("transfer", {})
    lines = [f"## Transfer family on a GPU ({time.strftime('%Y-%m-%d')}, "
             f"{platform.node()}, keras {keras.__version__} {keras.backend.backend()})", "",
             f"`benchmarks/transfer_gpu.py --minutes {args.minutes} --image-size "
             f"{args.image_size} --weights {args.weights}"
             + (f" --backbone {args.backbone}" if args.backbone else "") + "`: "
             f"status {summary['status']} after {elapsed / 60:.1f} min; trials completed "
             f"{fam.get('trials_completed')}, pruned {fam.get('trials_pruned')}, failed "
             f"{fam.get('trials_failed')}; backbones tried {tried}.", ""]
    if best is None:
        lines.append("No completed trial: nothing to report.")
        return "\n".join(lines) + "\n"
    hp = best.get("hyperparameters") or {}
    lines += ["| metric | mean | std | per fold |", "| --- | ---: | ---: | --- |"]
    for name in (objective, *[m for m in METRICS if m != objective]):
        mean, std = (best.get("mean") or {}).get(name), (best.get("std") or {}).get(name)
        if mean is None:
            continue
        folds = ", ".join(f"{f.get(name, float('nan')):.4f}" for f in best.get("folds", []))
        lines.append(f"| {name} | {mean:.4f} | {std or 0:.4f} | {folds} |")
    lines += ["", f"Winner: trial {best['trial_id']}, backbone {hp.get('backbone')}, "
              f"{best.get('n_params'):,} parameters, fine_tune_blocks "
              f"{hp.get('fine_tune_blocks')}, head_epochs {hp.get('head_epochs')}, "
              f"fine_tune_lr_ratio {hp.get('fine_tune_lr_ratio')}, learning_rate "
              f"{hp.get('learning_rate')}, batch_size {hp.get('batch_size')}.", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--minutes", type=float, default=40.0,
                        help="time budget of the search (default 40)")
    parser.add_argument("--max-trials", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=12)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--weights", default="imagenet", metavar="imagenet|PATH|none")
    parser.add_argument("--backbone", default=None, help="fix one backbone (needed with PATH)")
    parser.add_argument("--run-dir", default=None, help="default: a temporary folder")
    parser.add_argument("--append", default=None, metavar="RESULTS.md")
    args = parser.parse_args(argv)

    from results.flow import GPU_PRESET
    from search.config import SearchConfig
    from search.engine import run_search_job

    work = Path(tempfile.mkdtemp(prefix="transfer_gpu_"))
    run_dir = Path(args.run_dir) if args.run_dir else work / "run"
    config = SearchConfig(
        data=args.data, model="transfer", tuner="random", folds=args.folds,
        max_trials=args.max_trials, max_epochs=args.max_epochs, patience=4,
        time_budget_min=args.minutes, image_size=args.image_size,
        space_file=str(_space_file(work, args.backbone)), weights=args.weights,
        max_params=GPU_PRESET["max_params"], max_gflops=GPU_PRESET["max_gflops"],
        mixed_precision="auto", run_dir=str(run_dir), quiet=False,
        command=["benchmarks/transfer_gpu.py", *(argv or sys.argv[1:])])
    start = time.monotonic()
    summary = run_search_job(config)
    elapsed = time.monotonic() - start
    best = _winner(run_dir, config.objective, config.direction)
    block = _block(args, summary, best, _tried(run_dir), config.objective, elapsed)
    print(block)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as fh:
            fh.write("\n" + block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
