"""Fixed distribution shifts of validation images, for the shortcut probes.

A model that scores 0.99 on patient-grouped folds of one folder can still lean on cues of that
folder's acquisition (training NORMAL films have darker borders than PNEUMONIA films). These
functions build shifted copies of a fold's validation images; a model's AUC on each copy (see
``search/fit/probes.py``) says how much its score depends on what the shift disturbs:

- ``border``: an outer frame (``BORDER_FRACTION`` of each side) replaced by the image's median,
  so nothing outside the lung field is left to read;
- ``photometric``: per-image gamma, contrast and brightness changes of the size exposure
  differences between machines produce;
- ``geometric``: per-image small rotation, translation and zoom, the size of positioning
  differences between films.

Every transform is drawn once per image from a fixed seed, so every trial of a search is probed
on the very same images. Pure NumPy/SciPy: no Keras, no TensorFlow, any backend.
"""

from __future__ import annotations

import numpy as np

BORDER_FRACTION = 0.12
GAMMA_RANGE = (0.7, 1.4)        # log-uniform
CONTRAST_RANGE = (0.7, 1.0)     # factor around the image mean (lower = flatter film)
BRIGHTNESS_RANGE = (-0.1, 0.1)  # fraction of the 0..255 range
ROTATION_DEG = 10.0
TRANSLATION = 0.08              # fraction of the side
ZOOM_RANGE = (0.9, 1.1)
SHIFT_SEED = 20240917
SHIFT_NAMES = ("border", "photometric", "geometric")


def _as_images(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C); got shape {x.shape}")
    return x


def border_masked(x: np.ndarray, fraction: float = BORDER_FRACTION) -> np.ndarray:
    """Replaces an outer frame of each image by that image's median (all channels).

    Args:
        x: Images ``(N, H, W, C)``, any numeric dtype; the result keeps it.
        fraction: Width of the frame as a fraction of each side, in [0, 0.5).

    Returns:
        A new array; the centre ``(1 - 2 * fraction)`` of every side is untouched.
    """
    x = _as_images(x)
    if not 0.0 <= fraction < 0.5:
        raise ValueError(f"border fraction must be in [0, 0.5); got {fraction}")
    out = x.copy()
    n, h, w, _ = x.shape
    bh, bw = int(round(h * fraction)), int(round(w * fraction))
    if bh == 0 and bw == 0:
        return out
    median = np.median(x.reshape(n, -1), axis=1).astype(x.dtype)[:, None, None, None]
    mask = np.ones((h, w), dtype=bool)
    mask[bh:h - bh, bw:w - bw] = False
    out[:, mask, :] = np.broadcast_to(median, (n, 1, 1, x.shape[3]))[:, 0, 0, None, :]
    return out


def _scaled(value: np.ndarray, identity: float, strength: float) -> np.ndarray:
    """``value`` moved ``strength`` times as far from ``identity`` (unchanged at 1.0)."""
    return value if strength == 1.0 else identity + strength * (value - identity)


def _check_strength(strength: float) -> None:
    if not strength >= 0.0:
        raise ValueError(f"shift strength must be >= 0; got {strength}")


def photometric_shifted(x: np.ndarray, seed: int = SHIFT_SEED, *,
                        strength: float = 1.0) -> np.ndarray:
    """Per-image gamma, contrast and brightness drawn from the module's ranges (0..255 pixels).

    Args:
        x: Images ``(N, H, W, C)``.
        seed: The draw's seed.
        strength: Scales each drawn change away from the identity (0.5: half as far, 2: twice;
            1.0, the default, is the probe's shift). The same draws are scaled, so a mild and a
            strong copy differ only in size (``benchmarks/site_calibration.py``).

    Returns:
        The shifted images, same shape and dtype (clipped to 0..255 for integer input).
    """
    x = _as_images(x)
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    _check_strength(strength)
    gamma = np.exp(_scaled(rng.uniform(np.log(GAMMA_RANGE[0]), np.log(GAMMA_RANGE[1]), n),
                           0.0, strength))
    contrast = _scaled(rng.uniform(*CONTRAST_RANGE, n), 1.0, strength)
    bright = _scaled(rng.uniform(*BRIGHTNESS_RANGE, n), 0.0, strength) * 255.0
    v = np.clip(x.astype(np.float32), 0, 255) / 255.0
    v = 255.0 * v ** gamma[:, None, None, None].astype(np.float32)
    mean = v.reshape(n, -1).mean(axis=1)[:, None, None, None]
    v = (v - mean) * contrast[:, None, None, None] + mean + bright[:, None, None, None]
    return _cast_like(v, x)


def geometric_shifted(x: np.ndarray, seed: int = SHIFT_SEED, *,
                      strength: float = 1.0) -> np.ndarray:
    """Per-image rotation (up to ``ROTATION_DEG``), translation and zoom around the centre.

    ``strength`` scales each drawn change as in :func:`photometric_shifted`.

    Pixels that come from outside the film are reflected back in (SciPy's ``reflect``), so the
    shift adds no artificial black frame that a border-reading model could take as a cue.

    Returns:
        The shifted images, same shape and dtype.
    """
    from scipy import ndimage

    x = _as_images(x)
    rng = np.random.default_rng(seed)
    n, h, w, c = x.shape
    _check_strength(strength)
    angle = np.deg2rad(_scaled(rng.uniform(-ROTATION_DEG, ROTATION_DEG, n), 0.0, strength))
    ty = _scaled(rng.uniform(-TRANSLATION, TRANSLATION, n), 0.0, strength) * h
    tx = _scaled(rng.uniform(-TRANSLATION, TRANSLATION, n), 0.0, strength) * w
    zoom = _scaled(rng.uniform(*ZOOM_RANGE, n), 1.0, strength)
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    out = np.empty_like(x)
    src = x.astype(np.float32)
    for i in range(n):
        cos, sin = np.cos(angle[i]) / zoom[i], np.sin(angle[i]) / zoom[i]
        # affine_transform maps output coordinates to input ones: the inverse transform.
        matrix = np.array([[cos, -sin], [sin, cos]])
        offset = centre - matrix @ (centre + np.array([ty[i], tx[i]]))
        for ch in range(c):
            out[i, :, :, ch] = _cast_like(
                ndimage.affine_transform(src[i, :, :, ch], matrix, offset=offset, order=1,
                                         mode="reflect"), x[i, :, :, ch])
    return out


def _cast_like(v: np.ndarray, like: np.ndarray) -> np.ndarray:
    if np.issubdtype(like.dtype, np.integer):
        return np.clip(np.rint(v), 0, 255).astype(like.dtype)
    return v.astype(like.dtype, copy=False)


def shifted_sets(x: np.ndarray, seed: int = SHIFT_SEED) -> dict[str, np.ndarray]:
    """All probe copies of ``x``: ``{"border": ..., "photometric": ..., "geometric": ...}``."""
    return {"border": border_masked(x), "photometric": photometric_shifted(x, seed),
            "geometric": geometric_shifted(x, seed)}
