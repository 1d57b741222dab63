#!/usr/bin/env python3
"""Search-engine overhead: search wall time / sum of the fold ``fit`` wall times.

Everything the engine adds around ``model.fit`` counts as overhead: model builds, KerasTuner's
oracle and saves, fold records and weights, session clearing, progress, diagnosis. The dataset
is loaded once beforehand (warm decode cache, a data_pipeline concern) and is reported apart.
Target (issue 4): <= 1.15 for a 64 px CPU search of 10 trials x 3 folds on the shared data.

Usage:
  .venv/bin/python benchmarks/search_overhead.py [--data ../shared/data/chest_xray]
      [--image-size 64] [--trials 10] [--folds 3] [--max-epochs 3] [--model cnn] [--tuner random]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "chest_xray"))
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--max-epochs", type=int, default=3)
    ap.add_argument("--model", default="cnn", choices=("cnn", "ann"))
    ap.add_argument("--tuner", default="random", choices=("random", "bayesian", "hyperband"))
    ap.add_argument("--space", default=None, help="optional --space TOML")
    args = ap.parse_args()

    import data_pipeline

    from search.config import SearchConfig
    from search.engine import run_search_job

    t0 = time.perf_counter()
    data_pipeline.load_dataset(args.data, image_size=args.image_size, progress=False)
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="search-overhead-") as tmp:
        cfg = SearchConfig(data=args.data, model=args.model, tuner=args.tuner, folds=args.folds,
                           max_trials=args.trials, max_epochs=args.max_epochs, patience=3,
                           image_size=args.image_size, space_file=args.space, quiet=True,
                           run_dir=str(Path(tmp) / "run"), command=sys.argv)
        t0 = time.perf_counter()
        summary = run_search_job(cfg)
        wall = time.perf_counter() - t0
        fam = summary["families"][args.model]
        folds = [json.loads(p.read_text()) for p in Path(tmp, "run", args.model).glob(
            "trial_*/fold*.json")]
    fit_s = sum(f["fit_seconds"] for f in folds)
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                   f"{os.cpu_count()} cpus, {platform.platform()}",
        "command": " ".join(["python", *sys.argv]),
        "trials_completed": fam["trials_completed"], "trials_failed": fam["trials_failed"],
        "fold_fits": len(folds), "search_wall_s": round(wall, 2), "sum_fit_s": round(fit_s, 2),
        "overhead_ratio": round(wall / fit_s, 3) if fit_s else None,
        "dataset_load_s_warm_cache_excluded": round(load_s, 2), "target": "<= 1.15",
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
