"""One fold of one trial: fresh model, seeded, early stopping, atomic save of its results.

A fold is finished when ``fold<k>.json`` exists; it is written after ``fold<k>.weights.h5``,
both atomically, so its presence means both are complete. ``fits.jsonl`` in the family folder
logs a ``start`` and an ``end`` event per fold fit: the resume tests use it to prove that no
finished fold is ever trained again.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from search.fit import failures, probes
from search.fit.diagnosis import diagnose
from search.fit.memory import build_optimizer, fit_scope
from search.runtime import failpoints, signals
from search.runtime.signals import critical
from search.store import oof
from search.store.files import disk_full_error, now_iso, read_json, write_json_atomic

FITS_LOG = "fits.jsonl"


def fold_json(trial_dir: Path, fold: int) -> Path:
    """Path of a fold's record."""
    return Path(trial_dir) / f"fold{fold}.json"


def fold_weights(trial_dir: Path, fold: int) -> Path:
    """Path of a fold's best weights."""
    return Path(trial_dir) / f"fold{fold}.weights.h5"


def pruned_fold_json(trial_dir: Path, fold: int) -> Path:
    """Where the curve of a fold stopped before its end is kept (the record of a ladder rung or
    a cost stop inside the fold; TensorBoard and ``results`` read it)."""
    return Path(trial_dir) / f"pruned_fold{fold}.json"


def suspended_fold_json(trial_dir: Path, fold: int) -> Path:
    """Where a fold suspended at a ladder rung keeps its curve so far (search.schedule.ladder)."""
    return Path(trial_dir) / f"suspended_fold{fold}.json"


def suspended_fold_weights(trial_dir: Path, fold: int) -> Path:
    """A suspended fold's weights and optimizer state at the rung (it continues from them)."""
    return Path(trial_dir) / f"suspended_fold{fold}.weights.h5"


def _record_with_weights(record_path: Path, weights_path: Path) -> dict[str, Any] | None:
    """The record at ``record_path`` when it and its weights are both on disk, else None."""
    record = read_json(record_path)
    return record if record is not None and weights_path.exists() else None


def load_suspended_fold(trial_dir: Path, fold: int) -> dict[str, Any] | None:
    """The suspended fold's record if its state is whole on disk, else None."""
    return _record_with_weights(suspended_fold_json(trial_dir, fold),
                                suspended_fold_weights(trial_dir, fold))


def drop_suspended_fold(trial_dir: Path, fold: int) -> None:
    """Removes a suspended fold's state once the fold has gone past it (finished or pruned)."""
    suspended_fold_json(trial_dir, fold).unlink(missing_ok=True)
    suspended_fold_weights(trial_dir, fold).unlink(missing_ok=True)


def load_finished_fold(trial_dir: Path, fold: int) -> dict[str, Any] | None:
    """The fold's record if the fold finished (record and weights on disk), else None."""
    return _record_with_weights(fold_json(trial_dir, fold), fold_weights(trial_dir, fold))


def check_free_space(path: Path, n_params: int) -> None:
    """Refuses to save weights that cannot fit on the disk.

    h5py can take the whole process down (a segfault, exit 139) instead of raising when the
    disk fills in the middle of a write, so the room is checked first: the weights, the
    optimizer's slots beside them (up to two per weight), and 1 MiB for the JSON records.

    Raises:
        DiskFullError: not enough free space, naming the file and the fix.
    """
    need = int(n_params) * 4 * 3 + (1 << 20)
    try:
        free = shutil.disk_usage(Path(path).parent).free
    except OSError:
        return  # cannot tell: let the write itself report
    if free < need:
        raise disk_full_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))


def fold_seed(seed: int, fold: int) -> int:
    """Per-fold seed: same --seed, same fold -> same initial weights and batch order."""
    # +1 so no fold of any seed maps to 0 (seed 0, fold 0 would otherwise collide with fold 1).
    return (seed * 1000 + fold + 1) % (2**31 - 1) or 1


