"""A trial's models rebuilt as the search built them: its hyperparameters and hypermodel.

Fold models are rebuilt by :func:`fold_hypermodel` with the search's graph (a transfer backbone
keeps ImageNet's, imagenet-only layers included) and load their own weights, so an export
scores films exactly as its fold models did (tests/results/test_export_parity.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from results.model_io import read_json


def fold_hypermodel(family: str, cfg: dict[str, Any], input_shape: tuple[int, ...],
                    y_pool: np.ndarray, num_classes: int) -> Any:
    """The hypermodel that rebuilds a trial's fold models for export.

    The search's graph without augmentation (its layers are random and hold no weights) and
    without reading pretrained weights: each fold model loads its own ``fold<k>.weights.h5``.
    A transfer backbone keeps ImageNet's graph all the same (spaces/backbones.py), so the
    export computes what the fold model computed (tests/results/test_export_parity.py).
    """
    hm = build_hypermodel(family, cfg, input_shape, y_pool, num_classes)
    hm.with_augmentation = False  # exports carry no random layers
    hm.load_pretrained = False
    return hm


def trial_hyperparameters(record: dict[str, Any]) -> Any:
    """The trial's ``kt.HyperParameters``: from KerasTuner's trial.json, else from cv.json."""
    import keras_tuner as kt

    trial_json = Path(record["path"]) / "trial.json"
    if trial_json.is_file():
        state = read_json(trial_json)
        try:
            return kt.HyperParameters.from_config(state["hyperparameters"])
        except Exception:  # noqa: BLE001 - fall back to the plain values below
            pass
    hp = kt.HyperParameters()
    # Pre-set values win over the defaults when build() registers each hyperparameter.
    hp.values.update(record.get("hyperparameters") or {})
    return hp


def build_hypermodel(family: str, cfg: dict[str, Any], input_shape: tuple[int, ...],
                y_fit: np.ndarray, num_classes: int) -> Any:
    """The family's hypermodel as the search built it (a transfer family's with its weights
    and the search's epoch horizon, which fixes its fine-tuning stages)."""
    import spaces

    space = cfg.get("space")
    space_cfg = (spaces.SpaceConfig.from_dict(space) if isinstance(space, dict)
                 and family in space else spaces.load_space(cfg.get("space_file")))
    counts = np.bincount(y_fit, minlength=num_classes).tolist()
    extra: dict[str, Any] = {}
    if family == "transfer":
        from spaces.transfer import resolve_weights

        extra["weights"] = resolve_weights(cfg.get("weights"))
        if cfg.get("max_epochs"):
            extra["max_epochs"] = int(cfg["max_epochs"])
    return spaces.HYPERMODELS[family](
        input_shape=input_shape, num_classes=num_classes,
        class_counts=counts if min(counts) > 0 else None, space=space_cfg,
        max_params=int(cfg.get("max_params")
                       or spaces.budget.default_max_params(int(cfg.get("image_size") or 64))),
        **extra)


def without_augmentation(hypermodel: Any, hp: Any, model: Any) -> Any:
    """The same model without its augmentation layers (they hold no weights), for export."""
    if not any(layer.name.startswith("augmentation") for layer in model.layers):
        return model
    hypermodel.with_augmentation = False
    try:
        plain = hypermodel.build(hp)
    finally:
        hypermodel.with_augmentation = True
    for layer in plain.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return plain
