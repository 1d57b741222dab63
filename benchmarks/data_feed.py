"""Does data loading keep the accelerator busy? Batches/s of the input pipeline vs step time.

The search used to feed every fold from ``data_pipeline.ArrayBatches`` (a
``keras.utils.PyDataset`` over in-memory uint8 arrays); it now hands the arrays to Keras' own
array adapter, whose whole epochs ``benchmarks/fit_feed.py`` times against the ``PyDataset``. Augmentation, when a trial turns it on, is the model's own first
layers (random layers active in training only), so it runs inside the compiled train step;
before, it ran eagerly per batch inside ``__getitem__`` (``ArrayBatches(augment=...)``, kept as
the baseline). This script measures, on the current backend and device:

* feed rate: batches/s that ``ArrayBatches`` produces, plain (today's path, also for augmented
  trials) and with the former per-batch augmentation;
* step rate: training steps/s of the notes' basic CNN and ANN (spaces defaults) on one fixed
  batch already in memory (``train_on_batch``), without and with augmentation in the model,
  i.e. what the model could consume;
* ratio = feed rate / step rate: above 1 the loader keeps up (the pipeline is not the
  bottleneck); below 1 the accelerator waits for data.

Images are random uint8 arrays of the requested size (throughput does not depend on pixel
content), so no data set is needed. Runs under any Keras backend, on a CPU or a GPU:

    python benchmarks/data_feed.py --image-size 128 --batch-size 32
    KERAS_BACKEND=jax python benchmarks/data_feed.py --append benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rate(fn, n: int, warmup: int = 2) -> float:
    """Calls ``fn(i)`` ``warmup`` then ``n`` times; returns calls per second of the timed part."""
    for i in range(warmup):
        fn(i)
    start = time.perf_counter()
    for i in range(n):
        fn(warmup + i)
    return n / (time.perf_counter() - start)


def feed_rates(x, y, batch_size: int, n: int, strength: float) -> dict[str, float]:
    """Batches/s from ArrayBatches without and with augmentation (training settings)."""
    import data_pipeline

    plain = data_pipeline.ArrayBatches(x, y, batch_size, shuffle=True, seed=1)
    aug = data_pipeline.ArrayBatches(x, y, batch_size, shuffle=True, seed=1,
                                     augment=data_pipeline.make_augmentation(strength, seed=1))
    return {"plain": _rate(lambda i: plain[i % len(plain)], n),
            "augmented": _rate(lambda i: aug[i % len(aug)], max(3, n // 3))}


def step_rate(family: str, x, y, batch_size: int, n: int, strength: float | None = None
              ) -> tuple[float, int]:
    """Training steps/s of the family's default model on one in-memory batch (with
    augmentation in the model at ``strength`` when given)."""
    import keras
    import keras_tuner as kt
    import numpy as np

    import spaces

    # No parameter cap: at 128 px the notes' basic CNN (flatten head) has ~4M parameters, over
    # the search's default --max-params.
    hm = spaces.HYPERMODELS[family](input_shape=tuple(x.shape[1:]), class_counts=[1, 1],
                                    max_params=10**9)
    hp = kt.HyperParameters()
    if strength is not None:
        hp.values.update(augmentation=True, augmentation_strength=strength)
    model = hm.build(hp)
    xb = x[:batch_size].astype(np.float32)
    yb = y[:batch_size].astype(np.float32)
    rate = _rate(lambda i: model.train_on_batch(xb, yb), n, warmup=3)
    params = model.count_params()
    del model
    keras.backend.clear_session()
    return rate, params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batches", type=int, default=30, help="timed batches per measurement")
    parser.add_argument("--strength", type=float, default=0.5, help="augmentation strength")
    parser.add_argument("--families", default="cnn,ann")
    parser.add_argument("--append", type=Path, default=None,
                        help="append the markdown block to this file (e.g. benchmarks/RESULTS.md)")
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from search.runtime.devices import describe_devices

    rng = np.random.default_rng(0)
    s = args.image_size
    x = rng.integers(0, 256, size=(args.images, s, s, 1), dtype=np.uint8)
    y = (np.arange(args.images) % 2).astype(np.int64)
    feed = feed_rates(x, y, args.batch_size, args.batches, args.strength)
    rows = []
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        rate, params = step_rate(family, x, y, args.batch_size, args.batches)
        aug_rate, _ = step_rate(family, x, y, args.batch_size, args.batches, args.strength)
        rows.append((family, params, rate, aug_rate))

    cpu = platform.processor() or platform.machine()
    lines = [
        f"#### Data feed vs step rate ({keras.backend.backend()}, {s} px, batch "
        f"{args.batch_size}, {time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {platform.node()} {cpu}, {os.cpu_count()} logical CPUs, "
        f"python {platform.python_version()}. {describe_devices()}.",
        f"Command: `KERAS_BACKEND={keras.backend.backend()} python benchmarks/data_feed.py "
        f"--image-size {s} --batch-size {args.batch_size}`",
        "",
        "| input pipeline | batches/s | images/s |",
        "| --- | --- | --- |",
        f"| ArrayBatches (every trial now, augmentation in the model) | {feed['plain']:.1f} | "
        f"{feed['plain'] * args.batch_size:.0f} |",
        f"| former path: ArrayBatches + per-batch augmentation (strength {args.strength}) | "
        f"{feed['augmented']:.1f} | {feed['augmented'] * args.batch_size:.0f} |",
        f"| ratio, augmented trials now / before | {feed['plain'] / feed['augmented']:.0f}x | |",
        "",
        "| model (spaces defaults) | params | train steps/s | train steps/s, augmentation in "
        "the model | feed/step, augmented, now | feed/step, augmented, before |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for family, params, rate, aug_rate in rows:
        lines.append(f"| basic {family.upper()} | {params:,} | {rate:.1f} | {aug_rate:.1f} | "
                     f"{feed['plain'] / aug_rate:.1f} | {feed['augmented'] / rate:.2f} |")
    lines += ["", "A feed/step ratio above 1 means the loader produces batches faster than the "
              "model consumes them (Keras also prefetches PyDataset batches in a thread while the "
              "step runs); below 1 the device waits for data.", ""]
    block = "\n".join(lines)
    print(block)
    if args.append is not None:
        with open(args.append, "a", encoding="utf-8") as fh:
            fh.write("\n" + block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
