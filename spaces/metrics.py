"""Metrics compiled into every model, with fixed names, and the objectives built from them.

Names are set explicitly (``AUC(name="auc")``) so a rebuilt model logs ``val_auc`` and not
``val_auc_1``; objectives such as ``val_auc`` therefore stay valid across every trial.
"""

from __future__ import annotations

from typing import Any

from spaces.space import SpaceError

METRIC_NAMES = ("loss", "accuracy", "auc", "pr_auc", "precision", "recall")
# The shortcut probes (search/fit/probes.py), measured at each fold's restored epoch.
PROBE_OBJECTIVES = ("val_auc_border", "val_auc_photometric", "val_auc_geometric",
                    "val_auc_batch", "val_auc_robust")
OBJECTIVES = tuple(f"val_{m}" for m in METRIC_NAMES) + PROBE_OBJECTIVES + METRIC_NAMES


def objective_direction(name: str) -> str:
    """Returns ``"min"`` for losses and ``"max"`` for the other metrics.

    Raises:
        SpaceError: ``name`` is not one of :data:`OBJECTIVES`.
    """
    if name not in OBJECTIVES:
        raise SpaceError(f"unknown objective {name!r}; valid objectives: {', '.join(OBJECTIVES)}.")
    return "min" if name.endswith("loss") else "max"


def make_metrics(num_classes: int) -> list[Any]:
    """Fresh metric objects for one compile (sigmoid output for 2 classes, softmax otherwise)."""
    import keras

    if num_classes == 2:
        return [
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(name="auc"),
            keras.metrics.AUC(curve="PR", name="pr_auc"),
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
        ]
    one_hot = _one_hot_metrics()
    return [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        one_hot["AUC"](name="auc"),
        one_hot["AUC"](curve="PR", name="pr_auc"),
        one_hot["Precision"](name="precision"),
        one_hot["Recall"](name="recall"),
    ]


_ONE_HOT: dict[str, type] = {}


def _one_hot_metrics() -> dict[str, type]:
    """AUC/Precision/Recall taking integer labels against softmax outputs (micro-averaged).

    Keras' versions expect one-hot labels; these one-hot the integer labels first so every model
    trains and evaluates on the same integer ``y``. Registered so saved models load after
    ``import spaces``.
    """
    if _ONE_HOT:
        return _ONE_HOT
    import keras

    for base in (keras.metrics.AUC, keras.metrics.Precision, keras.metrics.Recall):

        class OneHot(base):  # type: ignore[misc, valid-type]
            def update_state(self, y_true, y_pred, sample_weight=None):
                depth = keras.ops.shape(y_pred)[-1]
                labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
                return super().update_state(keras.ops.one_hot(labels, depth), y_pred,
                                            sample_weight=None)

        OneHot.__name__ = OneHot.__qualname__ = f"OneHot{base.__name__}"
        _ONE_HOT[base.__name__] = keras.saving.register_keras_serializable("spaces")(OneHot)
    return _ONE_HOT
