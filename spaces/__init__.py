"""KerasTuner HyperModels: a hyperparameter set -> a compiled Keras model and its fit settings.

``import spaces`` stays light (no Keras, KerasTuner or TensorFlow) so the CLI starts fast; the
hypermodels (:class:`CNNHyperModel`, :class:`ANNHyperModel`, :class:`TransferHyperModel`,
``HYPERMODELS``) are imported on first access.
"""

from __future__ import annotations

from typing import Any

from spaces.budget import DEFAULT_MAX_PARAMS
from spaces.describe import describe_space, format_table
from spaces.hierarchy import HIERARCHIES, layer_widths, placement
from spaces.metrics import METRIC_NAMES, OBJECTIVES, objective_direction
from spaces.space import (DEFAULT_FAMILIES, DEFAULT_SPACE_FILE, FAMILIES, Condition, Dim,
                          SpaceConfig, SpaceError, load_space)

_LAZY = {"CNNHyperModel": "spaces.cnn", "ANNHyperModel": "spaces.ann",
         "TransferHyperModel": "spaces.transfer",
         "ExponentialDecay": "spaces.common", "register_values": "spaces.common"}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "HYPERMODELS":
        return {"cnn": __getattr__("CNNHyperModel"), "ann": __getattr__("ANNHyperModel"),
                "transfer": __getattr__("TransferHyperModel")}
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spaces' has no attribute {name!r}")


__all__ = [
    "ANNHyperModel", "CNNHyperModel", "Condition", "DEFAULT_FAMILIES", "DEFAULT_MAX_PARAMS",
    "DEFAULT_SPACE_FILE", "TransferHyperModel",
    "Dim", "ExponentialDecay", "FAMILIES", "HIERARCHIES", "HYPERMODELS", "METRIC_NAMES",
    "OBJECTIVES", "SpaceConfig", "SpaceError", "describe_space", "format_table", "layer_widths",
    "load_space", "objective_direction", "placement", "register_values",
]
