"""Grad-CAM heatmaps for the exported CNN or transfer model, under whichever Keras backend.

The model is split at its last convolution: ``features = body(x)`` and ``score = head(features)``
are replayed layer by layer, so the gradient of the class score with respect to the feature maps
can be taken with the backend's own autodiff (TensorFlow's GradientTape, ``jax.grad``, torch
autograd). A nested backbone (the transfer family) is one link of the chain, split at its output,
the activation of its last convolution. Replaying needs a plain chain of layers (what the
project's CNN and transfer models build); the replay is
checked against the model's own output, and anything else degrades to a note instead of a wrong
heatmap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class GradCamUnavailable(Exception):
    """Grad-CAM cannot be computed for this model or backend; the message says why."""


@dataclass
class GradCamResult:
    """Heatmaps in [0, 1] at input resolution, one per image, and the scores they explain."""

    heatmaps: np.ndarray  # (N, S, S) float32
    probabilities: np.ndarray  # (N,)
    layer: str
    map_side: int = 0  # the smaller side of the explained feature map (before upsampling)


def _is_conv(layer: Any) -> bool:
    """A convolution, or a nested model holding one (the transfer family's ``backbone``)."""
    import keras

    convs = (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)
    if isinstance(layer, convs):
        return True
    return isinstance(layer, keras.Model) and any(_is_conv(inner) for inner in layer.layers)


def _chain(model: Any) -> tuple[list[Any], int]:
    """The model's layers as a chain, and the index of the last convolution.

    A nested backbone counts as one convolution whose output is its last feature maps (the
    activation after its last convolution, where the Keras Grad-CAM example reads Xception).
    """
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    convs = [i for i, layer in enumerate(layers) if _is_conv(layer)]
    if not convs:
        raise GradCamUnavailable("the model has no convolution layer")
    return layers, convs[-1]


def _layer_name(layer: Any) -> str:
    """``backbone/<its output layer>`` for a nested backbone, else the layer's name."""
    import keras

    if isinstance(layer, keras.Model) and layer.layers:
        return f"{layer.name}/{layer.layers[-1].name}"
    return layer.name


def _run(layers: list[Any], x: Any) -> Any:
    for layer in layers:
        x = layer(x, training=False)
    return x


def _class_score(out: Any, ops: Any, positive: Any) -> Any:
    """Sum over the batch of the predicted class's probability (p, or 1 - p for negatives)."""
    p = ops.reshape(out, (-1,)) if out.shape[-1] == 1 else out[:, -1]
    return ops.sum(ops.where(positive, p, 1.0 - p))


def _gradients(head: list[Any], feats: Any, positive: np.ndarray) -> np.ndarray:
    """d(class score)/d(features) with the active backend's autodiff."""
    import keras
    from keras import ops

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        feats_t = tf.convert_to_tensor(feats)
        with tf.GradientTape() as tape:
            tape.watch(feats_t)
            score = _class_score(_run(head, feats_t), ops, tf.constant(positive))
        return np.asarray(tape.gradient(score, feats_t))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        grad_fn = jax.grad(lambda f: _class_score(_run(head, f), ops, jnp.asarray(positive)))
        return np.asarray(grad_fn(jnp.asarray(feats)))
    if backend == "torch":
        import torch

        feats_t = torch.as_tensor(np.asarray(feats)).to(keras.backend.get_device() if hasattr(
            keras.backend, "get_device") else "cpu").requires_grad_(True)
        score = _class_score(_run(head, feats_t), ops, torch.as_tensor(positive,
                                                                      device=feats_t.device))
        score.backward()
        return feats_t.grad.detach().cpu().numpy()
    raise GradCamUnavailable(f"Grad-CAM is not implemented for the {backend!r} backend")


def _resize(cam: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray((cam * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


def grad_cam(model: Any, x: np.ndarray, threshold: float = 0.5) -> GradCamResult:
    """Grad-CAM of the predicted class for each image.

    Args:
        model: a Keras model whose layers form a chain with at least one convolution.
        x: raw images, uint8 or float ``(N, S, S, C)`` (the model rescales inside).
        threshold: the decision threshold that defines the predicted class.

    Returns:
        GradCamResult with heatmaps normalised to [0, 1] per image.

    Raises:
        GradCamUnavailable: no convolution, a non-chain model, or an unsupported backend.
    """
    from keras import ops

    layers, last_conv = _chain(model)
    body, head = layers[: last_conv + 1], layers[last_conv + 1:]
    xf = np.asarray(x, dtype=np.float32)
    feats = _run(body, ops.convert_to_tensor(xf))
    prob = np.asarray(ops.convert_to_numpy(_run(head, feats))).reshape(len(xf), -1)[:, -1]
    expected = np.asarray(model.predict(xf, verbose=0)).reshape(len(xf), -1)[:, -1]
    if not np.allclose(prob, expected, atol=1e-4):
        raise GradCamUnavailable("the model is not a plain chain of layers (replaying its layers "
                                 "does not reproduce its output)")
    feats_np = np.asarray(ops.convert_to_numpy(feats))
    grads = _gradients(head, feats_np, prob >= threshold)
    weights = grads.mean(axis=(1, 2), keepdims=True)  # one weight per feature map
    cams = np.maximum((weights * feats_np).sum(axis=-1), 0.0)
    size = xf.shape[1]
    out = np.zeros((len(xf), size, size), dtype=np.float32)
    for i, cam in enumerate(cams):
        peak = cam.max()
        out[i] = _resize(cam / peak if peak > 0 else cam, size)
    return GradCamResult(heatmaps=out, probabilities=prob, layer=_layer_name(layers[last_conv]),
                         map_side=int(min(feats_np.shape[1:3])))


def pick_examples(y_true: np.ndarray, prob: np.ndarray, threshold: float,
                  n_each: int = 3) -> list[tuple[int, str]]:
    """Indices of the most confident correct and wrong calls: ``[(index, "correct"|"wrong")]``.

    Wrong calls are ordered missed positives first (the costly error), then false alarms.
    """
    y = np.asarray(y_true).astype(int)
    pred = (np.asarray(prob) >= threshold).astype(int)
    confidence = np.abs(np.asarray(prob) - threshold)
    correct = np.flatnonzero(pred == y)
    correct = correct[np.argsort(-confidence[correct])][:n_each]
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.lexsort((-confidence[wrong], y[wrong] == 0))][:n_each]
    return [(int(i), "correct") for i in correct] + [(int(i), "wrong") for i in wrong]


# The smallest feature map whose heat can be split into the 12% frame and the rest. Below it a
# map cell is wider than twice the frame (4x4: 25% of the side per cell), so the "frame" heat is
# bilinear interpolation of cells that mostly cover the lungs. Measured (keras.applications,
# include_top=False): every transfer backbone's last map is 2x2 at 64 px (Xception 3x3: it is
# resized to 71), 4x4 at 128 px and 7x7 at 224 px; a CNN's depends on its pooling blocks.
MIN_BORDER_MAP_SIDE = 7


def border_map_note(map_side: int) -> str | None:
    """Why the border share of a ``map_side`` feature map means nothing, or None when it can."""
    if map_side >= MIN_BORDER_MAP_SIDE:
        return None
    return (f"border attention not measured: the explained feature map is {map_side}x"
            f"{map_side}, too coarse to tell the film's 12% frame from the lungs (it needs "
            f"{MIN_BORDER_MAP_SIDE}x{MIN_BORDER_MAP_SIDE} or more: a transfer backbone reaches "
            "it at 224 px, via [transfer] input_size = 224 or --image-size 224)")


def border_share(heatmaps: np.ndarray, fraction: float = 0.12) -> np.ndarray:
    """Share of each heatmap's total heat that lies in its outer frame.

    A frame of ``fraction`` per side covers ``1 - (1 - 2 * fraction) ** 2`` of the image (about
    42% at 0.12), so a map spread evenly scores that much; a model reading the lungs scores far
    less, one reading the film's edges more.

    Args:
        heatmaps: ``(N, S, S)`` non-negative maps (``GradCamResult.heatmaps``).
        fraction: frame width per side, as in ``data_pipeline.shifts.border_masked``.

    Returns:
        ``(N,)`` shares in [0, 1]; NaN for an all-zero map.
    """
    maps = np.asarray(heatmaps, dtype=np.float64)
    _, h, w = maps.shape
    bh, bw = int(round(h * fraction)), int(round(w * fraction))
    inner = maps[:, bh:h - bh, bw:w - bw].sum(axis=(1, 2))
    total = maps.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1.0 - inner / total, np.nan)
