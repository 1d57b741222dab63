"""Helpers shared by the data_pipeline tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, size: int = 24, value: int | None = None, mode: str = "L",
                fmt: str | None = None, seed: int = 0) -> Path:
    """Writes a small random (or constant) image file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, 3)
    arr = np.full(shape, value, np.uint8) if value is not None else rng.integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(arr, mode).save(path, format=fmt or ("PNG" if path.suffix == ".png" else "JPEG"))
    return path


def make_tree(root: Path, spec: dict[str, int], size: int = 24, ext: str = ".png") -> Path:
    """Creates ``root/<rel folder>/`` with n images each: ``{"train/NORMAL": 3, ...}``.

    Files are named like one patient per image (``IM-<i>-0001`` / ``person<i>_bacteria_<i>``).
    """
    for folder, n in spec.items():
        for i in range(n):
            name = f"person{i + 1}_bacteria_{i + 1}{ext}" if "PNEU" in folder else f"IM-{i + 1:04d}-0001{ext}"
            write_image(root / folder / name, size=size, seed=i)
    return root
