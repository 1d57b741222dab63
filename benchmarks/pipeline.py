#!/usr/bin/env python3
"""Data-pipeline benchmark: one epoch of batches at 128 px over the shared training set.

Compares, in one run on the same files and settings (128x128 grayscale, batch 32):
  * this pipeline cold (empty temporary cache: decode + cache write + one epoch of ArrayBatches)
    and cached (cache read + one epoch), and the cached reload time alone;
  * keras.utils.image_dataset_from_directory (tf.data; one epoch);
  * the notes' ImageDataGenerator(rescale=1/255).flow_from_directory (one epoch);
  * cold decode of a generated full-resolution set (JPEGs of 2000-2900 px a side).
"Cold" means an empty decode cache; the files themselves are likely in the OS page cache.

Usage: .venv/bin/python benchmarks/pipeline.py [--data ../shared/data/chest_xray/train] [--full-res 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

SIZE, BATCH = 128, 32


def epoch(batches) -> int:
    n = 0
    for i in range(len(batches)):
        n += len(batches[i][0])
    return n


def bench_ours(data: Path, cache: Path) -> dict[str, float]:
    from data_pipeline import ArrayBatches, load_dataset

    out = {}
    for label in ("cold", "cached"):
        t0 = time.perf_counter()
        ds = load_dataset(data, image_size=SIZE, cache_dir=cache, progress=False)
        t1 = time.perf_counter()
        n = epoch(ArrayBatches(ds.x, ds.y, BATCH, shuffle=True, seed=0))
        t2 = time.perf_counter()
        out[f"{label}_load_s"], out[f"{label}_s"], out["n"] = t1 - t0, t2 - t0, n
    return out


def bench_idfd(data: Path) -> tuple[float, int]:
    import keras

    t0 = time.perf_counter()
    ds = keras.utils.image_dataset_from_directory(
        data, image_size=(SIZE, SIZE), color_mode="grayscale", batch_size=BATCH,
        label_mode="binary", shuffle=True, seed=0, verbose=False)
    n = sum(int(x.shape[0]) for x, _ in ds)
    return time.perf_counter() - t0, n


def image_data_generator():
    import tensorflow as tf

    try:
        return tf.keras.preprocessing.image.ImageDataGenerator, "tf.keras.preprocessing.image"
    except AttributeError:
        from keras.src.legacy.preprocessing.image import ImageDataGenerator

        return ImageDataGenerator, "keras.src.legacy.preprocessing.image (tf.keras has none)"


def bench_flow(data: Path) -> tuple[float, int, str]:
    gen_cls, where = image_data_generator()
    t0 = time.perf_counter()
    gen = gen_cls(rescale=1 / 255).flow_from_directory(
        data, target_size=(SIZE, SIZE), color_mode="grayscale", batch_size=BATCH,
        class_mode="binary", shuffle=True, seed=0)
    n = sum(len(gen[i][0]) for i in range(len(gen)))
    return time.perf_counter() - t0, n, where


def bench_full_res(n_files: int, workdir: Path) -> dict[str, float]:
    from PIL import Image

    from data_pipeline import load_dataset
    from data_pipeline.synthetic import _anatomy, render_film

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for i in range(n_files):
        cls = "NORMAL" if i % 4 == 0 else "PNEUMONIA"
        side = int(rng.integers(2000, 2901))
        arr = render_film(rng, _anatomy(rng), 0.0 if cls == "NORMAL" else 0.6, side)
        folder = workdir / "full" / cls
        folder.mkdir(parents=True, exist_ok=True)
        name = f"IM-{i:04d}-0001.jpeg" if cls == "NORMAL" else f"person{i}_virus_{i}.jpeg"
        Image.fromarray(arr).save(folder / name, quality=90)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_dataset(workdir / "full", image_size=SIZE, cache_dir=workdir / "c1", progress=False)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_dataset(workdir / "full", image_size=SIZE, cache_dir=workdir / "c2", workers=1, progress=False)
    one = time.perf_counter() - t0
    return {"files": n_files, "generate_s": gen_s, "cold_s": cold, "cold_1proc_s": one}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "chest_xray" / "train")
    p.add_argument("--full-res", type=int, default=200, help="full-resolution JPEGs to generate (0: skip)")
    args = p.parse_args()
    if not args.data.is_dir():
        print(f"error: {args.data} not found (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}")
    work = Path(tempfile.mkdtemp(prefix="cxr-bench-"))
    try:
        ours = bench_ours(args.data, work / "cache")
        idfd_s, idfd_n = bench_idfd(args.data)
        flow_s, flow_n, where = bench_flow(args.data)
        n = ours["n"]
        assert n == idfd_n == flow_n, (n, idfd_n, flow_n)
        rate = {"ours_cold": n / ours["cold_s"], "ours_cached": n / ours["cached_s"],
                "idfd": n / idfd_s, "flow": n / flow_s}
        print(f"one epoch, {n} images, {SIZE}x{SIZE} grayscale, batch {BATCH}:")
        print(f"  this pipeline, cold   : {ours['cold_s']:7.2f} s  {rate['ours_cold']:8.0f} img/s "
              f"(decode+cache {ours['cold_load_s']:.2f} s)")
        print(f"  this pipeline, cached : {ours['cached_s']:7.2f} s  {rate['ours_cached']:8.0f} img/s "
              f"(cached reload {ours['cached_load_s']:.3f} s)")
        print(f"  image_dataset_from_directory: {idfd_s:7.2f} s  {rate['idfd']:8.0f} img/s")
        print(f"  ImageDataGenerator.flow_from_directory [{where}]: {flow_s:7.2f} s  {rate['flow']:8.0f} img/s")
        print("ratios (images/s):")
        print(f"  cached / flow_from_directory         = {rate['ours_cached'] / rate['flow']:6.1f}x  (target >= 3)")
        print(f"  cached / image_dataset_from_directory = {rate['ours_cached'] / rate['idfd']:6.1f}x  (target >= 1)")
        print(f"  cold   / flow_from_directory         = {rate['ours_cold'] / rate['flow']:6.1f}x")
        print(f"  cold   / image_dataset_from_directory = {rate['ours_cold'] / rate['idfd']:6.1f}x")
        if args.full_res:
            fr = bench_full_res(args.full_res, work)
            print(f"full-resolution set: {fr['files']} JPEGs 2000-2900 px (generated in {fr['generate_s']:.0f} s): "
                  f"cold decode to {SIZE} px {fr['cold_s']:.2f} s ({fr['files'] / fr['cold_s']:.0f} img/s) on "
                  f"{os.cpu_count()} processes, {fr['cold_1proc_s']:.2f} s on 1")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
