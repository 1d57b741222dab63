"""GPU benchmark: training images/s, GPU utilisation, mixed-precision speed-up, a short search.

Meant for a GPU box with ``KERAS_BACKEND=jax`` (no TensorFlow needed): on top of jax with CUDA,
numpy, Pillow, scikit-learn and grpcio, it needs only the small wheels keras, keras-tuner,
kt-legacy, namex and optree. It runs unchanged on TensorFlow or torch too.

What it measures, on the real data (``--data``, default ``../shared/data/chest_xray``) at
``--image-size`` (128; run again with 224):

1. images/s of one training run (one fold, spaces defaults = the notes' basic model) for the CNN
   and the ANN, through the service's own input pipeline (``ArrayBatches``) and ``fit``;
   the first epoch (XLA compilation) is reported apart;
2. GPU utilisation and memory sampled with ``nvidia-smi`` every 0.5 s during those epochs;
3. float32 vs mixed precision (``--mixed bfloat16`` default; ``float16`` for pre-Ampere GPUs):
   images/s ratio, in a fresh process each (a dtype policy is process-global);
4. a short CNN search of fixed budget (``--search-minutes``, random tuner, 2 folds) with the
   service's engine, and its leaderboard (top trials from ``cv.json``).

It prints a markdown block and, with ``--append benchmarks/RESULTS.md``, appends it.

    KERAS_BACKEND=jax python benchmarks/gpu_benchmark.py --image-size 128 \\
        --append benchmarks/RESULTS.md
    KERAS_BACKEND=jax python benchmarks/gpu_benchmark.py --image-size 224 --skip-search

On a machine that cannot see the data folder, decode once where it can (``--save-npz
data128.npz``) and pass ``--npz data128.npz`` there (uint8 arrays; a 128 px grayscale set is
about 85 MB, so carry a ``--max-images`` subset where transfers are limited).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class GpuSampler:
    """Samples ``nvidia-smi`` utilisation and memory in a thread while active."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.available = shutil.which("nvidia-smi") is not None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                     "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
                first = out.stdout.strip().splitlines()[0]
                util, mem = (float(v) for v in first.split(","))
                self.samples.append((util, mem))
            except Exception:  # noqa: BLE001 - a missed sample is fine
                pass

    def __enter__(self) -> GpuSampler:
        if self.available:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def summary(self) -> dict[str, float | None]:
        if not self.samples:
            return {"util_mean": None, "util_max": None, "mem_max_mib": None}
        utils = [u for u, _ in self.samples]
        return {"util_mean": sum(utils) / len(utils), "util_max": max(utils),
                "mem_max_mib": max(m for _, m in self.samples)}


def load_arrays(args: argparse.Namespace):
    """uint8 images, labels and groups from ``--npz`` or the data folder."""
    import numpy as np

    if args.npz:
        d = np.load(args.npz, allow_pickle=False)
        return d["x"], d["y"], d["groups"]
    import data_pipeline

    ds = data_pipeline.load_dataset(args.data, image_size=args.image_size, progress=False)
    x, y, groups = ds.x, ds.y, ds.groups
    if args.max_images and len(y) > args.max_images:
        keep = np.random.default_rng(0).permutation(len(y))[:args.max_images]
        x, y, groups = x[keep], y[keep], groups[keep]
    if args.save_npz:
        np.savez_compressed(args.save_npz, x=x, y=y, groups=groups)
    return x, y, groups


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """One fold of each family with spaces defaults; images/s and GPU use per family."""
    import keras
    import keras_tuner as kt
    import numpy as np

    import data_pipeline
    import spaces
    from search.runtime import devices

    policy = devices.set_mixed_precision(args.mixed_child or "off")
    x, y, groups = load_arrays(args)
    tr, va = data_pipeline.make_folds(y, groups, 5, 42)[0]
    out: dict[str, Any] = {"policy": policy, "devices": devices.describe_devices(),
                           "n_train": int(len(tr)), "image_size": int(x.shape[1])}
    for family in args.families.split(","):
        keras.backend.clear_session()
        hm = spaces.HYPERMODELS[family](input_shape=tuple(x.shape[1:]),
                                        class_counts=[int(c) for c in np.bincount(y[tr])],
                                        max_params=10**9)  # basic CNN at 128 px: ~4M
        hp = kt.HyperParameters()
        model = hm.build(hp)
        times: list[float] = []

        class EpochTimer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.t0)

        with GpuSampler() as sampler:
            hm.fit(hp, model, x[tr], y[tr], validation_data=(x[va], y[va]),
                   epochs=args.epochs, callbacks=[EpochTimer()], verbose=0, seed=1)
        steady = times[1:] or times
        per_epoch = sum(steady) / len(steady)
        out[family] = {
            "params": int(model.count_params()), "batch_size": int(hp.values["batch_size"]),
            "augmentation": bool(hp.values.get("augmentation")),
            "first_epoch_s": round(times[0], 2), "epoch_s": round(per_epoch, 3),
            # Validation is part of the epoch; images/s counts the training images only.
            "train_images_per_s": round(len(tr) / per_epoch, 1),
            **sampler.summary(),
        }
        del model
    return out