def log_fit_event(family_dir: Path, trial_id: str, fold: int, event: str) -> None:
    """Appends one ``start``/``end`` event to ``fits.jsonl`` (append is atomic per line)."""
    line = json.dumps({"trial_id": trial_id, "fold": fold, "event": event, "time": now_iso(),
                       "pid": os.getpid()})
    with open(Path(family_dir) / FITS_LOG, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def _better(a: float, b: float, direction: str) -> bool:
    """True when ``a`` strictly beats ``b`` in the objective's direction."""
    return a > b if direction == "max" else a < b


def best_index(values: list[float], direction: str) -> int:
    """Index of the best epoch (first one on ties), as EarlyStopping restores it."""
    arr = np.asarray(values, dtype=float)
    arr = np.where(np.isfinite(arr), arr, -np.inf if direction == "max" else np.inf)
    return int(np.argmax(arr) if direction == "max" else np.argmin(arr))


def _save_weights(model, path: Path, n_params: int) -> None:
    """Writes ``model``'s weights (and optimizer state) to ``path`` atomically."""
    tmp = Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp.weights.h5")
    check_free_space(path, n_params)
    try:
        model.save_weights(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a half weights file behind
        raise


class _Snapshot:
    """The weights and optimizer state at the epoch a trial is suspended: early stopping would
    restore its best weights when the fit ends, and the fold must continue from the rung."""

    def __init__(self):
        self.weights: list[np.ndarray] | None = None
        self.slots: list[np.ndarray] | None = None

    def take(self, model) -> None:
        self.weights = model.get_weights()
        optimizer = getattr(model, "optimizer", None)
        self.slots = [np.array(v) for v in getattr(optimizer, "variables", [])]

    def put(self, model) -> None:
        if self.weights is None:
            return
        model.set_weights(self.weights)
        for var, value in zip(getattr(model.optimizer, "variables", []), self.slots or []):
            var.assign(value)


def _save_suspended_fold(judge, model, snapshot: _Snapshot, hist: dict[str, list[float]], *,
                         fold: int, trial_dir: Path, family_dir: Path, trial_id: str,
                         initial_epoch: int, fit_seconds: float, n_params: int,
                         seed: int) -> None:
    """Keeps a fold the ladder suspended at a rung (its weights and optimizer state there, and
    its curve so far) and raises TrialStopped; the fold continues from them when resumed."""
    from search.schedule.fold_judge import TrialStopped

    reason, rule, epoch, measured = judge.stop
    snapshot.put(model)
    record = {"fold": fold, "history": hist, "initial_epoch": initial_epoch,
              "epochs_trained": len(next(iter(hist.values()), [])), "stopped_at_epoch": epoch,
              "rule": rule, "reason": reason, "best": dict(measured or {}),
              "rung": judge.suspended, "fit_seconds": round(fit_seconds, 4),
              "n_params": n_params, "seed": seed}
    with critical():
        _save_weights(model, suspended_fold_weights(trial_dir, fold), n_params)
        write_json_atomic(suspended_fold_json(trial_dir, fold), record)
        log_fit_event(family_dir, trial_id, fold, "end")
    raise TrialStopped(reason, rule, record)


def _merged(before: dict[str, list[float]], after: dict[str, list[float]]) -> dict[str, list[float]]:
    """A suspended fold's curve before the rung, then the continued fit's."""
    return {k: list(before.get(k, [])) + list(after.get(k, [])) for k in {**before, **after}}


def _save_stopped_fold(judge, model, hist: dict[str, list[float]], best: dict[str, float], *,
                       fold: int, trial_dir: Path, family_dir: Path, trial_id: str,
                       x_va: np.ndarray, y_va: np.ndarray, probe, initial_epoch: int,
                       fit_seconds: float, n_params: int) -> None:
    """Saves a fold the judge stopped (``pruned_fold<k>.json``, its partial curve) and raises
    TrialStopped. No weights: a stopped fold is never exported or continued."""
    from search.schedule.fold_judge import TrialStopped

    reason, rule, epoch, measured = judge.stop
    if measured:
        # Stopped at a ladder rung: the objective measured there is the trial's score.
        best.update(measured)
    elif probe is not None:
        # The objective may be a probe: measure it on the weights the fold stopped with, so the
        # record holds a score of the same kind as the other trials'.
        best.update(probes.probe_scores(model, x_va, y_va, *probe))
    record = {"fold": fold, "history": hist, "initial_epoch": initial_epoch,
              "epochs_trained": len(next(iter(hist.values()), [])), "stopped_at_epoch": epoch,
              "rule": rule, "reason": reason, "best": best,
              "fit_seconds": round(fit_seconds, 4), "n_params": n_params}
    with critical():
        write_json_atomic(pruned_fold_json(trial_dir, fold), record)
        log_fit_event(family_dir, trial_id, fold, "end")
    raise TrialStopped(reason, rule, record)


def _rung_measure(objective: str, x_va: np.ndarray, y_va: np.ndarray, probe):
    """How a ladder rung measures the objective on the current weights (search.schedule.fold_judge):
    the probe for a probe objective, else the epoch's logged metric."""

    def measure(model, logs: dict) -> dict[str, float]:
        if objective in probes.PROBE_METRICS and probe is not None:
            return probes.objective_scores(model, objective, x_va, y_va, *probe)
        value = logs.get(probes.epoch_metric(objective))
        return {} if value is None else {objective: float(value)}

    return measure


# A fresh session per fold; what the fit leaves in the backend is released after it, also
# when it fails, so the next fold starts from the same memory.
@fit_scope()
def fit_fold(*, hypermodel, hp, trial_id: str, trial_dir: Path, family_dir: Path, fold: int,
             x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray,
             epochs: int, initial_epoch: int, carry_from: Path | None, objective: str,
             direction: str, patience: int, seed: int, extra_callbacks: list | None = None,
             probe: tuple[dict[str, np.ndarray], np.ndarray | None] | None = None,
             budget=None, judge=None) -> dict[str, Any]:
    """Trains one fold and saves ``fold<k>.weights.h5`` then ``fold<k>.json``.

    Args:
        hypermodel: The spaces HyperModel (``build`` + ``fit``).
        hp: The trial's HyperParameters.
        carry_from: A previous Hyperband round's ``fold<k>.weights.h5`` to continue from.
        objective: The trial objective. A probe objective (``search.fit.probes``) is measured once,
            at the restored epoch; epochs are then chosen on ``val_auc``.
        probe: ``FoldData.probe_data(fold)``: the shifted validation images and batches; the
            probe AUCs join the fold's ``best`` metrics. None: no probes.
        epochs: Train up to this absolute epoch (Hyperband's ``tuner/epochs``).
        initial_epoch: Absolute epoch to start from (Hyperband's ``tuner/initial_epoch``).
        extra_callbacks: Progress bar and test hooks.
        budget: The family's ``search.schedule.budget.TimeBudget``: stops at the end of the epoch
        that
            spends it, and the fold is discarded (BudgetExhausted). None: no budget.
        judge: The trial's ``search.schedule.fold_judge.TrialJudge`` (ladder rungs, the cost rule),
        or None.
            When it stops the fold, the partial curve is saved to ``pruned_fold<k>.json`` and
            ``TrialStopped`` is raised.

    A fold the ladder suspended at a rung (``suspended_fold<k>.json`` and its weights, kept by
    an earlier fit) continues from there: the rung's weights and optimizer state, the epochs
    already trained as ``initial_epoch``, and its curve so far before this fit's. Its best
    epoch is chosen among the continued epochs (the weights early stopping restores).

    A continued Hyperband round starts from the previous round's restored weights, which are
    its ``best_epoch`` (not ``tuner/initial_epoch`` when that round stopped early or restored
    an earlier epoch). The round trains ``epochs - initial_epoch`` more epochs counted from
    there, so ``best_epoch`` (retrain length) and the learning-rate schedule's offset count the
    epochs the weights really had.

    Returns:
        The fold record (also written to ``fold<k>.json``), plus ``n_params``.

    Raises:
        keras_tuner.errors.FailedTrialError: over-budget model, NaN loss, missing carry weights.
        search.schedule.fold_judge.TrialStopped: the judge stopped the fold (pruned at a rung,
        cost, or suspended at a rung: its state is then kept to continue from).
    """
    full_objective, objective = objective, probes.epoch_metric(objective)
    fseed = fold_seed(seed, fold)
    keras.utils.set_random_seed(fseed)
    model = hypermodel.build(hp)
    n_params = int(model.count_params())
    start_eval = None
    previous = read_json(Path(carry_from).with_name(f"fold{fold}.json")) if carry_from else None
    round_epochs = epochs - initial_epoch
    if previous and previous.get("best_epoch"):
        initial_epoch = int(previous["best_epoch"])
        epochs = initial_epoch + round_epochs
    if carry_from is not None:
        if not Path(carry_from).exists():
            raise failures.FailedTrialError(
                f"hyperband carry-over: {carry_from} is missing, cannot continue the round")
        with warnings.catch_warnings():
            # The file also holds the optimizer's slots; a fresh optimizer has none yet, so
            # Keras skips them (weights carry over, optimizer state restarts) and warns.
            warnings.simplefilter("ignore", UserWarning)
            model.load_weights(str(carry_from))
        # The loss the continued round starts from; equals the previous round's best val_loss.
        start_eval = {f"val_{k}": float(v) for k, v in model.evaluate(
            x_va.astype("float32"), y_va, batch_size=256, verbose=0, return_dict=True).items()}

    # After the carry-over load, so the optimizer state still restarts with each round.
    build_optimizer(model)
    # A fold suspended at a ladder rung continues from the rung: its weights, its optimizer
    # state (loaded into the built optimizer) and its curve so far.
    suspended = load_suspended_fold(trial_dir, fold) if carry_from is None else None
    before: dict[str, list[float]] = {}
    done_epochs = 0
    if suspended is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model.load_weights(str(suspended_fold_weights(trial_dir, fold)))
        before = {k: [float(v) for v in vals] for k, vals in suspended["history"].items()}
        done_epochs = int(suspended["epochs_trained"])
        initial_epoch += done_epochs
    snapshot = _Snapshot()
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=objective, mode=direction, patience=patience,
                                      restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
        signals.StopOnSignal(),
        *(extra_callbacks or []),
    ]
    if judge is not None:
        callbacks.append(judge.callback(fold, round_epochs,
                                        _rung_measure(full_objective, x_va, y_va, probe),
                                        start=done_epochs, snapshot=snapshot.take))
    if budget is not None:
        callbacks.append(budget.callback())
    if failpoints.active():
        callbacks.append(failpoints.KillAtEpoch(trial_id, fold))
    log_fit_event(family_dir, trial_id, fold, "start")
    t0 = time.perf_counter()
    history = hypermodel.fit(hp, model, x_tr, y_tr, validation_data=(x_va, y_va),
                             epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                             verbose=0, seed=fseed)
    fit_seconds = time.perf_counter() - t0
    signals.check()  # a stop cut this fit short: discard the fold, keep the earlier ones
    if budget is not None:
        budget.check_after_fit()
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    failures.check_finite(hist, fold)
    if objective not in hist:
        raise failures.FailedTrialError(
            f"objective {objective} not in the fit history (has {sorted(hist)})")
    # Of this fit's epochs only: the weights early stopping restored are among them.
    i = best_index(hist[objective], direction)
    # Metrics at the restored epoch; the LR scheduler logs learning_rate, not a metric.
    best = {k: v[i] for k, v in hist.items() if k not in ("learning_rate", "lr")}
    best_epoch = initial_epoch + i + 1
    first_epoch = initial_epoch - done_epochs
    fit_seconds += float((suspended or {}).get("fit_seconds") or 0.0)
    hist = _merged(before, hist)
    if judge is not None and judge.stop is not None and judge.stop[1] == "suspend":
        _save_suspended_fold(judge, model, snapshot, hist, fold=fold, trial_dir=trial_dir,
                             family_dir=family_dir, trial_id=trial_id,
                             initial_epoch=first_epoch, fit_seconds=fit_seconds,
                             n_params=n_params, seed=fseed)
    if judge is not None and judge.stop is not None:
        drop_suspended_fold(trial_dir, fold)
        _save_stopped_fold(judge, model, hist, best, fold=fold, trial_dir=trial_dir,
                           family_dir=family_dir, trial_id=trial_id, x_va=x_va, y_va=y_va,
                           probe=probe, initial_epoch=first_epoch, fit_seconds=fit_seconds,
                           n_params=n_params)
    kept_carried = False
    if previous and start_eval and objective in start_eval and not _better(
            best[objective], start_eval[objective], direction):
        # No epoch of this round beat the weights it started from: a fresh EarlyStopping would
        # still restore this round's best, which is worse. Keep the carried weights instead.
        model.load_weights(str(carry_from))
        best, best_epoch, kept_carried = dict(previous["best"]), previous["best_epoch"], True
    probe_seconds = None
    oof_scores: dict[str, np.ndarray] = {}
    if probe is not None:
        t0 = time.perf_counter()
        best.update(probes.probe_scores(model, x_va, y_va, *probe, keep=oof_scores))
        probe_seconds = round(time.perf_counter() - t0, 4)
    record = {
        "fold": fold, "history": hist,
        # 1-based absolute epoch count of the restored weights (carried epochs included);
        # when the carried weights were kept it points into the previous round's history.
        "best_epoch": best_epoch,
        "initial_epoch": first_epoch, "epochs_trained": len(hist[objective]),
        # Epochs trained before the fold was suspended at a ladder rung (0: never suspended).
        "resumed_at_epoch": done_epochs or None,
        "fit_seconds": round(fit_seconds, 4), "probe_seconds": probe_seconds,
        "best": best, "kept_carried_weights": kept_carried,
        "diagnosis": diagnose(hist), "seed": fseed, "n_params": n_params,
        "carried_from": str(Path(carry_from).parent.name) if carry_from else None,
        "start_eval": start_eval,
    }
    with critical():
        _save_weights(model, fold_weights(trial_dir, fold), n_params)
        if oof_scores:  # before fold<k>.json: a finished fold always has its OOF scores
            oof.save_fold_oof(trial_dir, fold, x_va=x_va, y_va=y_va, scores=oof_scores,
                              batches=probe[1])
        write_json_atomic(fold_json(trial_dir, fold), record)
        drop_suspended_fold(trial_dir, fold)
        log_fit_event(family_dir, trial_id, fold, "end")
    del model, history
    return record
