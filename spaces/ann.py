"""The ANN family: the flattened image through a stack of dense layers (the notes' 001).

Layer names: ``flatten``, ``dense{i}``, ``dense{i}_bn``, ``dense{i}_act``, ``dense{i}_dropout``,
``output`` (1-based indices).
"""

from __future__ import annotations

from typing import Any

from spaces.cnn import regularizer
from spaces.common import BaseHyperModel, batch_norm, dense_params, dense_stack_flops
from spaces.hierarchy import layer_widths, placement

MAX_UNITS = 4096  # cap of the hierarchy: 10 increasing layers from 1024 would reach 512k units


class ANNHyperModel(BaseHyperModel):
    """Dense classifier on the flattened image over every ANN dimension of the notes.

    Defaults build the notes' basic model: flatten, two dense layers of 128 units (relu), one
    sigmoid output.
    """

    family = "ann"

    def build_body(self, x: Any, values: dict[str, Any]) -> Any:
        import keras

        x = keras.layers.Flatten(name="flatten")(x)
        n = values["dense_layers"]
        units = layer_widths(values["dense_units"], n, values["dense_hierarchy"], cap=MAX_UNITS)
        drop = placement(values["dense_dropout"], n)
        bn = values["dense_batch_norm"]
        for i in range(n):
            tag = f"dense{i + 1}"
            # A bias before batch norm is cancelled by its mean subtraction.
            x = keras.layers.Dense(units[i], use_bias=bn != "before_activation",
                                   kernel_regularizer=regularizer(values), name=tag)(x)
            if bn == "before_activation":
                x = batch_norm(name=f"{tag}_bn")(x)
            x = keras.layers.Activation(values["activation"], name=f"{tag}_act")(x)
            if bn == "after_activation":
                x = batch_norm(name=f"{tag}_bn")(x)
            if drop[i]:
                x = keras.layers.Dropout(values["dense_dropout_rate"], name=f"{tag}_dropout")(x)
        return x

    def body_flops(self, values: dict[str, Any]) -> tuple[int, int]:
        """Forward FLOPs per image of the dense layers (see ``gflops``)."""
        width = self.input_shape[0] * self.input_shape[1] * self.input_shape[2]
        return dense_stack_flops(width, layer_widths(
            values["dense_units"], values["dense_layers"], values["dense_hierarchy"],
            cap=MAX_UNITS))

    def body_params(self, values: dict[str, Any]) -> tuple[int, int]:
        """Counts the parameters of :meth:`build_body` without building it.

        Returns:
            ``(parameters, width of the body's output)``, as ``model.count_params()`` counts
            them (batch-norm moving statistics included).
        """
        width = self.input_shape[0] * self.input_shape[1] * self.input_shape[2]
        n = values["dense_layers"]
        bn = values["dense_batch_norm"]
        total = 0
        for units in layer_widths(values["dense_units"], n, values["dense_hierarchy"],
                                  cap=MAX_UNITS):
            total += dense_params(width, units, bias=bn != "before_activation")
            total += 4 * units if bn != "none" else 0  # gamma, beta, moving mean and variance
            width = units
        return total, width
