#!/usr/bin/env python3
"""Memory growth of the search engine: resident-set size after each trial of a long search.

Runs N small trials (default 30, random search, ANN, 1 fold) in one process and records the
RSS after every trial; the figure is the growth from the end of trial 3 (imports, tracing and
caches warmed up) to the end of the last trial. Target (issue 4): < 100 MB.
Before ``search/fit/memory.py`` TensorFlow grew ~6-11 MB per fold fit (optimizer slots lifted out of
the traced step, and a gradient registration per traced step that keeps its graph alive); see
benchmarks/RESULTS.md for the figures before and after.

Usage:
  .venv/bin/python benchmarks/memory_growth.py [--data DIR] [--trials 30] [--image-size 32]
      [--model ann] [--folds 1] [--max-epochs 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="default: generated synthetic data")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--model", default="ann", choices=("cnn", "ann"))
    ap.add_argument("--folds", type=int, default=1)
    ap.add_argument("--max-epochs", type=int, default=1)
    ap.add_argument("--without-memory-guard", action="store_true",
                    help="baseline: turn off search/fit/memory.py's fixes (eager optimizer build, "
                         "gradient-registry release, heap trim) to measure what they save")
    args = ap.parse_args()

    from search.tuners import cv_tuner
    from search.config import SearchConfig
    from search.engine import run_search_job
    from search.fit.memory import rss_mb

    if args.without_memory_guard:
        from search.fit import fold_fit, memory

        class NoGuard:
            def release(self) -> int:
                return 0

        memory.FitMemoryGuard = NoGuard  # fit_scope looks it up in search.fit.memory
        memory.trim_c_heap = lambda: False
        fold_fit.build_optimizer = lambda model: None
    samples: list[float] = []
    original = cv_tuner.CVTuner.on_trial_end

    def on_trial_end(self, trial):
        original(self, trial)
        samples.append(rss_mb())

    cv_tuner.CVTuner.on_trial_end = on_trial_end
    with tempfile.TemporaryDirectory(prefix="memory-growth-") as tmp:
        data = args.data
        if data is None:
            from data_pipeline import generate_synthetic

            data = str(generate_synthetic(Path(tmp) / "data", seed=1, image_size=64))
        space = Path(tmp) / "space.toml"
        # small models, so the run measures the engine, not model size
        space.write_text("[common]\nbatch_size = 32\naugmentation = false\n"
                         "[ann]\ndense_layers = {min = 1, max = 3}\n"
                         "dense_units = {min = 16, max = 128}\n"
                         "[cnn]\nconv_blocks = {min = 1, max = 2}\n"
                         "conv_filters = {min = 8, max = 16}\nhead = \"global_average\"\n")
        cfg = SearchConfig(data=data, model=args.model, tuner="random", folds=args.folds,
                           max_trials=args.trials, max_epochs=args.max_epochs,
                           image_size=args.image_size, space_file=str(space), quiet=True,
                           run_dir=str(Path(tmp) / "run"), command=sys.argv)
        summary = run_search_job(cfg)
    base = samples[2] if len(samples) >= 3 else samples[0]
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {os.cpu_count()} cpus, {platform.platform()}",
        "command": " ".join(["python", *sys.argv]),
        "backend": __import__("keras").backend.backend(),
        "memory_guard": not args.without_memory_guard,
        "trials": len(samples), "completed": summary["families"][args.model]["trials_completed"],
        "rss_after_trial_3_mb": round(base, 1), "rss_last_mb": round(samples[-1], 1),
        "rss_max_mb": round(max(samples), 1),
        "growth_after_trial_3_mb": round(samples[-1] - base, 1),
        "rss_per_trial_mb": [round(s, 1) for s in samples], "target": "< 100 MB",
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
