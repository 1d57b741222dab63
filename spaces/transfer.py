"""The transfer family: a pretrained ``keras.applications`` backbone under a new head.

Layers after the shared ``rescale`` / shortcut preprocessing (spaces/common.py): ``to_pixels``
(back to 0..255, the scale every ``preprocess_input`` expects), ``backbone_resize`` (only when
the side differs), ``backbone_input`` (grayscale repeated to three channels, then the
backbone's own ``preprocess_input``), ``backbone`` (the nested model, ImageNet's graph for
pretrained weights: spaces/backbones.py), ``head_gap``, ``head_dropout``, ``dense{i}``,
``dense{i}_act``, ``dense{i}_dropout``, ``output``. An exported model therefore takes raw
0..255 pixels like the other families.

Training mode. The backbone follows the fit's training flag: Keras 3's functional model hands
its own ``training`` to every nested layer during fit, overriding a ``training=False`` given
when the graph was built (keras ``functional.py``, ``operation_fn``), so the code does not
pretend otherwise. What that means, read off the layers in
``tests/spaces/test_transfer_modes.py``: batch norm still runs in inference mode (its moving
statistics never change), because every batch-norm layer of a pretrained backbone stays frozen
and Keras 3 runs a frozen batch norm in inference mode; EfficientNet's stochastic-depth dropout
runs in training mode in both stages, as in Keras' own EfficientNet fine-tuning example (the
other backbones have no dropout without their top). With ``--weights none`` everything trains,
batch norm included.

Staged fine-tuning, after Keras' transfer-learning guide, inside :meth:`TransferHyperModel.fit`:

1. absolute epochs ``0 .. B - 1`` train the head with the whole backbone frozen;
2. epochs ``B ..`` unfreeze the top ``fine_tune_blocks`` blocks (batch norm stays frozen)
   and recompile at ``learning_rate x fine_tune_lr_ratio``.

The boundary ``B`` is a property of the trial's epochs, not of one fit:
``min(head_epochs, max(1, max_epochs - 1))``, where ``max_epochs`` is the search's epoch
horizon (every round of a configuration, and the export's retrain, get the same one). So a
Hyperband round continued from epoch ``e >= B`` goes on fine-tuning the weights it carried
(never re-freezing them), and a retrain for the cross-validated epoch count ``E`` runs
``min(E, B)`` head epochs then ``E - B`` fine-tuning epochs, exactly the stages those ``E``
epochs had in cross-validation. A fit that ends before ``B`` (a short first Hyperband round)
has no stage 2. The cap keeps one fine-tuning epoch in a full-length trial;
``fine_tune_blocks = 0`` keeps the backbone frozen throughout (the reference notebook's
Xception). Early stopping restores the best epoch over both stages: stage 2 keeps its
weights only when it beats stage 1's best. ``--weights none`` has nothing to protect, so the
backbone trains from scratch with the head from epoch 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras_tuner as kt

from spaces import backbones as bb
from spaces.budget import DEFAULT_MAX_PARAMS
from spaces.cnn import dense_head
from spaces.common import (BaseHyperModel, dense_params, dense_stack_flops, make_optimizer,
                           make_schedule, register_values)
from spaces.hierarchy import layer_widths
from spaces.metrics import make_metrics
from spaces.space import SpaceConfig, SpaceError

MAX_UNITS = 2048  # cap of the dense-head hierarchy, as the CNN's


def resolve_weights(weights: str | None) -> str | None:
    """``--weights`` -> what ``keras.applications`` takes: "imagenet", a path, or None.

    None (not given) means ImageNet, the family's default; ``"none"`` means random weights.
    """
    if weights is None or weights == "imagenet":
        return "imagenet"
    if weights == "none":
        return None
    return str(weights)


class TransferHyperModel(BaseHyperModel):
    """A ``keras.applications`` backbone with global average pooling and a dense head.

    Defaults build MobileNetV3Small (0.94M parameters: the one backbone under the CPU default
    of 2M at 64 px, so the first trial is never refused) at the image size (at least 32 px)
    with ImageNet weights, global average pooling, dropout 0.2 and the sigmoid output; two head
    epochs, then the top two blocks fine-tuned at a tenth of the learning rate.
    """

    family = "transfer"
    params_hint = ("a smaller backbone such as [transfer] backbone = [\"mobilenetv3small\", "
                   "\"efficientnetb0\"], or no dense head")
    flops_hint = ("a smaller backbone or input_size, e.g. [transfer] backbone = "
                  "[\"mobilenetv3small\", \"efficientnetb0\"] and input_size = [0, 128]; "
                  "--preset gpu raises the limits for a GPU")

    def __init__(self, input_shape: Sequence[int], num_classes: int = 2,
                 class_counts: Sequence[int] | None = None, space: SpaceConfig | None = None,
                 max_params: int = DEFAULT_MAX_PARAMS, max_gflops: float | None = None,
                 weights: str | None = "imagenet", max_epochs: int | None = None) -> None:
        """Validates the fixed facts of a search (see ``BaseHyperModel``).

        Args:
            weights: ``"imagenet"`` (Keras' download cache), a weights-file path, or None for
                random weights (the backbone then trains from scratch, without stages).
            max_epochs: the search's epoch horizon, which fixes the stage boundary of every
                fit (module docstring); None: each fit's own end epoch (a lone fit).

        Raises:
            SpaceError: an argument breaks its rule.
        """
        super().__init__(input_shape, num_classes, class_counts, space, max_params, max_gflops)
        if weights is not None and not isinstance(weights, str):
            raise SpaceError(f"weights must be 'imagenet', a file path or None, got {weights!r}.")
        if max_epochs is not None and (isinstance(max_epochs, bool)
                                       or not isinstance(max_epochs, int) or max_epochs < 1):
            raise SpaceError(f"max_epochs must be a positive int or None, got {max_epochs!r}.")
        self.weights = weights
        self.max_epochs = max_epochs
        # False builds the same model without reading the weights (random initial values):
        # for models whose trained weights are loaded next (fold models, exports).
        self.load_pretrained = True

    # -- structure -----------------------------------------------------------------------------
    def side(self, values: dict[str, Any]) -> int:
        """The side the backbone sees for ``values``."""
        return bb.backbone_side(values["backbone"], values["input_size"], self.input_shape[0])

    def _head_units(self, values: dict[str, Any]) -> list[int]:
        n = values["dense_layers"]
        return layer_widths(values["dense_units"], n, values["dense_hierarchy"],
                            cap=MAX_UNITS) if n else []

    def build_body(self, x: Any, values: dict[str, Any]) -> Any:
        import keras

        key, side = values["backbone"], self.side(values)
        # Back to 0..255 after the shared preprocessing; a per-image standardised film (zero
        # mean, unit variance) is mapped so +-2 standard deviations span 0..255.
        if values.get("intensity_norm") == "per_image":
            x = keras.layers.Rescaling(255.0 / 4, offset=127.5, name="to_pixels")(x)
        else:
            x = keras.layers.Rescaling(255.0, name="to_pixels")(x)
        if (side, side) != tuple(self.input_shape[:2]):
            x = keras.layers.Resizing(side, side, interpolation="bilinear",
                                      name="backbone_resize")(x)
        x = bb.input_layer(key)(x)
        # The pretrained graph even when the weights are loaded next (load_pretrained False).
        backbone = bb.make_backbone(key, side, self.weights, load=self.load_pretrained)
        # Stage 1 freezes it; stage 2 (fit) unfreezes its top blocks. From scratch: all trains.
        backbone.trainable = self.weights is None
        # No training=False here: Keras 3 overrides it with the fit's flag (module docstring);
        # batch norm stays in inference mode because its layers stay frozen.
        x = backbone(x)
        x = keras.layers.GlobalAveragePooling2D(name="head_gap")(x)
        if values["pool_dropout_rate"] > 0:
            x = keras.layers.Dropout(values["pool_dropout_rate"], name="head_dropout")(x)
        return dense_head(x, self._head_units(values), values)

    def drawable_backbones(self) -> list[str]:
        """The space's backbones that at least one configuration within the budget uses.

        A backbone is drawable when its cheapest configuration (each ``input_size`` choice,
        the fewest dense layers, the narrowest units) passes ``max_params`` and
        ``max_gflops``; the oracles never draw the others, so their weights are not needed.
        """
        dims = self.space.dims(self.family)

        def lowest(name: str) -> Any:
            return min(dims[name].possible_values()) if name in dims else None

        out = []
        for key in dims["backbone"].possible_values():
            # The smallest side is the cheapest: a backbone's parameters do not depend on the
            # side and its FLOPs grow with it, so one cost (one cached build) decides.
            size = min(dims["input_size"].possible_values(),
                       key=lambda v: bb.backbone_side(key, v, self.input_shape[0]))
            hp = kt.HyperParameters()
            for name, value in {"backbone": key, "input_size": size,
                                "dense_layers": lowest("dense_layers"),
                                "dense_units": lowest("dense_units")}.items():
                if value is not None:
                    hp.values[name] = value
            if self.refusal(hp) is None:
                out.append(str(key))
        return out

    def body_params(self, values: dict[str, Any]) -> tuple[int, int]:
        """Parameters of the backbone (built once per side, cached) and of the dense head."""
        total, _, width = bb.backbone_cost(values["backbone"], self.side(values))
        for units in self._head_units(values):
            total += dense_params(width, units)
            width = units
        return total, width

    def body_flops(self, values: dict[str, Any]) -> tuple[int, int]:
        """Forward FLOPs per image of the backbone's convolutions and the dense head."""
        _, flops, width = bb.backbone_cost(values["backbone"], self.side(values))
        head, width = dense_stack_flops(width, self._head_units(values))
        return flops + head, width

    # -- fit -----------------------------------------------------------------------------------
    def stage_boundary(self, values: dict[str, Any], epochs: int | None = None) -> int | None:
        """Absolute epoch at which stage 2 starts; None when the trial has no stage 2.

        Args:
            values: the trial's hyperparameter values.
            epochs: the fit's end epoch, used only without a ``max_epochs`` horizon.
        """
        if self.weights is None or not values["fine_tune_blocks"]:
            return None
        horizon = self.max_epochs if self.max_epochs is not None else epochs
        return min(int(values["head_epochs"]), max(1, int(horizon or 1) - 1))

    def head_epochs(self, values: dict[str, Any], epochs: int) -> int:
        """The epoch at which this fit's stage 2 starts (``epochs``: none in this fit)."""
        boundary = self.stage_boundary(values, epochs)
        return epochs if boundary is None else min(boundary, epochs)

    def fit(self, hp: kt.HyperParameters, model: Any, x: Any, y: Any, *, validation_data: Any,
            epochs: int, initial_epoch: int = 0, callbacks: list[Any] | None = None,
            verbose: int = 0, seed: int | None = None, **kwargs: Any) -> Any:
        """Trains in two stages (module docstring); arguments as ``BaseHyperModel.fit``.

        Returns:
            A ``keras.callbacks.History`` over both stages, one entry per epoch, whose best
            epoch is the one whose weights the model holds afterwards.
        """
        import keras

        values = register_values(hp, self.space, self.family)
        train, val = self.fit_inputs(values, x, y, validation_data, seed, kwargs)
        callbacks = list(callbacks or [])
        stop = next((c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)), None)
        boundary = self.head_epochs(values, epochs)
        history: dict[str, list[float]] = {}
        start = initial_epoch
        best = None
        if start < boundary:
            h = model.fit(**train, validation_data=val, epochs=boundary, initial_epoch=start,
                          callbacks=callbacks + _schedule(values, 1.0), verbose=verbose,
                          **kwargs)
            _extend(history, h.history)
            start += len(h.epoch)
            # Stopped by anything but early stopping (NaN, a signal, the time budget): the
            # caller handles it after this returns, so stage 2 must not start.
            if model.stop_training and not (stop is not None and stop.stopped_epoch > 0):
                return _history(history, initial_epoch)
            if stop is not None and stop.restore_best_weights and stop.monitor in h.history:
                best = (_best(h.history[stop.monitor], stop.monitor), model.get_weights())
        if start < epochs and any(getattr(c, "stops_before_stage", lambda: False)()
                                  for c in callbacks):
            # The time budget was spent in stage 1's last epoch (search.schedule.budget): stage 2
            # would
            # be cut at its first epoch and the fold discarded anyway, so it never starts.
            model.stop_training = True
            return _history(history, initial_epoch)
        if start < epochs:
            ratio = float(values["fine_tune_lr_ratio"] or 1.0)
            self.start_fine_tuning(model, values)
            h = model.fit(**train, validation_data=val, epochs=epochs, initial_epoch=start,
                          callbacks=callbacks + _schedule(values, ratio), verbose=verbose,
                          **kwargs)
            _extend(history, h.history)
            later = h.history.get(stop.monitor) if stop is not None else None
            if best is not None and later and not _beats(_best(later, stop.monitor), best[0],
                                                         stop.monitor):
                model.set_weights(best[1])  # stage 2 never beat the head-only best
        return _history(history, initial_epoch)

    def start_fine_tuning(self, model: Any, values: dict[str, Any]) -> None:
        """Unfreezes the top ``fine_tune_blocks`` blocks and recompiles at the lower rate."""
        backbone = model.get_layer(bb.BACKBONE_LAYER)
        if self.weights is not None:
            bb.unfreeze_top(backbone, values["backbone"], int(values["fine_tune_blocks"]))
        ratio = float(values["fine_tune_lr_ratio"] or 1.0)
        # Keep the device plan's XLA choice (search/runtime/devices.py sets it after build).
        model.compile(optimizer=make_optimizer(values, ratio), loss=self.loss_name(),
                      metrics=make_metrics(self.num_classes), jit_compile=model.jit_compile)


def _schedule(values: dict[str, Any], scale: float) -> list[Any]:
    import keras

    schedule = make_schedule(values, scale)
    return [keras.callbacks.LearningRateScheduler(schedule)] if schedule is not None else []


def _extend(history: dict[str, list[float]], more: dict[str, list[Any]]) -> None:
    for key, vals in more.items():
        history.setdefault(key, []).extend(float(v) for v in vals)


def _lower_is_better(monitor: str) -> bool:
    return monitor.endswith("loss")


def _best(values: list[Any], monitor: str) -> float:
    vals = [float(v) for v in values]
    return min(vals) if _lower_is_better(monitor) else max(vals)


def _beats(a: float, b: float, monitor: str) -> bool:
    """Strictly better, so a tie keeps the earlier (head-only) epoch, as early stopping does."""
    return a < b if _lower_is_better(monitor) else a > b


def _history(history: dict[str, list[float]], initial_epoch: int) -> Any:
    import keras

    out = keras.callbacks.History()
    out.history = history
    n = len(next(iter(history.values()), []))
    out.epoch = list(range(initial_epoch, initial_epoch + n))
    return out
