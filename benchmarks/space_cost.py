"""Prices the search space: seconds per training epoch of every value of every dimension.

For each family (CNN, ANN) and image size (64 and 128 px by default), the space's default
configuration is the baseline, timed again before each dimension; each value of the dimension is
timed with only that dimension changed (a conditional dimension with its parent switched on,
e.g. ``augmentation_strength`` with ``augmentation`` on). Each model trains ``--steps`` batches
of random films after ``--warmup`` batches (tracing, compilation), in this one process, one
after another; a value's price is its seconds per epoch over the nearest baseline's. Choices and
booleans are priced at every value, numeric ranges at their minimum, default and maximum. An
epoch is the training part of one fold of the shared folder's reference run (3 folds of the 85%
not in the carved test split: ``--fold-images``, 2956 by default), so ``batch_size`` is priced
by its number of steps.

A value costing more than ``--flag`` (3x) the baseline is listed at the end: the issue's rule
is that such a value must be made cheap or priced for the tuner.

    python benchmarks/space_cost.py --write spaces/space_prices.json     # idle machine only
    python benchmarks/space_cost.py --sizes 32 --steps 1 --warmup 1       # a dry run

Whether the machine was quiet is recorded (``benchmarks/quiet.py``: the load average at the
start and after a cool-down, and the CPU other processes used meanwhile); a loaded run is
flagged (``"loaded": true``) and not written to ``--write`` unless ``--force``: timings taken
beside other work are not figures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.generalisation import _machine  # noqa: E402  (after the path insert)
from benchmarks.quiet import QuietRecord  # noqa: E402


def values_to_price(row: dict[str, Any]) -> list[Any]:
    """The values of one ``spaces.describe`` row that get a price."""
    if row["fixed"] or not row["active"]:
        return []
    if row["choices"] is not None:
        return list(row["choices"])
    lo, hi = row["range"]
    vals = [lo, row["default"], hi]
    if row["type"] == "int":
        vals = [int(v) for v in vals]
    return list(dict.fromkeys(vals))


def parent_values(space, family: str, name: str) -> dict[str, Any]:
    """What the dimension's parents must be for it to be active (the first value that makes
    each condition hold)."""
    out: dict[str, Any] = {}
    dims = space.dims(family)
    for cond in space.conditions(family, name):
        active = cond.active_values(dims[cond.parent])
        if active:
            out.update(parent_values(space, family, cond.parent))
            out[cond.parent] = active[0]
    return out


def seconds_per_step(family: str, size: int, values: dict[str, Any], *, steps: int,
                     warmup: int) -> tuple[float, int]:
    """Median seconds of one training step of the configuration, and its batch size."""
    import keras
    import keras_tuner as kt

    import spaces

    cls = spaces.CNNHyperModel if family == "cnn" else spaces.ANNHyperModel
    hm = cls((size, size, 1), class_counts=[800, 2200], max_params=10**9)
    hp = kt.HyperParameters()
    hp.values.update(values)
    keras.utils.set_random_seed(0)
    model = hm.build(hp)
    batch = int(hp.get("batch_size"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, size, size, 1)).astype("float32")
    y = (rng.random(batch) > 0.26).astype("float32")
    for _ in range(warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t0)
    del model
    keras.backend.clear_session()
    return float(np.median(times)), batch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default="cnn,ann")
    p.add_argument("--sizes", default="64,128")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--fold-images", type=int, default=2956)
    p.add_argument("--flag", type=float, default=3.0)
    p.add_argument("--write", type=Path, default=None, metavar="JSON")
    p.add_argument("--force", action="store_true", help="write even a loaded run")
    args = p.parse_args(argv)

    from spaces.space import load_space

    space = load_space(None)
    report: dict[str, Any] = {"machine": _machine(), "date": date.today().isoformat(),
                              "steps": args.steps, "fold_images": args.fold_images,
                              "families": {}}
    flagged: list[str] = []
    with QuietRecord() as quiet:
        price_all(space, args, report, flagged)
    report.update(quiet.as_dict())
    report["over_flag"] = flagged
    print("\n" + quiet.line())
    print(f"values over {args.flag:g}x the default: " + ("; ".join(flagged) or "none"))
    if args.write:
        if report["loaded"] and not args.force:
            print(f"not written to {args.write}: the machine was loaded", file=sys.stderr)
            return 1
        args.write.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.write}")
    return 0


def price_all(space: Any, args: argparse.Namespace, report: dict[str, Any],
              flagged: list[str]) -> None:
    """Prices every value of every family and size into ``report``; over-flag values into
    ``flagged``."""
    from spaces.describe import describe_space

    for family in args.families.split(","):
        rows = describe_space(family, space)
        for size in (int(s) for s in args.sizes.split(",")):
            prices: dict[str, dict[str, float]] = {}
            baselines: list[float] = []
            for row in rows:
                if not values_to_price(row):
                    continue
                # The default is re-timed before every dimension and each value is priced
                # against the nearest baseline: over the hundreds of models of a run, a step's
                # time drifts by 20-30% (allocator, caches), which one baseline timed at the
                # start would charge to the values timed last.
                base_step, base_batch = seconds_per_step(family, size, {}, steps=args.steps,
                                                         warmup=args.warmup)
                base_epoch = base_step * math.ceil(args.fold_images / base_batch)
                baselines.append(base_epoch)
                for value in values_to_price(row):
                    vals = {**parent_values(space, family, row["name"]), row["name"]: value}
                    try:
                        step, batch = seconds_per_step(family, size, vals, steps=args.steps,
                                                       warmup=args.warmup)
                    except Exception as exc:  # noqa: BLE001 - an unbuildable value is reported
                        print(f"  {family} {size}px {row['name']}={value}: not built ({exc})")
                        continue
                    epoch = step * math.ceil(args.fold_images / batch)
                    ratio = epoch / base_epoch
                    prices.setdefault(row["name"], {})[json.dumps(value)] = round(ratio, 3)
                    if ratio > args.flag:
                        flagged.append(f"{family} {size}px {row['name']}={value}: {ratio:.1f}x")
                print(f"{family} {size}px {row['name']}: "
                      + ", ".join(f"{k} {v:.2f}x" for k, v in prices.get(row["name"], {}).items()),
                      flush=True)
            report["families"].setdefault(family, {})[str(size)] = {
                "baseline_seconds_per_epoch": round(float(np.median(baselines)), 3),
                "baseline_range": [round(min(baselines), 3), round(max(baselines), 3)],
                "prices": prices}


if __name__ == "__main__":
    raise SystemExit(main())
