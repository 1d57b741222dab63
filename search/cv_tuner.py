"""The k-fold tuner: KerasTuner's search loop with cross-validated, resumable trials.

``CVTuner.run_trial`` trains one fresh model per fold (``search.fold_fit``), skips folds that a
previous, interrupted run already finished (KerasTuner retries an interrupted trial under its
id), continues a promoted Hyperband trial from its previous round's weights per fold, and
returns the fold means to the oracle. ``cv.json`` in the trial folder is the service's record
(schema in ARCHITECTURE.md).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import keras_tuner as kt
import numpy as np

from search import (compat, cost, failpoints, failures, fold_fit, kt_files, ladder, signals,
                    tensorboard)
from search.budget import BudgetExhausted, SearchEnded, TimeBudget
from search.fold_judge import TrialJudge, TrialStopped
from search.diagnosis import combine
from search.fold_records import fold_mean_std, oracle_metrics
from search.probes import epoch_metric
from search.progress import EpochBar, Progress
from search.run_folder import disk_full_error, is_disk_full, read_json, write_json_atomic
from search.signals import critical

_HB_KEYS = ("tuner/epochs", "tuner/initial_epoch", "tuner/bracket", "tuner/round",
            "tuner/trial_id")


def _stage(hyperband: dict[str, Any] | None) -> str | None:
    """``round 2, 10 epochs, continues 0003`` for a Hyperband trial; None otherwise."""
    if not hyperband or "round" not in hyperband:
        return None
    text = f"round {int(hyperband['round']) + 1}, {hyperband.get('epochs')} epochs"
    if hyperband.get("trial_id"):
        text += f", continues {hyperband['trial_id']}"
    return text


class FoldData:
    """The training part of the data and its folds (indices into ``x``).

    Args:
        x: uint8 images ``(N, S, S, C)`` (test images already removed).
        y: int labels ``(N,)``.
        folds: ``[(train_idx, val_idx), ...]`` from ``data_pipeline.make_folds``.
        batches: acquisition batch of each image (``data_pipeline.acquisition_batch``) for the
            per-batch probe, or None.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                 batches: np.ndarray | None = None):
        self.x, self.y, self.folds, self.batches = x, y, folds, batches
        self._shifted: dict[int, dict[str, np.ndarray]] = {}

    @property
    def probes_enabled(self) -> bool:
        """Probes score one sigmoid output: two-class data only."""
        return int(self.y.max(initial=0)) <= 1

    def probe_data(self, k: int) -> tuple[dict[str, np.ndarray], np.ndarray | None] | None:
        """Fold ``k``'s shifted validation images (built once, reused by every trial) and the
        acquisition batches of its validation images; None when probes do not apply."""
        if not self.probes_enabled:
            return None
        if k not in self._shifted:
            from data_pipeline import shifted_sets

            self._shifted[k] = shifted_sets(self.x[self.folds[k][1]])
        batches = None if self.batches is None else self.batches[self.folds[k][1]]
        return self._shifted[k], batches


