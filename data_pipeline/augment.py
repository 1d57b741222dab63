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


def make_augmentation(strength: float, seed: int | None = None, *, flip: bool = False) -> Any:
    """A ``keras.Sequential`` of random rotation, zoom, translation, contrast and brightness.

    Works on raw 0..255 pixels (float32), the models' input range, under any Keras backend.

    Args:
        strength: 0 < strength <= 1; scales every range linearly.
        seed: Seed of the random layers (each gets ``seed + i``); None: unseeded.
        flip: Add a random horizontal flip (off by default; see the module docstring).

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
    import keras  # lazily: `run_search.py data` must not pay for a backend import

    s = float(strength)

    def sd(i: int) -> int | None:
        return None if seed is None else int(seed) + i

    layers = [
        keras.layers.RandomRotation(MAX_ROTATION * s, fill_mode="constant", seed=sd(0)),
        keras.layers.RandomZoom(MAX_ZOOM * s, fill_mode="constant", seed=sd(1)),
        keras.layers.RandomTranslation(MAX_TRANSLATION * s, MAX_TRANSLATION * s,
                                       fill_mode="constant", seed=sd(2)),
        keras.layers.RandomContrast(MAX_CONTRAST * s, value_range=(0, 255), seed=sd(3)),
        keras.layers.RandomBrightness(MAX_BRIGHTNESS * s, value_range=(0, 255), seed=sd(4)),
    ]
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=sd(5)))
    return keras.Sequential(layers, name=f"augmentation_{s:g}")
