"""Seconds per training epoch: Keras' array adapter (today's ``fit``) against a ``PyDataset``.

``benchmarks/data_feed.py`` times the loader alone, where ``data_pipeline.ArrayBatches`` produces
batches far faster than a model consumes them. This script times what a search pays: whole
epochs of ``model.fit`` (training plus the clean validation pass) for the same model and data
fed two ways:

- ``pydataset``: the former path, ``ArrayBatches`` for training and validation (a Python batch
  generator that Keras wraps and prefetches in a thread);
- ``arrays``: today's path, ``BaseHyperModel.fit`` handing the uint8 arrays to Keras' own array
  adapter (``fit(x, y, batch_size, shuffle=True)``).

The model is the space default of ``--space`` (the reference space's basic CNN with augmentation,
by default), built from the same seed for each measurement. Each measurement is one fit in a
fresh process: once a ``PyDataset`` has fed a fit, later fits in the same process run at its
pace whatever feeds them (measured: a first ``PyDataset`` fit left the array fits after it at
the same ~18 s per epoch), so a same-process comparison would hide the difference. The two
paths alternate (``--repeats`` times each) so a drift of the machine hits both. The first epoch
of each fit (tracing) is left out. Images are the shared training folder's at ``--image-size``
when it is there, else random pixels (the cost does not depend on their content). The record
says the machine and its load (``benchmarks/quiet.py``): a loaded run is flagged, not a figure.

    .venv/bin/python benchmarks/fit_feed.py --epochs 4 --repeats 2 --write runs/fit_feed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.generalisation import _machine  # noqa: E402  (after the path insert)
from benchmarks.quiet import QuietRecord  # noqa: E402

PATHS = ("pydataset", "arrays")


def load_images(data: Path, size: int, n_train: int, n_val: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Training and validation arrays: the real folder when present, else random pixels."""
    if data.is_dir():
        import data_pipeline

        ds = data_pipeline.load_dataset(data, image_size=size, progress=False)
        order = np.random.default_rng(0).permutation(len(ds.y))
        tr, va = order[:n_train], order[n_train:n_train + n_val]
        return ds.x[tr], ds.y[tr], ds.x[va], ds.y[va], str(data)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n_train + n_val, size, size, 1), dtype=np.uint8)
    y = (rng.random(n_train + n_val) > 0.26).astype(np.int64)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], "random pixels"


def epoch_seconds(path: str, hm: Any, hp: Any, data: tuple, epochs: int) -> list[float]:
    """Seconds of epochs 2..``epochs`` of one fit of the default model fed by ``path``."""
    import keras

    import data_pipeline

    x_tr, y_tr, x_va, y_va = data
    keras.utils.set_random_seed(0)
    model = hm.build(hp)
    seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.t0)

    timer = EpochTimer()
    if path == "arrays":
        hm.fit(hp, model, x_tr, y_tr, validation_data=(x_va, y_va), epochs=epochs,
               callbacks=[timer], seed=0)
    else:
        batch = int(hp.get("batch_size"))
        model.fit(data_pipeline.ArrayBatches(x_tr, y_tr, batch, shuffle=True, seed=0),
                  validation_data=data_pipeline.ArrayBatches(x_va, y_va, batch),
                  epochs=epochs, callbacks=[timer], verbose=0)
    del model
    keras.backend.clear_session()
    return seconds[1:]


def one_fit(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement (the child process): the epoch seconds of ``args.one``'s path."""
    import keras_tuner as kt

    import spaces
    from spaces.space import load_space

    space = load_space(args.space)
    x_tr, y_tr, x_va, y_va, source = load_images(args.data, args.image_size, args.train_images,
                                                 args.val_images)
    hm = spaces.HYPERMODELS[args.family](input_shape=tuple(x_tr.shape[1:]),
                                         class_counts=[int((y_tr == 0).sum()),
                                                       int((y_tr == 1).sum())],
                                         space=space, max_params=10**9)
    hp = kt.HyperParameters()
    hp.values.update({n: d.default for n, d in space.dims(args.family).items()})
    seconds = epoch_seconds(args.one, hm, hp, (x_tr, y_tr, x_va, y_va), args.epochs)
    return {"seconds": seconds, "data": source, "train_images": len(y_tr),
            "val_images": len(y_va), "batch_size": int(hp.get("batch_size"))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "chest_xray")
    p.add_argument("--space", default=str(ROOT / "benchmarks" / "reference_space.toml"))
    p.add_argument("--family", default="cnn", choices=["cnn", "ann"])
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--train-images", type=int, default=2956,
                   help="a reference fold's training part")
    p.add_argument("--val-images", type=int, default=1478)
    p.add_argument("--epochs", type=int, default=4, help="per fit; the first is left out")
    p.add_argument("--repeats", type=int, default=2, help="fits per path, alternating")
    p.add_argument("--write", type=Path, default=None, metavar="JSON")
    p.add_argument("--one", choices=PATHS, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error(f"--epochs {args.epochs}: at least 2 (the first epoch, tracing, is left out)")
    if args.one:
        print("RESULT " + json.dumps(one_fit(args)), flush=True)
        return 0

    seconds: dict[str, list[float]] = {k: [] for k in PATHS}
    child: dict[str, Any] = {}
    with QuietRecord() as quiet:
        for r in range(args.repeats):
            for path in (PATHS if r % 2 == 0 else PATHS[::-1]):
                cmd = [sys.executable, __file__, "--one", path, "--data", str(args.data),
                       "--space", args.space, "--family", args.family, "--image-size",
                       str(args.image_size), "--train-images", str(args.train_images),
                       "--val-images", str(args.val_images), "--epochs", str(args.epochs)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                child = json.loads(out.split("RESULT ", 1)[1])
                seconds[path] += child["seconds"]
                print(f"{path}: " + ", ".join(f"{s:.2f}" for s in child["seconds"])
                      + " s per epoch", flush=True)
    import keras

    median = {k: statistics.median(v) for k, v in seconds.items()}
    report = {"machine": _machine(), "backend": keras.backend.backend(), "date":
              time.strftime("%Y-%m-%d"), "family": args.family, "image_size": args.image_size,
              **{k: child[k] for k in ("data", "train_images", "val_images", "batch_size")},
              "seconds_per_epoch": seconds, "median": median,
              "ratio_pydataset_over_arrays": median["pydataset"] / median["arrays"],
              **quiet.as_dict()}
    print(f"\nmedian seconds per epoch: PyDataset {median['pydataset']:.2f}, arrays "
          f"{median['arrays']:.2f}: ratio {report['ratio_pydataset_over_arrays']:.2f}x "
          f"({report['machine']}, {report['backend']}, {report['data']})")
    print(quiet.line())
    if args.write:
        args.write.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