class CVTuner(kt.Tuner):
    """A KerasTuner ``Tuner`` whose trials are k-fold cross-validated and resumable.

    Args:
        oracle: A capped oracle from :func:`search.oracles.make_oracle`.
        hypermodel: The family's HyperModel from ``spaces``.
        data: The folds to train on.
        family: ``cnn`` or ``ann`` (also the project name inside the run folder).
        run_dir: The run folder (the project is ``run_dir/family``).
        max_epochs: Epochs per fold for non-Hyperband tuners.
        patience: Early-stopping patience.
        seed: The user's ``--seed`` (per-fold seeds derive from it).
        progress: Progress writer.
        budget: Time budget checked before each fold.
        overwrite: Passed to KerasTuner (start the project afresh).
        distribution_strategy: A ``tf.distribute`` strategy for multi-GPU trials under
            TensorFlow (``search.devices``), or None.
        tensorboard_dir: Where to write TensorBoard event files (``search.tensorboard``), or
            None.
        first_rung: Epochs of the ladder's first rung (search.ladder); None: no ladder
            (``--no-ladder``), every trial trains every fold.
        ladder_brackets: Brackets of the ladder (``--ladder-brackets``).
        max_trial_share: With a time budget, the share of it a trial may spend before a ladder
            rung compares it with another configuration (search.cost).
    """

    def __init__(self, oracle, hypermodel, *, data: FoldData, family: str, run_dir: Path,
                 max_epochs: int, patience: int, seed: int, progress: Progress,
                 budget: TimeBudget, overwrite: bool = False, distribution_strategy=None,
                 tensorboard_dir: Path | None = None,
                 first_rung: int | None = ladder.DEFAULT_FIRST_RUNG,
                 ladder_brackets: int = ladder.DEFAULT_BRACKETS,
                 max_trial_share: float = cost.DEFAULT_MAX_TRIAL_SHARE):
        self.data, self.family = data, family
        self.first_rung, self.ladder_brackets = first_rung, ladder_brackets
        self.max_trial_share = max_trial_share
        self.tensorboard_dir = tensorboard_dir
        self.max_epochs, self.patience, self.seed = max_epochs, patience, seed
        self.progress, self.budget = progress, budget
        self.session_statuses: list[str] = []
        self._open_trial: str | None = None  # the trial between on_trial_begin and its end
        compat.quiet_failed_trial_tracebacks()
        kt_files.install_atomic_saves()
        if not overwrite and not compat.reads_chief_oracle():
            # Before KerasTuner reloads the project: a damaged file would end it in a
            # JSONDecodeError. Workers read the chief's oracle, not these files.
            kt_files.repair_project(Path(run_dir) / family, self._warn)
        # distribution_strategy: a tf.distribute strategy (search.devices); KerasTuner keeps
        # it for its multi-worker bookkeeping, the hypermodel builds under its scope.
        super().__init__(oracle=oracle, hypermodel=hypermodel, directory=str(run_dir),
                         project_name=family, overwrite=overwrite,
                         distribution_strategy=distribution_strategy)
        # Over-budget configurations are refused when the oracle draws them (exact counts, no
        # model built), so they never use up --max-trials. The spaces HyperModel owns the
        # limits, also behind a device wrapper (search.devices.ScaledHyperModel).
        inner = getattr(self.hypermodel, "inner", self.hypermodel)
        if hasattr(inner, "refusal"):
            self.oracle.refusal = self._refusal

    def _refusal(self, values: dict[str, Any]) -> str | None:
        hp = self.oracle.hyperparameters.copy()
        hp.values.update(values)
        return getattr(self.hypermodel, "inner", self.hypermodel).refusal(hp)

    def _populate_initial_space(self):
        # KerasTuner builds models with default values here, again and again until every
        # conditional scope has been active once, to discover the hyperparameters. Our
        # HyperModels register every dimension (inactive ones inside their conditional scopes)
        # in declare_hyperparameters, so nothing needs to be built: an over-budget default
        # model cost over a minute (and risked memory) before the first trial.
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    def _warn(self, text: str) -> None:
        """A repair the user must hear of, also with --quiet (stderr then)."""
        self.progress.line(f"[{self.family}] warning: {text}")
        if self.progress.quiet:
            print(f"warning: {text}", file=sys.stderr, flush=True)

    # -- records -------------------------------------------------------------------------------
    @property
    def family_dir(self) -> Path:
        return Path(self.project_dir)

    def trial_dir(self, trial_id: str) -> Path:
        return Path(self.get_trial_dir(trial_id))

    def read_cv(self, trial_id: str) -> dict[str, Any] | None:
        """The trial's cv.json, or None."""
        return read_json(self.trial_dir(trial_id) / "cv.json")

    def _write_cv(self, trial, status: str, folds: list[dict], started: float,
                  reason: str | None = None, n_params: int | None = None,
                  stopped: dict[str, Any] | None = None, censored: bool = False
                  ) -> dict[str, Any]:
        obj = self.oracle.objective
        mean, std = fold_mean_std([f["best"] for f in folds])
        previous = self.read_cv(trial.trial_id) or {}
        record = {
            "trial_id": trial.trial_id, "family": self.family, "status": status,
            # Which process ran it: "tuner0" alone, the worker's id in a distributed search.
            "tuner_id": self.tuner_id,
            "objective": obj.name, "direction": obj.direction, "mean": mean, "std": std,
            "folds": [{"fold": f["fold"], **f["best"], "best_epoch": f["best_epoch"],
                       "epochs_trained": f["epochs_trained"], "initial_epoch": f["initial_epoch"],
                       "fit_seconds": f["fit_seconds"],
                       "probe_seconds": f.get("probe_seconds"), "diagnosis": f["diagnosis"]}
                      for f in folds],
            "n_params": n_params if n_params is not None else previous.get("n_params"),
            # Wall time over all sessions that worked on this trial.
            "duration_s": round(previous.get("_session_base_s", 0.0)
                                + time.monotonic() - started, 3),
            "diagnosis": combine(f["diagnosis"] for f in folds) if folds else None,
            "reason": reason,
            # Stopped by a cost rule (search.cost): the tuners take it as censored, not scored.
            "censored": bool(censored),
            # Stopped inside a fold (ladder rung or cost): where, by which rule, and the partial
            # fold's metrics (the oracle's score when no fold finished).
            "stopped_in_fold": stopped,
            # The rungs it reached (search.ladder): later trials and workers rank against them.
            "ladder": previous.get("ladder"),
            "hyperparameters": {k: v for k, v in trial.hyperparameters.values.items()
                                if not k.startswith("tuner/")},
            "hyperband": {k.split("/")[1]: trial.hyperparameters.values[k] for k in _HB_KEYS
                          if k in trial.hyperparameters.values} or None,
            "_session_base_s": previous.get("_session_base_s", 0.0),
        }
        with critical():
            write_json_atomic(self.trial_dir(trial.trial_id) / "cv.json", record)
        return record

    # -- the trial -----------------------------------------------------------------------------
    def _record_rung(self, trial_id: str, entry: dict[str, Any]) -> None:
        """Writes one ladder rung into the trial's cv.json at once (peers read it from there)."""
        cv = self.read_cv(trial_id) or {}
        ladder_record = cv.get("ladder") or {
            "bracket": ladder.bracket_of(trial_id, self.ladder_brackets), "rungs": []}
        ladder_record["rungs"] = [e for e in ladder_record["rungs"]
                                  if int(e["rung"]) != int(entry["rung"])] + [entry]
        cv["ladder"] = ladder_record
        with critical():
            write_json_atomic(self.trial_dir(trial_id) / "cv.json", cv)

    def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
        """Cross-validates one hyperparameter set; returns the fold means to the oracle."""
        done = self.read_cv(trial.trial_id)
        if done and done.get("status") in ("COMPLETED", "PRUNED"):
            # Killed after cv.json but before the oracle saved: report, do not retrain.
            return self._oracle_metrics(done)
        hp = trial.hyperparameters
        values = hp.values
        epochs = int(values.get("tuner/epochs", self.max_epochs))
        initial_epoch = int(values.get("tuner/initial_epoch", 0))
        past_id = values.get("tuner/trial_id")
        tdir = self.trial_dir(trial.trial_id)
        # Hyperband: the round, as (last epoch, first epoch); a fresh single round at
        # max_epochs is not the continued last round of a bracket (search.ladder.budget_of).
        budget = ((epochs, initial_epoch) if "tuner/epochs" in values else None)
        records = ladder.family_records(self.family_dir)
        if not done or not (done.get("folds") or (done.get("ladder") or {}).get("rungs")):
            # A new configuration: can it still reach its first rung? (search.cost)
            why = cost.search_end_reason(
                left_s=self.budget.remaining_s,
                first_rung_s=ladder.seconds_to_first_rung(records, budget))
            if why:
                raise SearchEnded(why)
        started = time.monotonic()
        if done:  # carry the earlier sessions' time into duration_s
            with critical():
                done["_session_base_s"] = done.get("duration_s", 0.0)
                write_json_atomic(tdir / "cv.json", done)
        folds: list[dict] = []
        n_params = None
        self._write_cv(trial, "RUNNING", folds, started)
        obj = self.oracle.objective
        stopped = None
        judge = self._judge(trial.trial_id, budget, epochs - initial_epoch, records,
                            passed={int(e["rung"]) for e in ((done or {}).get("ladder") or {})
                                    .get("rungs", []) if e.get("promoted")},
                            judged=past_id is not None)
        try:
            for k, (tr, va) in enumerate(self.data.folds):
                record = fold_fit.load_finished_fold(tdir, k)
                if record is None:
                    signals.check()
                    self.budget.check_before_fold()
                    carry = (fold_fit.fold_weights(self.trial_dir(past_id), k)
                             if past_id is not None else None)
                    extra = []
                    if self.tensorboard_dir is not None:
                        extra.append(tensorboard.make_fold_callback(
                            self.tensorboard_dir, self.family, trial.trial_id, k))
                    if self.progress.show_bar:
                        extra.append(EpochBar(self.progress.stream,
                                              f"[{self.family}] trial {trial.trial_id} fold "
                                              f"{k + 1}/{len(self.data.folds)}", epochs,
                                              epoch_metric(self.oracle.objective.name)))
                    record = fold_fit.fit_fold(
                        hypermodel=self.hypermodel, hp=hp, trial_id=trial.trial_id,
                        trial_dir=tdir, family_dir=self.family_dir, fold=k,
                        x_tr=self.data.x[tr], y_tr=self.data.y[tr],
                        x_va=self.data.x[va], y_va=self.data.y[va], epochs=epochs,
                        initial_epoch=initial_epoch, carry_from=carry,
                        objective=self.oracle.objective.name,
                        direction=self.oracle.objective.direction, patience=self.patience,
                        seed=self.seed, extra_callbacks=extra, probe=self.data.probe_data(k),
                        budget=self.budget, judge=judge)
                n_params = record.get("n_params", n_params)
                folds.append(record)
                self._write_cv(trial, "RUNNING", folds, started, n_params=n_params)
                if k < len(self.data.folds) - 1:
                    mean, _ = fold_mean_std([f["best"] for f in folds])
                    why = judge.at_fold_end(k, mean.get(obj.name))
                    if why:
                        stopped = {"fold": k, "epoch": None, "rule": "ladder", "best": None}
                        stop_reason = why
                        break
        except TrialStopped as stop:
            stop_reason, n_params = stop.reason, n_params or stop.record.get("n_params")
            stopped = {"fold": stop.record["fold"], "epoch": stop.record["stopped_at_epoch"],
                       "rule": stop.rule, "best": stop.record["best"]}
        except kt.errors.FatalError:
            raise  # budget spent: the trial stays RUNNING and resumable
        except Exception as exc:  # noqa: BLE001 - any trial error ends this trial only
            if is_disk_full(exc):
                # Not the configuration's fault: stop the search (KerasTuner passes a
                # FatalError on) with the trial RUNNING, so a resume retrains only this fold.
                full = exc if hasattr(exc, "exit_code") else disk_full_error(
                    Path(getattr(exc, "filename", None) or tdir / "fold"), exc)
                raise kt_files.FatalDiskFull(str(full)) from None
            reason = failures.failure_reason(exc)
            self._write_cv(trial, "FAILED", folds, started, reason=reason, n_params=n_params)
            raise kt.errors.FailedTrialError(reason) from exc
        if stopped:
            record = self._write_cv(trial, "PRUNED", folds, started, reason=stop_reason,
                                    n_params=n_params, stopped=stopped,
                                    censored=stopped["rule"] == "cost")
        else:
            record = self._write_cv(trial, "COMPLETED", folds, started, n_params=n_params)
        return self._oracle_metrics(record)

    def _judge(self, trial_id: str, budget: tuple[int, int] | None, round_epochs: int,
               records: list[dict[str, Any]], passed: set[int], judged: bool) -> TrialJudge:
        """The trial's judge (search.fold_judge): the ladder's rungs and the cost rule."""
        return TrialJudge(
            family_dir=self.family_dir, trial_id=trial_id, objective=self.oracle.objective.name,
            direction=self.oracle.objective.direction, budget_epochs=budget,
            round_epochs=round_epochs, first_rung=self.first_rung,
            brackets=self.ladder_brackets, time_budget=self.budget,
            max_share=self.max_trial_share,
            has_peers=any(str(r.get("trial_id")) != str(trial_id)
                          and r.get("status") in ("COMPLETED", "PRUNED", "FAILED")
                          for r in records),
            passed=passed, judged=judged,
            # A two-stage fit (spaces.transfer: head, then fine-tuning) is judged from the end
            # of its first fold, when every configuration has had both stages.
            in_fold=not hasattr(getattr(self.hypermodel, "inner", self.hypermodel),
                                "start_fine_tuning"),
            on_rung=lambda entry: self._record_rung(trial_id, entry))

    @staticmethod
    def _oracle_metrics(record: dict[str, Any]) -> dict[str, float]:
        """The fold means the oracle scores (search.fold_records.oracle_metrics)."""
        return oracle_metrics(record)

    # -- around each trial -----------------------------------------------------------------------
    def search(self, *fit_args, **fit_kwargs) -> None:
        """KerasTuner's search loop; when the time budget or Ctrl-C/SIGTERM stops it inside a
        trial, that trial's HParams session is written as ``STOPPED`` so TensorBoard lists it
        (its finished folds are on disk and the resumed search finishes it)."""
        self._open_trial = None
        try:
            super().search(*fit_args, **fit_kwargs)
        except (BudgetExhausted, signals.SearchInterrupted) as exc:
            if self._open_trial is not None:
                self._write_session(self._open_trial, stopped_by=(
                    "time budget spent" if isinstance(exc, BudgetExhausted)
                    else f"interrupted ({exc})"))
            raise

    def on_trial_begin(self, trial) -> None:
        """KerasTuner's hook; remembers the trial for :meth:`search`'s stop handling."""
        super().on_trial_begin(trial)
        self._open_trial = trial.trial_id

    def on_trial_end(self, trial) -> None:
        """Saves (KerasTuner), prints the progress line, applies the consecutive-failure rule."""
        super().on_trial_end(trial)
        saved = self.oracle.get_trial(trial.trial_id)
        cv = self.read_cv(trial.trial_id) or {}
        status = saved.status
        reason = cv.get("reason")
        if status != "COMPLETED" and cv.get("status") != "FAILED":
            # KerasTuner failed the trial outside run_trial (e.g. NaN score): record it.
            reason = (saved.message or "").strip().splitlines()[-1:] or ["failed"]
            cv.update({"status": "FAILED", "reason": reason[0]})
            write_json_atomic(self.trial_dir(trial.trial_id) / "cv.json", cv)
            reason = cv["reason"]
        # A pruned trial is a finished decision, not a failure (search.ladder).
        self.session_statuses.append(
            "COMPLETED" if status == "COMPLETED"
            else failures.OVER_BUDGET if failures.is_over_budget(reason) else "FAILED")
        self.report(trial.trial_id)
        self._write_session(trial.trial_id)
        self._open_trial = None
        failpoints.maybe_kill_after_trial(trial.trial_id)
        failures.check_consecutive(self.session_statuses, last_reason=reason)
        signals.check()

    def _write_session(self, trial_id: str, stopped_by: str | None = None) -> None:
        """The trial's HParams session; a logging failure is reported, never fatal.

        Args:
            trial_id: The trial.
            stopped_by: What stopped the search inside the trial (``time budget spent``), or
                None when the trial has ended.
        """
        cv = self.read_cv(trial_id)
        if self.tensorboard_dir is None or not cv:
            return
        stop_reason = None
        if stopped_by is not None:
            cv = tensorboard.with_fold_files(cv, self.trial_dir(trial_id))
            stop_reason = tensorboard.stopped_reason(stopped_by, len(cv.get("folds") or []),
                                                     len(self.data.folds))
        try:
            tensorboard.write_trial_session(self.tensorboard_dir, cv, stop_reason=stop_reason)
        except OSError as err:
            self.progress.line(f"[{self.family}] warning: TensorBoard session of trial "
                               f"{trial_id} not written ({err}); the search goes on")

    def report(self, trial_id: str) -> str:
        """Writes the progress line of an ended trial."""
        obj = self.oracle.objective
        cv = self.read_cv(trial_id) or {}
        best = self.best_trial()
        ended = len(self.oracle.trials_ended())
        return self.progress.trial_line(
            family=self.family, trial_id=trial_id, done=ended, total=self.oracle.trial_cap,
            status=cv.get("status", "FAILED"), objective=obj.name,
            fold_scores=[f.get(obj.name, float("nan")) for f in cv.get("folds", [])],
            mean=cv.get("mean", {}).get(obj.name), std=cv.get("std", {}).get(obj.name),
            best=best.score if best else None, best_id=best.trial_id if best else None,
            diagnosis=cv.get("diagnosis"), reason=cv.get("reason"),
            budget_left_s=self.budget.remaining_s, stage=_stage(cv.get("hyperband")))

    def best_trial(self):
        """The best completed trial so far, or None.

        Among trials tied on the score, the lowest trial id: the rule the leaderboard and
        ``export`` rank by (``results.leaderboard.trials_to_rows``), so the progress line's
        "best" and the search summary name the trial that ``export`` exports. The oracle's
        own order of equal scores follows its trial dict, which a reload may reorder.
        """
        ranked = self.oracle.get_best_trials(len(self.oracle.trials) or 1)
        if not ranked:
            return None
        top = ranked[0]
        if top.score is None:
            return top
        ties = [t for t in ranked if t.status == top.status and t.score == top.score]
        return min(ties, key=lambda t: str(t.trial_id))

    # -- models ------------------------------------------------------------------------------------
    def load_model(self, trial):
        """The trial's model with the weights of its best fold (``get_best_models`` uses it)."""
        cv = self.read_cv(trial.trial_id) or {}
        obj = self.oracle.objective
        folds = cv.get("folds") or [{"fold": 0}]
        pick = max if obj.direction == "max" else min
        best = pick(folds, key=lambda f: f.get(obj.name, 0.0))
        model = self.hypermodel.build(trial.hyperparameters)
        model.load_weights(str(fold_fit.fold_weights(self.trial_dir(trial.trial_id),
                                                     best["fold"])))
        return model

    def save_model(self, trial_id, model, step=0):
        """Unused: fold weights are saved by ``search.fold_fit``."""
