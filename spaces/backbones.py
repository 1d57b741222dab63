"""The pretrained backbones of the transfer family: what each is, what it costs, its blocks,
where its weights come from, and the input layer that feeds it raw pixels.

Every backbone is a ``keras.applications`` model built with ``include_top=False`` and named
``backbone`` inside the classifier. Its cost (parameters and forward FLOPs per image at a given
input side) is read off a copy built once with ``weights=None`` and cached, so a budget refusal
is exact and costs one build per (backbone, side) per process, never one per draw.

Weights (``--weights``): ``"imagenet"`` goes through Keras' own download cache
(``$KERAS_HOME/models``, by default ``~/.keras/models``); a path is loaded with
``load_weights`` (the ``..._notop.h5`` file Keras downloads, or a ``.weights.h5`` saved with
``backbone.save_weights``); ``None`` starts from random weights.
:func:`check_weights` builds each backbone the budget can draw once with them before any
training, so a machine without internet or cache fails in seconds with both ways out named.

The graph of a pretrained backbone is always ImageNet's, whether its weights come from Keras'
cache, from a file, or from a fold's saved weights (``load=False``): ``keras.applications``
adds some layers only when ``weights == "imagenet"`` (EfficientNet's stem
``Rescaling(1/sqrt(stddev))``, about x2.1; keras ``efficientnet.py``). Those layers hold no
weights, so a graph without them would load every weight file silently and run on inputs at
half the scale the weights were trained on. :func:`make_backbone` therefore builds with
``weights=None`` and adds them (:data:`IMAGENET_ONLY_LAYERS`) wherever it does not let Keras
load ImageNet itself. Only ``--weights none`` (from scratch) keeps Keras' ``weights=None``
graph.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spaces.space import SpaceError

BACKBONE_LAYER = "backbone"  # the nested model's name inside every transfer classifier
INPUT_LAYER = "backbone_input"


@dataclass(frozen=True)
class Backbone:
    """One ``keras.applications`` backbone.

    Attributes:
        constructor: the ``keras.applications`` function name.
        module: the ``keras.applications`` module holding its ``preprocess_input``.
        min_size: the smallest input side it accepts without its top.
        block: a regular expression whose group 1 names a layer's block; layers that match
            none belong to the block before them (the stem, before the first block, is never
            unfrozen by ``fine_tune_blocks``).
    """

    constructor: str
    module: str
    min_size: int
    block: str


BACKBONES: dict[str, Backbone] = {
    "xception": Backbone("Xception", "xception", 71, r"^(block\d+)_"),
    "resnet50": Backbone("ResNet50", "resnet", 32, r"^(conv\d+_block\d+)_"),
    "resnet101": Backbone("ResNet101", "resnet", 32, r"^(conv\d+_block\d+)_"),
    "densenet121": Backbone("DenseNet121", "densenet", 32, r"^(conv\d+_block\d+)_"),
    "efficientnetb0": Backbone("EfficientNetB0", "efficientnet", 32, r"^(block\d+[a-z])_"),
    "mobilenetv3small": Backbone("MobileNetV3Small", "mobilenet_v3", 32,
                                 r"^(expanded_conv(?:_\d+)?)_"),
    "mobilenetv3large": Backbone("MobileNetV3Large", "mobilenet_v3", 32,
                                 r"^(expanded_conv(?:_\d+)?)_"),
}


class WeightsError(SpaceError):
    """The backbone weights asked for cannot be had; the message names both ways out."""


def backbone_side(key: str, input_size: int, image_size: int) -> int:
    """The side the backbone sees: ``input_size`` (0: the image size), at least its minimum."""
    return max(int(input_size) or int(image_size), BACKBONES[key].min_size)


# EfficientNet's ImageNet stem divides by sqrt(stddev) once more after its Normalization layer
# (keras efficientnet.py, IMAGENET_STDDEV_RGB; tensorflow/tensorflow#49930).
_IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
STEM_RESCALING = "stem_rescaling"  # the name of the layer added by _with_imagenet_layers

# The keras.applications modules whose graph differs when built with weights="imagenet".
IMAGENET_ONLY_LAYERS = {"efficientnet": "Rescaling(1/sqrt(stddev)) after the stem Normalization"}


def make_backbone(key: str, side: int, weights: str | None, *, load: bool = True) -> Any:
    """``keras.applications`` backbone ``key`` without its top, for ``side`` x ``side`` RGB.

    Args:
        key: a :data:`BACKBONES` key.
        side: the input side.
        weights: ``"imagenet"``, a weights-file path, or None (random, Keras' plain graph).
        load: read the weights (False: the same pretrained graph, random values, for a model
            whose trained weights are loaded next, such as a fold model or an export).

    Returns:
        The backbone, named :data:`BACKBONE_LAYER`; for ``"imagenet"`` or a path its graph is
        ImageNet's, imagenet-only layers included (module docstring).
    """
    import keras

    spec = BACKBONES[key]
    constructor = getattr(keras.applications, spec.constructor)
    kwargs: dict[str, Any] = {"include_top": False, "input_shape": (side, side, 3),
                              "name": BACKBONE_LAYER}
    if weights == "imagenet" and load:
        return constructor(weights="imagenet", **kwargs)
    model = constructor(weights=None, **kwargs)
    if weights is None:
        return model
    model = _with_imagenet_layers(model, spec)
    if load and weights != "imagenet":
        model.load_weights(weights)
    return model


def _with_imagenet_layers(model: Any, spec: Backbone) -> Any:
    """``model`` (built with ``weights=None``) with the layers Keras adds only for ImageNet."""
    if spec.module not in IMAGENET_ONLY_LAYERS:
        return model
    import keras

    stem_norm = next(layer for layer in model.layers
                     if isinstance(layer, keras.layers.Normalization))

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        out = layer(*args, **kwargs)
        if layer is stem_norm:
            out = keras.layers.Rescaling([1.0 / math.sqrt(s) for s in _IMAGENET_STDDEV_RGB],
                                         name=STEM_RESCALING)(out)
        return out

    inputs = keras.Input(shape=model.input_shape[1:], name=model.layers[0].name)
    # The same layer objects (their weights) rewired through the one added layer.
    return keras.models.clone_model(model, input_tensors=inputs, clone_function=lambda l: l,
                                    call_function=call)


def weights_digest(path: str | os.PathLike) -> str:
    """sha256 of a weights file's bytes: a run matches its ``--weights`` file by content."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def backbone_cost(key: str, side: int) -> tuple[int, int, int]:
    """``(parameters, forward FLOPs per image, output channels)`` of backbone ``key``.

    Exact for the built graph: ``count_params()`` (batch-norm statistics included, as the other
    families count them) and 2 x multiply-adds of every convolution (plain, depthwise,
    separable) and dense layer, from their output shapes; activations, pooling and
    normalisation are left out, the rule of ``BaseHyperModel.gflops``.
    """
    model = make_backbone(key, side, None)
    try:
        flops = sum(_layer_flops(layer) for layer in model.layers)
        return int(model.count_params()), int(flops), int(model.output.shape[-1])
    finally:
        del model


def _layer_flops(layer: Any) -> int:
    import keras

    out = layer.output.shape
    if isinstance(layer, keras.layers.Dense):
        spatial = 1
        for d in out[1:-1]:
            spatial *= int(d)
        return 2 * spatial * int(layer.input.shape[-1]) * int(out[-1])
    if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                              keras.layers.SeparableConv2D)):
        return 0
    h, w = int(out[1]), int(out[2])
    kh, kw = layer.kernel_size
    cin = int(layer.input.shape[-1])
    if isinstance(layer, keras.layers.SeparableConv2D):
        mid = cin * layer.depth_multiplier
        return 2 * h * w * (kh * kw * mid + mid * int(out[-1]))
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return 2 * h * w * kh * kw * cin * layer.depth_multiplier
    return 2 * h * w * kh * kw * (cin // layer.groups) * int(out[-1])


def blocks(backbone: Any, key: str) -> list[list[Any]]:
    """The backbone's layers grouped into blocks, in order; the first group is the stem."""
    pattern = re.compile(BACKBONES[key].block)
    groups: list[list[Any]] = [[]]
    current = None
    for layer in backbone.layers:
        match = pattern.match(layer.name)
        if match and match.group(1) != current:
            current = match.group(1)
            groups.append([])
        groups[-1].append(layer)
    return groups


def unfreeze_top(backbone: Any, key: str, n_blocks: int) -> int:
    """Makes the top ``n_blocks`` blocks trainable, the rest frozen; returns the layers unfrozen.

    Batch-norm layers stay frozen even inside unfrozen blocks (Keras' fine-tuning examples):
    with a few thousand films their statistics and scales would drift from ImageNet's.
    """
    import keras

    backbone.trainable = True  # the nested model's own flag; each layer's is set below
    chosen = {id(layer) for group in blocks(backbone, key)[1:][-n_blocks:] if n_blocks > 0
              for layer in group}
    count = 0
    for layer in backbone.layers:
        on = id(layer) in chosen and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = on
        count += int(on and bool(layer.weights))
    return count


def keras_cache_dir() -> Path:
    """Where ``keras.applications`` keeps downloaded weights (``$KERAS_HOME/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def check_weights(weights: str | None, keys: list[str]) -> None:
    """Builds each backbone in ``keys`` once with ``weights``, before any training.

    ``"imagenet"`` makes Keras fetch each file into its cache (or find it there); a path must
    be a file that loads into the one backbone the space searches.

    Raises:
        WeightsError: offline and not cached, an unreadable or mismatched file, or a path with
            more than one backbone to search; the message names the fix.
    """
    if weights is None:
        return
    if weights != "imagenet":
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(
                f"--weights {weights}: no such file. Give a backbone weights file (the "
                "*_notop.h5 file keras.applications downloads, or one saved with "
                "backbone.save_weights(...) as NAME.weights.h5), --weights imagenet to use "
                "Keras' download cache, or --weights none to train from scratch.")
        if len(keys) != 1:
            raise WeightsError(
                f"--weights {weights} is one backbone's weights, but the transfer space "
                f"searches {len(keys)} backbones ({', '.join(keys)}). Fix the backbone to the "
                "file's in a --space file (`[transfer]` then `backbone = \"resnet50\"`, say), "
                "or use --weights imagenet.")
    import keras

    for key in keys:
        side = BACKBONES[key].min_size
        try:
            with warnings.catch_warnings():
                # "Weights for input shape (224, 224) will be loaded": true and harmless, the
                # convolution weights fit every side; this build only proves they load.
                warnings.simplefilter("ignore", UserWarning)
                model = make_backbone(key, side, weights)
        except Exception as err:  # noqa: BLE001 - Keras raises bare Exception on fetch failure
            raise _weights_error(weights, key, err) from None
        del model
        keras.backend.clear_session()


def _weights_error(weights: str, key: str, err: Exception) -> WeightsError:
    reason = " ".join(str(err).split())[:300]
    if weights == "imagenet":
        cache = keras_cache_dir()
        return WeightsError(
            f"--weights imagenet: the ImageNet weights of the {key} backbone are not in Keras' "
            f"cache ({cache}) and could not be downloaded ({reason}). Either run once on a "
            f"machine with internet access (keras.applications downloads them into {cache}; "
            "copy that folder to the same place here, or set KERAS_HOME to where the models/ "
            "folder is), or pass --weights PATH with the backbone's weights file (and fix "
            "[transfer] backbone to it in a --space file); --weights none trains from scratch.")
    return WeightsError(
        f"--weights {weights} cannot be loaded into the {key} backbone ({reason}). The file "
        f"must hold the weights of keras.applications.{BACKBONES[key].constructor} without "
        "its top (include_top=False): the *_notop.h5 file Keras downloads, or a file saved "
        "with backbone.save_weights(...). Give the matching file, or --weights imagenet / none.")


def input_layer(key: str, name: str = INPUT_LAYER) -> Any:
    """The layer turning 0..255 pixels (1 or 3 channels) into the backbone's expected input."""
    return register_input_layer()(backbone=key, name=name)


@functools.lru_cache(maxsize=None)
def register_input_layer() -> type:
    """Defines and registers :class:`BackboneInput` on first use (no Keras import before)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable("spaces")
    class BackboneInput(keras.layers.Layer):
        """Grayscale repeated to three channels, then the backbone's own ``preprocess_input``.

        One layer (not a Concatenate of three inputs) so the classifier stays a chain of
        single-input layers, which Grad-CAM replays (results/report/gradcam.py).
        """

        def __init__(self, backbone: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            if backbone not in BACKBONES:
                raise ValueError(f"unknown backbone {backbone!r}")
            self.backbone = backbone

        def call(self, x):
            if x.shape[-1] == 1:
                x = ops.repeat(x, 3, axis=-1)
            module = getattr(keras.applications, BACKBONES[self.backbone].module)
            return module.preprocess_input(x)

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], 3)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "backbone": self.backbone}

    return BackboneInput
