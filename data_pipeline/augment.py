"""Training-time augmentation as Keras preprocessing layers.

No horizontal flip by default: chest X-rays are not mirror-symmetric. The heart sits on the
patient's left, the liver dome on the right, and films carry side markers; a flipped film is
a different, implausible anatomy (situs inversus) rather than another view of the same
patient, so flipping teaches the model features that never occur at test time. ``flip=True``
opts in for data where mirroring is harmless.
"""

from __future__ import annotations

from typing import Any

from data_pipeline.errors import DataError

# Ranges at strength 1.0. Mild: radiographs vary in positioning and exposure by a few degrees,
# a little zoom/shift, and contrast/brightness, not more.
MAX_ROTATION = 0.03  # fraction of a full turn: +-10.8 degrees
MAX_ZOOM = 0.15
MAX_TRANSLATION = 0.10
MAX_CONTRAST = 0.30
MAX_BRIGHTNESS = 0.20
# Wide: the reference notebook's ranges (notes 003: rotation 40 degrees, shifts of 20%, shear
# and zoom 0.2). They move films well beyond real positioning differences, which breaks
# position-bound shortcuts harder, but slow learning down (a 64 px basic CNN may need many
# epochs); the search decides which pays.
RANGES = {
    "mild": {"rotation": MAX_ROTATION, "zoom": MAX_ZOOM, "translation": MAX_TRANSLATION,
             "shear": 0.0, "contrast": MAX_CONTRAST, "brightness": MAX_BRIGHTNESS},
    "wide": {"rotation": 40.0 / 360.0, "zoom": 0.20, "translation": 0.20, "shear": 0.20,
             "contrast": MAX_CONTRAST, "brightness": MAX_BRIGHTNESS},
}


def make_augmentation(strength: float, seed: int | None = None, *, flip: bool = False,
                      ranges: str = "mild") -> Any:
    """A ``keras.Sequential`` of random rotation, zoom, translation, [shear,] contrast and
    brightness.

    Works on raw 0..255 pixels (float32), the models' input range, under any Keras backend.

    Args:
        strength: 0 < strength <= 1; scales every range linearly.
        seed: Seed of the random layers (each gets ``seed + i``); None: unseeded.
        flip: Add a random horizontal flip (off by default; see the module docstring).
        ranges: ``"mild"`` (the module's ``MAX_*``) or ``"wide"`` (the notebook's, with shear);
            ``strength`` scales either.

    Returns:
        The augmentation model; call it with ``training=True`` (the default in ``ArrayBatches``).

    Raises:
        DataError: ``strength`` out of range.
    """
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise DataError(
            f"augmentation strength {strength!r} is out of range: it must satisfy "
            "0 < strength <= 1 (it scales rotation, zoom, shift, contrast and brightness). "
            "Fix: use a value such as 0.5, or turn augmentation off instead of passing 0."
        )
    if ranges not in RANGES:
        raise DataError(f"augmentation ranges {ranges!r} unknown: use one of "
                        f"{', '.join(RANGES)}.")
    import keras  # lazily: `run_search.py data` must not pay for a backend import

    s = float(strength)
    r = {k: v * s for k, v in RANGES[ranges].items()}

    def sd(i: int) -> int | None:
        return None if seed is None else int(seed) + i

    layers = [
        keras.layers.RandomRotation(r["rotation"], fill_mode="constant", seed=sd(0)),
        keras.layers.RandomZoom(r["zoom"], fill_mode="constant", seed=sd(1)),
        keras.layers.RandomTranslation(r["translation"], r["translation"],
                                       fill_mode="constant", seed=sd(2)),
        keras.layers.RandomContrast(r["contrast"], value_range=(0, 255), seed=sd(3)),
        keras.layers.RandomBrightness(r["brightness"], value_range=(0, 255), seed=sd(4)),
    ]
    if r["shear"] > 0:
        layers.append(keras.layers.RandomShear(r["shear"], r["shear"], fill_mode="constant",
                                               seed=sd(6)))
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=sd(5)))
    suffix = "" if ranges == "mild" else f"_{ranges}"
    return keras.Sequential(layers, name=f"augmentation_{s:g}{suffix}")
