"""Shortcut-breaking preprocessing inside the model: border crop and intensity normalisation.

Films of one acquisition batch share cues outside the lungs (the training folder's NORMAL films
have darker borders than its PNEUMONIA films) and in their exposure. Two search dimensions let a
model ignore them:

- ``border_crop``: cut a fraction of each side (centre crop) and resize back to the input size,
  so the layers after it see the same shape and the parameter count does not change;
- ``intensity_norm``: ``per_image`` standardisation (zero mean, unit variance per film) or
  ``equalize`` (per-film histogram equalisation over 256 levels), so the exposure of a film is
  no longer a feature.

Both are layers placed right after the ``Rescaling(1/255)`` input layer, so an exported model
still takes raw 0..255 pixels. The two custom layers are registered with Keras under the
``spaces`` package and use ``keras.ops`` only, so they run and save under every backend.
"""

from __future__ import annotations

from typing import Any

_LAYERS: dict[str, type] = {}
LEVELS = 256


def register_layers() -> dict[str, type]:
    """Defines and registers the custom layers with Keras (idempotent).

    Loading a saved model that uses them needs this first (``results.model_io.load_export``
    calls it): Keras finds registered classes by name and does not import their module. The
    transfer family's ``BackboneInput`` (spaces/backbones.py) is registered here too.
    """
    from spaces.backbones import register_input_layer

    register_input_layer()
    return _layers()


def _layers() -> dict[str, type]:
    """The custom layers, defined on first use so importing ``spaces`` needs no Keras."""
    if _LAYERS:
        return _LAYERS
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable("spaces")
    class PerImageStandardization(keras.layers.Layer):
        """``(x - mean) / max(std, 1 / sqrt(n))`` over each image's pixels and channels."""

        def call(self, x):
            axes = tuple(range(1, len(x.shape)))
            n = 1
            for d in x.shape[1:]:
                n *= int(d)
            mean = ops.mean(x, axis=axes, keepdims=True)
            std = ops.std(x, axis=axes, keepdims=True)
            return (x - mean) / ops.maximum(std, 1.0 / n ** 0.5)

    @keras.saving.register_keras_serializable("spaces")
    class HistogramEqualization(keras.layers.Layer):
        """Per-image histogram equalisation of [0, 1] inputs over 256 levels, output in [0, 1].

        ``(cdf(level) - cdf_min) / (n - cdf_min)``, the textbook mapping: the darkest level
        present goes to 0, the brightest to 1, and equal pixels stay equal.
        """

        def call(self, x):
            dims = [int(d) for d in x.shape[1:]]
            n = 1
            for d in dims:
                n *= d
            levels = ops.cast(ops.round(ops.clip(ops.reshape(x, (-1, n)), 0.0, 1.0)
                                        * (LEVELS - 1)), "int32")
            # The histogram by one scatter-add of (image, level) pairs: O(pixels) per image.
            # The first version compared every pixel with all 256 levels (a one-hot), which
            # cost 4x the basic CNN's whole forward pass (issue 29; benchmarks/space_cost.py).
            batch = ops.shape(levels)[0]
            rows = ops.repeat(ops.expand_dims(ops.arange(batch, dtype="int32"), 1), n, axis=1)
            pairs = ops.stack([ops.reshape(rows, (-1,)), ops.reshape(levels, (-1,))], axis=1)
            counts = ops.scatter(pairs, ops.ones((batch * n,), "float32"), (batch, LEVELS))
            cdf = ops.cumsum(counts, axis=1)  # (batch, 256)
            cdf_min = ops.min(ops.where(counts > 0, cdf, float(n)), axis=1, keepdims=True)
            mapped = ops.take_along_axis(cdf, levels, axis=1)
            out = (mapped - cdf_min) / ops.maximum(float(n) - cdf_min, 1.0)
            return ops.reshape(ops.cast(out, x.dtype), (-1, *dims))

    _LAYERS.update(PerImageStandardization=PerImageStandardization,
                   HistogramEqualization=HistogramEqualization)
    return _LAYERS


def add_preprocessing(x: Any, values: dict[str, Any], input_shape: tuple[int, ...]) -> Any:
    """Applies the ``border_crop`` and ``intensity_norm`` of ``values`` to the tensor ``x``.

    Absent or default values add no layer, so the defaults still build the notes' basic model.

    Args:
        x: The rescaled input tensor, ``(batch, S, S, C)`` in [0, 1].
        values: The trial's hyperparameter values.
        input_shape: ``(S, S, C)``.

    Returns:
        The tensor after the added layers (``border_crop``, ``intensity_norm``).
    """
    import keras

    crop = float(values.get("border_crop") or 0.0)
    if crop > 0:
        h, w = int(input_shape[0]), int(input_shape[1])
        ch, cw = max(1, round(h * (1 - 2 * crop))), max(1, round(w * (1 - 2 * crop)))
        x = keras.layers.CenterCrop(ch, cw, name="border_crop")(x)
        x = keras.layers.Resizing(h, w, interpolation="bilinear", name="border_crop_resize")(x)
    norm = values.get("intensity_norm") or "none"
    if norm == "per_image":
        x = _layers()["PerImageStandardization"](name="intensity_norm")(x)
    elif norm == "equalize":
        x = _layers()["HistogramEqualization"](name="intensity_norm")(x)
    elif norm != "none":
        raise ValueError(f"unknown intensity_norm {norm!r}")
    return x
