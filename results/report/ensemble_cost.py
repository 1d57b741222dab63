"""What a 5-member ensemble of an exported configuration costs at prediction time (issue 34).

``--ensemble select`` may export up to ``--ensemble-max-members`` configurations, each the
average of its k fold models: 5 x k networks behind one output. The report measures, per run
and on the machine that builds it, the size and prediction time of such an ensemble of the
exported family's rank-1 configuration at 64 px and 224 px: the members are that
configuration built at each size with fresh weights (the time of a forward pass does not depend
on the weights' values), averaged as the export averages them
(:func:`results.ensemble.weighted_average_models`). Ensembles over ``MAX_TIMED_PARAMS``
parameters are sized but not timed (building them would hold gigabytes of memory).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import numpy as np

SIZES = (64, 224)
N_MEMBERS = 5
N_IMAGES = 16
MAX_TIMED_PARAMS = 60_000_000


def machine() -> str:
    """The machine the figures come from, in words."""
    import keras

    return (f"{platform.machine()} {platform.processor() or ''}".strip()
            + f", {os.cpu_count()} logical CPU(s), Keras backend {keras.backend.backend()}")


def _member_builder(family: str, run: dict[str, Any], hp_values: dict[str, Any],
                    size: int, channels: int):
    """``(build() -> one fold model, params of one)`` for the configuration at ``size`` px."""
    import keras_tuner as kt

    from results.rebuild import build_hypermodel

    cfg = dict(run.get("config") or {}, max_params=10**12, weights="none")
    hm = build_hypermodel(family, cfg, (size, size, channels), np.array([0, 1]), 2)
    hm.with_augmentation = False
    if hasattr(hm, "load_pretrained"):
        hm.load_pretrained = False
    hp = kt.HyperParameters()
    hp.values.update(hp_values)
    return (lambda: hm.build(hp)), int(hm.count_params(hp))


def ensemble_cost(family: str, run: dict[str, Any], hp_values: dict[str, Any], *,
                  n_folds: int, timer: Callable[..., dict[str, float]], channels: int = 1,
                  sizes: tuple[int, ...] = SIZES, n_members: int = N_MEMBERS
                  ) -> list[dict[str, Any]]:
    """Size and prediction time of an ``n_members`` x ``n_folds`` ensemble at each size.

    Args:
        timer: ``latency_ms(model, x, batch_size=, n_single=)`` of the report
            (``results.report.compare``), so both tables time the same way.

    Returns:
        One row per size: ``{"family", "image_size", "n_models", "n_params", "megabytes"
        (float32 weights), "ms_batch_1", "ms_batched" (None when not timed), "note"}``.
    """
    import gc

    from results.ensemble import weighted_average_models

    rows = []
    for size in sizes:
        row: dict[str, Any] = {"family": family, "image_size": size,
                               "n_models": n_members * n_folds, "ms_batch_1": None,
                               "ms_batched": None, "note": ""}
        try:
            build, one = _member_builder(family, run, hp_values, size, channels)
        except Exception as err:  # noqa: BLE001 - a size the configuration cannot take
            rows.append(dict(row, n_params=None, megabytes=None,
                             note=f"cannot be built at {size} px ({err})"))
            continue
        total = one * n_members * n_folds
        row.update(n_params=total, megabytes=total * 4 / 2**20)
        if total > MAX_TIMED_PARAMS:
            row["note"] = f"not timed: over {MAX_TIMED_PARAMS:,} parameters"
            rows.append(row)
            continue
        import keras

        groups = []
        for i in range(n_members):
            group = []
            for k in range(n_folds):
                m = build()
                group.append(keras.Model(m.inputs, m.outputs[0], name=f"m{i}_fold{k}"))
            groups.append(group)
        model = weighted_average_models(groups, [1.0 / n_members] * n_members,
                                        (size, size, channels), name=f"{family}_cost_{size}")
        x = np.random.default_rng(0).integers(0, 256, (N_IMAGES, size, size, channels),
                                              dtype=np.uint8)
        t = timer(model, x, batch_size=N_IMAGES, n_single=4)
        row.update(ms_batch_1=t["batch_1"], ms_batched=t["batched"])
        rows.append(row)
        del model, groups
        gc.collect()
    return rows
