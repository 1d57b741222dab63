"""Built-in synthetic chest-X-ray-like data, written as image files in the Kaggle layout.

Deterministic by seed. Each patient gets an anatomy (thorax width, position, exposure, rib
pattern) and several films with small positioning and exposure changes. PNEUMONIA films carry
diffuse opacities inside the lung fields, from obvious to subtle; NORMAL films carry faint
vessel-like markings so that "any bright spot" is not the answer. The class mix is ~1:3
NORMAL:PNEUMONIA like the real training set. It is a stand-in to exercise the whole service in
minutes on a CPU, not a substitute for the real data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from data_pipeline.cache import cache_root

SYNTHETIC_VERSION = "2"
_MARKER = ".synthetic-complete"
_MAX_RENDER = 256  # larger images are rendered at this size and upscaled (fast)


def _soft_ellipse(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, rx: float, ry: float,
                  edge: float = 0.06) -> np.ndarray:
    d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    return 1.0 / (1.0 + np.exp((d - 1.0) / edge))


def _anatomy(rng: np.random.Generator) -> dict[str, float]:
    return {
        "width": rng.uniform(0.82, 1.08), "cx": rng.uniform(-0.06, 0.06),
        "lung_h": rng.uniform(0.48, 0.6), "tissue": rng.uniform(95, 135),
        "air": rng.uniform(35, 65), "heart": rng.uniform(0.17, 0.24),
        "rib_freq": rng.uniform(16, 22), "rib_amp": rng.uniform(6, 14),
        "exposure": rng.uniform(0.85, 1.15), "noise": rng.uniform(3, 9),
    }


def render_film(rng: np.random.Generator, anatomy: dict[str, float], severity: float,
                size: int) -> np.ndarray:
    """One grayscale film as a ``(size, size)`` uint8 array; ``severity`` 0 means normal."""
    r = min(size, _MAX_RENDER)
    yy, xx = np.mgrid[-1:1:r * 1j, -1:1:r * 1j]
    # Per-film positioning jitter: the same patient is never filmed exactly the same way.
    cx = anatomy["cx"] + rng.normal(0, 0.02)
    cy = rng.normal(0, 0.02)
    w = anatomy["width"] * rng.uniform(0.97, 1.03)
    img = np.full((r, r), 18.0)
    img += (anatomy["tissue"] - 18) * _soft_ellipse(xx, yy, cx, 0.12 + cy, 0.88 * w, 1.0, 0.05)
    lungs = np.zeros_like(img)
    for side in (-1, 1):
        lungs = np.maximum(lungs, _soft_ellipse(
            xx, yy, cx + side * 0.4 * w, -0.05 + cy, 0.27 * w, anatomy["lung_h"], 0.08))
    ribs = anatomy["rib_amp"] * np.clip(
        np.sin(anatomy["rib_freq"] * (yy + 0.25 * xx ** 2) + rng.uniform(0, 6.3)), 0, None)
    img -= (anatomy["tissue"] - anatomy["air"]) * lungs
    img += ribs * lungs
    # Heart on the image right (the patient's left), spine down the middle.
    img += 55 * _soft_ellipse(xx, yy, cx + 0.1, 0.28 + cy, anatomy["heart"] * 1.3 * w,
                              anatomy["heart"] * 1.6, 0.1)
    img += 40 * _soft_ellipse(xx, yy, cx, 0.0, 0.06, 1.2, 0.15)
    # Vessel-like markings in every film (normal variation).
    for _ in range(rng.integers(3, 8)):
        bx, by = rng.uniform(-0.6, 0.6), rng.uniform(-0.4, 0.4)
        s = rng.uniform(0.02, 0.05)
        img += rng.uniform(6, 16) * np.exp(-((xx - cx - bx) ** 2 + (yy - by) ** 2) / (2 * s * s)) * lungs
    if severity > 0:
        opacity = np.zeros_like(img)
        for _ in range(rng.integers(1, 5)):
            side = rng.choice((-1, 1))
            bx = cx + side * 0.4 * w + rng.normal(0, 0.1)
            by = rng.uniform(-0.2, 0.45)
            sx, sy = rng.uniform(0.08, 0.22), rng.uniform(0.08, 0.22)
            opacity += rng.uniform(0.6, 1.0) * np.exp(
                -((xx - bx) ** 2 / (2 * sx * sx) + (yy - by) ** 2 / (2 * sy * sy)))
        mottle = 1 + 0.4 * rng.standard_normal(img.shape)  # patchy, not a smooth blob
        img += severity * 100 * np.clip(opacity, 0, 1.3) * lungs * mottle
    img = img * anatomy["exposure"] * rng.uniform(0.93, 1.07) + rng.normal(0, 6)
    img += rng.normal(0, anatomy["noise"], img.shape)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L")
    out = out.filter(ImageFilter.GaussianBlur(radius=0.6 * r / 128))
    if size != r:
        out = out.resize((size, size), Image.BICUBIC)
    return np.asarray(out)


def _save(arr: np.ndarray, path: Path, fmt: str, rgb: bool) -> None:
    im = Image.fromarray(arr, "L")
    if rgb:
        im = im.convert("RGB")
    if fmt == "png":
        im.save(path, format="PNG")
    else:
        im.save(path, format="JPEG", quality=90)


def generate_synthetic(root: str | os.PathLike, *, seed: int = 0, n_normal_patients: int = 25,
                       n_pneumonia_patients: int = 75, images_per_patient: tuple[int, int] = (1, 5),
                       image_size: int = 112, fmt: str = "jpeg", rgb: bool = False,
                       layout: str = "kaggle", splits: Sequence[str] = ("train",),
                       duplicates: int = 1) -> Path:
    """Writes a synthetic chest-X-ray-like set.

    Args:
        root: Output folder (created; existing files with the same names are overwritten).
        seed: Everything is deterministic given the seed and the other arguments.
        n_normal_patients: NORMAL patients in train (``IM-<ID>-<n>`` / ``NORMAL2-IM-<ID>-<n>``).
        n_pneumonia_patients: PNEUMONIA patients in train (``person<ID>_bacteria|virus_<n>``).
        images_per_patient: Inclusive range of films per patient.
        image_size: Side of the square images in pixels.
        fmt: ``"jpeg"`` or ``"png"``.
        rgb: Save 3-channel files (grey content) instead of single-channel ones.
        layout: ``"kaggle"`` (``root/<split>/<CLASS>``) or ``"flat"`` (``root/<CLASS>``, train only).
        splits: Split folders for the Kaggle layout; ``test``/``val`` get a quarter as many
            (new) patients as train, at least 2 per class.
        duplicates: Byte-identical copies to add in train (each within one patient).

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ext = "png" if fmt == "png" else "jpeg"
    next_id = {"NORMAL": 1, "PNEUMONIA": 1}
    counter = 1
    for split in (splits if layout == "kaggle" else ("train",)):
        scale = 1.0 if split == "train" else 0.25
        written: dict[str, list[Path]] = {}
        for cls, n_patients in (("NORMAL", n_normal_patients), ("PNEUMONIA", n_pneumonia_patients)):
            folder = root / split / cls if layout == "kaggle" else root / cls
            folder.mkdir(parents=True, exist_ok=True)
            n = n_patients if split == "train" else max(2, round(n_patients * scale))
            for _ in range(n):
                pid = next_id[cls]
                next_id[cls] += 1
                anatomy = _anatomy(rng)
                # Some pneumonia patients are subtle: severity as low as 0.2
                # (about one patient in four), so a perfect score is not trivial.
                subtle = rng.random() < 0.25
                base = 0.0 if cls == "NORMAL" else (rng.uniform(0.2, 0.45) if subtle
                                                    else rng.uniform(0.45, 1.0))
                kind = rng.choice(("bacteria", "virus"))
                normal2 = rng.random() < 0.35
                for k in range(int(rng.integers(images_per_patient[0], images_per_patient[1] + 1))):
                    severity = 0.0 if base == 0 else float(np.clip(base * rng.uniform(0.7, 1.3), 0.1, 1.2))
                    arr = render_film(rng, anatomy, severity, image_size)
                    if cls == "PNEUMONIA":
                        name = f"person{pid}_{kind}_{counter}.{ext}"
                    elif normal2:
                        name = f"NORMAL2-IM-{pid:04d}-{k + 1:04d}.{ext}"
                    else:
                        name = f"IM-{pid:04d}-{k + 1:04d}.{ext}"
                    counter += 1
                    _save(arr, folder / name, fmt, rgb)
                    written.setdefault(cls, []).append(folder / name)
        if split == "train":
            # Copies under another name of the same patient, like the 26 in the Kaggle set.
            pneu = written.get("PNEUMONIA", [])
            for i in range(min(duplicates, len(pneu))):
                src = pneu[int(rng.integers(len(pneu)))]
                stem = src.stem.rsplit("_", 1)[0]
                shutil.copyfile(src, src.with_name(f"{stem}_{counter}.{ext}"))
                counter += 1
    return root


def default_data_dir() -> Path:
    """The built-in synthetic data set, generated on first use.

    Lives in ``<cache root>/synthetic/chest_xray_synthetic`` (``$CXR_CACHE_DIR`` or
    ``<repo>/.cache``). Generated into a temporary sibling and renamed, so an interrupted
    generation is never mistaken for a finished one.
    """
    target = cache_root() / "synthetic" / "chest_xray_synthetic"
    marker = target / _MARKER
    if marker.is_file() and marker.read_text().strip() == SYNTHETIC_VERSION:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".generating-"))
    try:
        generate_synthetic(tmp, seed=0)
        (tmp / _MARKER).write_text(SYNTHETIC_VERSION + "\n")
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if not marker.is_file():  # lost a race with another process: theirs is as good
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