def run_child(args: argparse.Namespace, mixed: str) -> dict[str, Any]:
    """Runs :func:`throughput` in a fresh process (the dtype policy is process-global)."""
    cmd = [sys.executable, __file__, "--child", "--mixed-child", mixed,
           "--image-size", str(args.image_size), "--epochs", str(args.epochs),
           "--families", args.families, "--data", str(args.data)]
    if args.npz:
        cmd += ["--npz", str(args.npz)]
    if args.max_images:
        cmd += ["--max-images", str(args.max_images)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.child_timeout,
                          cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child ({mixed}) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def short_search(args: argparse.Namespace) -> dict[str, Any]:
    """A CNN search of fixed budget with the service's engine; returns the leaderboard rows."""
    from search.config import SearchConfig
    from search.engine import run_search_job

    run_dir = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    config = SearchConfig(data=str(args.data), model="cnn", tuner="random", folds=2,
                          max_trials=1000, max_epochs=args.search_epochs, patience=2,
                          time_budget_min=args.search_minutes, image_size=args.image_size,
                          run_dir=str(run_dir), quiet=True, max_params=args.search_max_params,
                          command=["run_search.py", "search", "--model", "cnn", "--tuner",
                                   "random", "--folds", "2", "--max-epochs",
                                   str(args.search_epochs), "--time-budget",
                                   str(args.search_minutes), "--image-size",
                                   str(args.image_size)])
    t0 = time.perf_counter()
    summary = run_search_job(config)
    wall = time.perf_counter() - t0
    rows = []
    for path in sorted((run_dir / "cnn").glob("trial_*/cv.json")):
        cv = json.loads(path.read_text())
        if cv.get("status") == "COMPLETED":
            rows.append(cv)
    rows.sort(key=lambda c: -c["mean"].get("val_auc", 0.0))
    return {"wall_s": wall, "status": summary.get("status"), "rows": rows,
            "run_dir": str(run_dir)}


def markdown(args: argparse.Namespace, f32: dict, mp: dict | None, search: dict | None) -> str:
    smi = "unavailable"
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
    lines = [f"#### GPU benchmark ({os.environ.get('KERAS_BACKEND', 'tensorflow')}, "
             f"{f32['image_size']} px, {time.strftime('%Y-%m-%d')})", "",
             f"Machine: {platform.node()}, {os.cpu_count()} CPUs; GPU: {smi}. {f32['devices']}.",
             f"Command: `KERAS_BACKEND={os.environ.get('KERAS_BACKEND', 'tensorflow')} python "
             f"benchmarks/gpu_benchmark.py --image-size {args.image_size} --epochs "
             f"{args.epochs} --mixed {args.mixed}`; {f32['n_train']} training images per epoch.",
             "", "| model | precision | params | batch | first epoch s | epoch s | train img/s | "
             "GPU util mean / max % | GPU mem MiB |", "| --- | --- | --- | --- | --- | --- | --- "
             "| --- | --- |"]
    for res in [r for r in (f32, mp) if r]:
        for fam in args.families.split(","):
            r = res[fam]
            util = ("n/a" if r["util_mean"] is None
                    else f"{r['util_mean']:.0f} / {r['util_max']:.0f}")
            lines.append(f"| basic {fam.upper()} | {res['policy']} | {r['params']:,} | "
                         f"{r['batch_size']} | {r['first_epoch_s']} | {r['epoch_s']} | "
                         f"{r['train_images_per_s']} | {util} | {r['mem_max_mib'] or 'n/a'} |")
    if mp:
        for fam in args.families.split(","):
            ratio = mp[fam]["train_images_per_s"] / f32[fam]["train_images_per_s"]
            lines.append(f"\n{fam.upper()}: {mp['policy']} / float32 images/s = {ratio:.2f}")
    if search:
        lines += ["", f"Short CNN search: random tuner, 2 folds, time budget "
                  f"{args.search_minutes} min, {args.search_epochs} epochs max -> "
                  f"{len(search['rows'])} completed trials in {search['wall_s']:.0f} s "
                  f"(status {search['status']}).", "",
                  "| rank | trial | mean val_auc | std | duration s | diagnosis |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for i, cv in enumerate(search["rows"][:10], 1):
            lines.append(f"| {i} | {cv['trial_id']} | {cv['mean'].get('val_auc', 0):.4f} | "
                         f"{cv['std'].get('val_auc', 0):.4f} | {cv.get('duration_s')} | "
                         f"{cv.get('diagnosis')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/chest_xray")
    parser.add_argument("--npz", type=Path, default=None)
    parser.add_argument("--save-npz", type=Path, default=None)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per throughput run (>= 2)")
    parser.add_argument("--families", default="cnn,ann")
    parser.add_argument("--mixed", default="bfloat16", choices=("bfloat16", "float16", "off"))
    parser.add_argument("--search-minutes", type=float, default=5.0)
    parser.add_argument("--search-epochs", type=int, default=5)
    parser.add_argument("--search-max-params", type=int, default=20_000_000,
                        help="--max-params of the short search (the 2M default rejects the "
                             "notes' flatten-head CNNs at 128 px and above)")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--child-timeout", type=int, default=1800)
    parser.add_argument("--append", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mixed-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.child:
        print("RESULT " + json.dumps(throughput(args)), flush=True)
        return 0
    if args.save_npz and not args.npz:
        load_arrays(args)
    f32 = run_child(args, "off")
    mp = run_child(args, args.mixed) if args.mixed != "off" else None
    search = None if args.skip_search else short_search(args)
    block = markdown(args, f32, mp, search)
    print(block)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as fh:
            fh.write("\n" + block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
