"""The CNN family: conv blocks (convs + pooling) -> flatten or global pooling -> dense head.

Layer names are fixed so tests and reports can read the structure back: ``block{b}_conv{c}``,
``block{b}_bn{c}``, ``block{b}_act{c}``, ``block{b}_pool``, ``block{b}_dropout``, ``head_flatten`` /
``head_gap``, ``dense{i}``, ``dense{i}_act``, ``dense{i}_dropout``, ``output`` (1-based indices).
"""

from __future__ import annotations

from typing import Any

from spaces.common import BaseHyperModel, batch_norm, dense_params, dense_stack_flops
from spaces.hierarchy import layer_widths, placement

MAX_FILTERS = 512  # cap of the filter hierarchy: 5 increasing blocks from 64 would reach 1024
MAX_UNITS = 2048   # cap of the dense-head hierarchy


def regularizer(values: dict[str, Any]) -> Any:
    """An L2 kernel regularizer when ``l2`` is on, else None."""
    import keras

    return keras.regularizers.L2(values["l2_strength"]) if values["l2"] else None


def dense_head(x: Any, units: list[int], values: dict[str, Any]) -> Any:
    """The dense head shared by the CNN and transfer families: ``dense<i>`` layers of ``units``
    with the activation, L2 and ``dense_dropout`` placement of ``values`` (stable layer names:
    Grad-CAM and exports find them)."""
    import keras

    drop = placement(values["dense_dropout"] or "none", len(units)) if units else []
    for i, n in enumerate(units):
        x = keras.layers.Dense(n, kernel_regularizer=regularizer(values),
                               name=f"dense{i + 1}")(x)
        x = keras.layers.Activation(values["activation"], name=f"dense{i + 1}_act")(x)
        if drop[i]:
            x = keras.layers.Dropout(values["dense_dropout_rate"],
                                     name=f"dense{i + 1}_dropout")(x)
    return x


class CNNHyperModel(BaseHyperModel):
    """Convolutional classifier over every CNN dimension of the notes (see default_space.toml).

    Defaults build the notes' basic model: two blocks of one 3x3 conv (32 filters, relu) and 2x2
    max pooling, flatten, one dense layer of 128 units, one sigmoid output.
    """

    family = "cnn"

    def build_body(self, x: Any, values: dict[str, Any]) -> Any:
        import keras

        blocks = values["conv_blocks"]
        filters = layer_widths(values["conv_filters"], blocks, values["filter_hierarchy"],
                               cap=MAX_FILTERS)
        bn = values["conv_batch_norm"]
        bn_blocks = placement(values["conv_batch_norm_blocks"] or "all", blocks)
        dropout = placement(values["conv_dropout"], blocks)
        pool = keras.layers.MaxPooling2D if values["pooling"] == "max" else keras.layers.AveragePooling2D
        for b in range(blocks):
            use_bn = bn != "none" and bn_blocks[b]
            for c in range(values["convs_per_block"]):
                tag = f"block{b + 1}"
                # A bias before batch norm is cancelled by its mean subtraction.
                x = keras.layers.Conv2D(filters[b], values["kernel_size"], padding="same",
                                        use_bias=not (use_bn and bn == "before_activation"),
                                        kernel_regularizer=regularizer(values),
                                        name=f"{tag}_conv{c + 1}")(x)
                if use_bn and bn == "before_activation":
                    x = batch_norm(name=f"{tag}_bn{c + 1}")(x)
                x = keras.layers.Activation(values["activation"], name=f"{tag}_act{c + 1}")(x)
                if use_bn and bn == "after_activation":
                    x = batch_norm(name=f"{tag}_bn{c + 1}")(x)
            # "same" padding: a 5-block net on small images never pools down to zero pixels.
            x = pool(2, padding="same", name=f"block{b + 1}_pool")(x)
            if dropout[b]:
                x = keras.layers.Dropout(values["conv_dropout_rate"], name=f"block{b + 1}_dropout")(x)
        if values["head"] == "flatten":
            x = keras.layers.Flatten(name="head_flatten")(x)
        else:
            x = keras.layers.GlobalAveragePooling2D(name="head_gap")(x)
        n_dense = values["dense_layers"]
        if n_dense:
            units = layer_widths(values["dense_units"], n_dense, values["dense_hierarchy"],
                                 cap=MAX_UNITS)
            x = dense_head(x, units, values)
        return x

    def body_flops(self, values: dict[str, Any]) -> tuple[int, int]:
        """Forward FLOPs per image of the convolutions and dense head (see ``gflops``)."""
        size_h, size_w, channels = self.input_shape
        blocks = values["conv_blocks"]
        filters = layer_widths(values["conv_filters"], blocks, values["filter_hierarchy"],
                               cap=MAX_FILTERS)
        k = values["kernel_size"]
        total = 0
        for b in range(blocks):
            for _ in range(values["convs_per_block"]):
                total += 2 * size_h * size_w * k * k * channels * filters[b]  # "same" padding
                channels = filters[b]
            size_h, size_w = -(-size_h // 2), -(-size_w // 2)
        width = size_h * size_w * channels if values["head"] == "flatten" else channels
        if values["dense_layers"]:
            head, width = dense_stack_flops(width, layer_widths(
                values["dense_units"], values["dense_layers"], values["dense_hierarchy"],
                cap=MAX_UNITS))
            total += head
        return total, width

    def body_params(self, values: dict[str, Any]) -> tuple[int, int]:
        """Counts the parameters of :meth:`build_body` without building it.

        Returns:
            ``(parameters, width of the body's output)``, as ``model.count_params()`` counts
            them (batch-norm moving statistics included).
        """
        size_h, size_w, channels = self.input_shape
        blocks = values["conv_blocks"]
        filters = layer_widths(values["conv_filters"], blocks, values["filter_hierarchy"],
                               cap=MAX_FILTERS)
        bn = values["conv_batch_norm"]
        bn_blocks = placement(values["conv_batch_norm_blocks"] or "all", blocks)
        k = values["kernel_size"]
        total = 0
        for b in range(blocks):
            use_bn = bn != "none" and bn_blocks[b]
            for _ in range(values["convs_per_block"]):
                total += k * k * channels * filters[b]
                total += 0 if use_bn and bn == "before_activation" else filters[b]
                total += 4 * filters[b] if use_bn else 0
                channels = filters[b]
            size_h, size_w = -(-size_h // 2), -(-size_w // 2)  # "same" pooling rounds up
        width = size_h * size_w * channels if values["head"] == "flatten" else channels
        n_dense = values["dense_layers"]
        if n_dense:
            for units in layer_widths(values["dense_units"], n_dense, values["dense_hierarchy"],
                                      cap=MAX_UNITS):
                total += dense_params(width, units)
                width = units
        return total, width
