"""What a search checks and says before any training starts.

The engine (``search.engine``) calls these after validating the options and before the lock,
the data or a model: the per-family objective of ``--objective auto``, a probe objective the
data cannot give, the transfer family's weights on an offline machine, the tuner's plan (the
line the user reads first), and afterwards a search that every draw refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from search.config import AUTO_OBJECTIVE, SearchConfig, objective_direction, resolve_objective
from search.errors import SearchError
from search.watch.progress import Progress


def resolve_auto_objectives(config: SearchConfig, n_classes: int,
                             saved: dict[str, Any] | None) -> None:
    """``--objective auto``: each family's objective (search.config.AUTO_OBJECTIVES).

    ``objective`` is the first family's (run.json's single name, which the resume check
    compares). A resumed run keeps the per-family objectives it recorded (a newer default must
    not change what its trials were scored on); one recorded before per-family objectives
    resolves ``auto`` as it did then (the CNN's objective for every family).
    """
    saved_cfg = (saved or {}).get("config") or {}
    if saved is not None and not config.overwrite and saved_cfg.get("objective"):
        recorded = dict(saved_cfg.get("objectives") or {})
        config.objectives = recorded or None
        config.objective = (str(saved_cfg["objective"]) if recorded
                            else resolve_objective(AUTO_OBJECTIVE, n_classes))
    else:
        config.objectives = {f: resolve_objective(AUTO_OBJECTIVE, n_classes, f)
                             for f in config.families}
        config.objective = config.objectives[config.families[0]]
    config.direction = objective_direction(config.objective)


def check_probe_objective(objective: str, ds, idx: np.ndarray,
                           folds: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Refuses a probe objective the data cannot give, before any training starts.

    ``val_auc_batch`` is measured on each fold's validation images, so every fold must have a
    class with two acquisition batches of ``MIN_BATCH_IMAGES`` (without one, the fold has no
    objective and KerasTuner fails every trial).
    """
    import data_pipeline
    from spaces.metrics import PROBE_OBJECTIVES

    if objective not in PROBE_OBJECTIVES:
        return
    if len(ds.class_names) != 2:
        raise SearchError(
            f"--objective {objective} is a shortcut probe, which scores one positive class; "
            f"the data in {ds.root} has {len(ds.class_names)} classes ({ds.class_names}). Use "
            "--objective val_auc, or point --data at a two-class folder.")
    if objective == "val_auc_batch":
        from search.fit.probes import MIN_BATCH_IMAGES, batch_counts, batch_measurable

        names = np.asarray([data_pipeline.acquisition_batch(ds.paths[i]) for i in idx])
        y = ds.y[idx]
        if not batch_measurable(y, names):
            raise SearchError(
                f"--objective val_auc_batch needs a class whose files come from two acquisition "
                f"batches (names IM-* and NORMAL2-IM-*, at least {MIN_BATCH_IMAGES} images "
                f"each in every fold); the files in {ds.root} do not mark them. Use "
                "--objective val_auc_geometric or val_auc_robust instead.")
        short = [k for k, (_, va) in enumerate(folds) if not batch_measurable(y[va], names[va])]
        if short:
            k = short[0]
            counts = "; ".join(f"{ds.class_names[c]}: " + ", ".join(
                f"{b or 'unmarked'} {n}" for b, n in sorted(per.items()))
                for c, per in batch_counts(y[folds[k][1]], names[folds[k][1]]).items() if per)
            raise SearchError(
                f"--objective val_auc_batch needs, in every fold's validation images, a class "
                f"with two acquisition batches (IM-* and NORMAL2-IM-*) of at least "
                f"{MIN_BATCH_IMAGES} images each; with --folds {len(folds)}, "
                f"{len(short)} fold(s) fall short (fold {k + 1}: {counts}). Use fewer --folds, "
                "or --objective val_auc_geometric or val_auc_robust instead.")


def weights_text(weights: str | None) -> str:
    """The progress line naming where the transfer family's backbone starts from."""
    if weights == "none":
        return ("weights none: the backbone starts from random weights and trains from "
                "scratch with the head (no frozen stage); expect it to need far more epochs "
                "and data than a pretrained one")
    if weights == "imagenet":
        return ("weights imagenet (Keras' cache): stage 1 trains the head on the frozen "
                "backbone, stage 2 fine-tunes its top fine_tune_blocks blocks")
    return (f"weights from {weights}: stage 1 trains the head on the frozen backbone, stage 2 "
            "fine-tunes its top fine_tune_blocks blocks")


def check_transfer_weights(config: SearchConfig, space) -> None:
    """Builds each backbone the budget can draw once with the weights asked for, so an offline
    machine without the cached files is refused before any data is loaded or trained.

    Backbones over ``--max-params`` / ``--max-gflops`` in every configuration are never drawn,
    so their files are not asked for (an offline box with only MobileNetV3Small cached runs
    the CPU default)."""
    if "transfer" not in config.families:
        return
    from spaces.backbones import check_weights
    from spaces.transfer import TransferHyperModel
    from spaces.transfer import resolve_weights as keras_weights

    weights = keras_weights(config.weights)
    if weights is None:
        return
    budget = TransferHyperModel((config.image_size, config.image_size, 1), space=space,
                                max_params=int(config.max_params),
                                max_gflops=config.max_gflops or None, weights=None)
    keys = budget.drawable_backbones()
    if keys:  # none drawable: the oracle refuses the search with the budget's own message
        check_weights(weights, keys)


def check_refused_out(family: str, oracle, config: SearchConfig) -> None:
    """Raises SearchError when the oracle stopped because every draw was over budget."""
    from search.tuners.oracles import MAX_REFUSED_DRAWS

    if not getattr(oracle, "refused_out", False):
        return
    done = len(oracle.trials_ended())
    raise SearchError(
        f"The {family} search stopped after {done} trial(s): {MAX_REFUSED_DRAWS} configurations "
        f"drawn in a row were over budget (--max-params {config.max_params:,}, --max-gflops "
        f"{config.max_gflops or 'off'}), for example: {oracle.last_refusal} Raise the limit, "
        "or narrow the space with --space (fewer layers, smaller widths, a global_average head).")


def describe_tuner(family: str, config: SearchConfig, progress: Progress) -> None:
    """Hyperband's bracket (and a warning when it cannot promote); Bayesian's and TPE's random
    start."""
    from search.tuners import oracles

    if config.tuner == "hyperband":
        args = (config.max_trials, config.min_epochs, config.max_epochs)
        plan = oracles.hyperband_plan(*args)
        progress.line(f"[{family}] hyperband: {oracles.describe_plan(plan)}")
        warning = oracles.plan_warning(*args)
        if warning:
            progress.line(f"[{family}] warning: {warning}")
    elif config.tuner in ("bayesian", "tpe"):
        n = oracles.startup_trials(config.max_trials)
        model = "the Gaussian process" if config.tuner == "bayesian" else "Optuna's TPE"
        if config.max_trials <= n:
            # The random start covers the whole cap: the model would never propose.
            progress.line(f"[{family}] {config.tuner}: all {config.max_trials} trial(s) are "
                          "random (the defaults first)")
            progress.line(f"[{family}] warning: --max-trials {config.max_trials} is within the "
                          f"{n} random start-up trial(s), so {model} never proposes: this is a "
                          f"random search. Use --max-trials {n + 1} or more for {model} to "
                          "propose, or --tuner random to say what it is.")
        else:
            progress.line(f"[{family}] {config.tuner}: {n} random trial(s) (the defaults "
                          f"first), then {model} proposes")
    if config.ladder:
        from search.schedule import ladder

        rungs = [r for r in ladder.rungs(config.max_epochs, first=config.first_rung)
                 if family != "transfer" or r.epoch is None]  # two stages: fold ends only
        rounds = " (each Hyperband round climbs its own)" if config.tuner == "hyperband" else ""
        progress.line(f"[{family}] ladder: {ladder.describe(rungs, config.ladder_brackets)}"
                      f"{rounds}")
