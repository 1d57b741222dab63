#!/usr/bin/env python3
"""TensorBoard logging overhead: a search with ``--tensorboard`` against ``--no-tensorboard``.

Two measures, both in one process on the same data, folds and seed:

- the wall-time ratio of the same 10-trial x 3-fold search with logging on and off (the two
  searches run alternately, ``--repeats`` times each, and the medians are compared; the ratio
  also carries run-to-run noise of a few percent on a shared CPU);
- the time spent inside the logging code itself (every event-file write, timed by wrapping
  ``search.watch.tensorboard``'s writers), as a share of the sum of the fold fit times: the overhead
  without the noise.

Target (issue 14): under 2%.

Usage:
  .venv/bin/python benchmarks/tensorboard_overhead.py [--data ../shared/data/chest_xray]
      [--image-size 64] [--trials 10] [--folds 3] [--max-epochs 2] [--model ann] [--repeats 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


class _Timer:
    """Wraps the writers of search.watch.tensorboard and adds up the seconds spent in them."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0  # the writers call each other: count the outermost call only

    def wrap(self, owner, name: str) -> None:
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.seconds += time.perf_counter() - t0

        setattr(owner, name, timed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "chest_xray"))
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--max-epochs", type=int, default=2)
    ap.add_argument("--model", default="ann", choices=("cnn", "ann"))
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    import data_pipeline
    from search.watch import tensorboard
    from search.config import SearchConfig
    from search.engine import run_search_job

    data_pipeline.load_dataset(args.data, image_size=args.image_size, progress=False)
    timer = _Timer()
    for name in ("__init__", "summary", "scalars", "close"):
        timer.wrap(tensorboard.EventWriter, name)
    for name in ("write_trial_session", "write_experiment"):  # incl. session file clean-up
        timer.wrap(tensorboard, name)
    walls: dict[str, list[float]] = {"on": [], "off": []}
    fits: dict[str, list[float]] = {"on": [], "off": []}
    logging_s = []
    for _ in range(args.repeats):
        for mode in ("off", "on"):
            with tempfile.TemporaryDirectory(prefix="tb-overhead-") as tmp:
                cfg = SearchConfig(data=args.data, model=args.model, tuner="random",
                                   folds=args.folds, max_trials=args.trials,
                                   max_epochs=args.max_epochs, patience=3,
                                   image_size=args.image_size, quiet=True,
                                   run_dir=str(Path(tmp) / "run"), command=sys.argv,
                                   tensorboard="auto" if mode == "on" else None)
                before = timer.seconds
                t0 = time.perf_counter()
                run_search_job(cfg)
                walls[mode].append(time.perf_counter() - t0)
                if mode == "on":
                    logging_s.append(timer.seconds - before)
                fits[mode].append(sum(json.loads(p.read_text())["fit_seconds"] for p in Path(
                    tmp, "run", args.model).glob("trial_*/fold*.json")))
    wall_on, wall_off = statistics.median(walls["on"]), statistics.median(walls["off"])
    log_s, fit_on = statistics.median(logging_s), statistics.median(fits["on"])
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                   f"{os.cpu_count()} cpus, {platform.platform()}",
        "command": " ".join(["python", *sys.argv]),
        "search_wall_s": {"tensorboard": round(wall_on, 2), "no_tensorboard": round(wall_off, 2)},
        "wall_ratio": round(wall_on / wall_off, 4),
        "logging_s": round(log_s, 3), "sum_fit_s": round(fit_on, 2),
        "logging_share_of_fit_time": round(log_s / fit_on, 5) if fit_on else None,
        "target": "< 2%",
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
