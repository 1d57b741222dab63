"""The k-fold tuner: KerasTuner's search loop with cross-validated, resumable trials.

``CVTuner.run_trial`` trains one fresh model per fold (``search.fit.fold_fit``), skips folds that a
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

from search.fit import failures, fold_fit
from search.fit.fold_data import FoldData
from search.fit.diagnosis import combine
from search.fit.probes import epoch_metric
from search.runtime import compat, failpoints, signals
from search.schedule import cost, ladder
from search.schedule.budget import BudgetExhausted, SearchEnded, TimeBudget
from search.schedule.fold_judge import TrialJudge, TrialStopped
from search.store import kt_files
from search.store.files import disk_full_error, is_disk_full, read_json
from search.store.fold_records import fold_mean_std, oracle_metrics
from search.store.trial_record import CV_JSON, TrialRecord, build_record, family_records
from search.watch import tensorboard
from search.watch.progress import EpochBar, Progress, hyperband_stage

class CVTuner(kt.Tuner):
    """A KerasTuner ``Tuner`` whose trials are k-fold cross-validated and resumable.

    Args:
        oracle: A capped oracle from :func:`search.tuners.oracles.make_oracle`.
        hypermodel: The family's HyperModel from ``spaces``.
        data: The folds to train on (search.fit.fold_data).
        family: ``cnn`` or ``ann`` (also the project name inside the run folder).
        run_dir: The run folder (the project is ``run_dir/family``).
        max_epochs: Epochs per fold for non-Hyperband tuners.
        patience: Early-stopping patience.
        seed: The user's ``--seed`` (per-fold seeds derive from it).
        progress: Progress writer.
        budget: Time budget checked before each fold.
        overwrite: Passed to KerasTuner (start the project afresh).
        distribution_strategy: A ``tf.distribute`` strategy for multi-GPU trials under
            TensorFlow (``search.runtime.devices``), or None.
        tensorboard_dir: Where to write TensorBoard event files (``search.watch.tensorboard``), or
            None.
        first_rung: Epochs of the ladder's first rung (search.schedule.ladder); None: no ladder
            (``--no-ladder``), every trial trains every fold.
        ladder_brackets: Brackets of the ladder (``--ladder-brackets``).
        max_trial_share: With a time budget, the share of it a trial may spend before a ladder
            rung compares it with another configuration (search.schedule.cost).
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
        self._records: dict[str, TrialRecord] = {}  # the open trial's (search.store)
        self._open_trial: str | None = None  # the trial between on_trial_begin and its end
        compat.quiet_failed_trial_tracebacks()
        kt_files.install_atomic_saves()
        if not overwrite and not compat.reads_chief_oracle():
            # Before KerasTuner reloads the project: a damaged file would end it in a
            # JSONDecodeError. Workers read the chief's oracle, not these files.
            kt_files.repair_project(Path(run_dir) / family, self._warn)
        # distribution_strategy: a tf.distribute strategy (search.runtime.devices); KerasTuner keeps
        # it for its multi-worker bookkeeping, the hypermodel builds under its scope.
        super().__init__(oracle=oracle, hypermodel=hypermodel, directory=str(run_dir),
                         project_name=family, overwrite=overwrite,
                         distribution_strategy=distribution_strategy)
        # Over-budget configurations are refused when the oracle draws them (exact counts, no
        # model built), so they never use up --max-trials. The spaces HyperModel owns the
        # limits, also behind a device wrapper (search.runtime.devices.ScaledHyperModel).
        inner = getattr(self.hypermodel, "inner", self.hypermodel)
        if hasattr(inner, "refusal"):
            self.oracle.refusal = self._refusal
        # The oracle resumes suspended configurations (search.schedule.ladder, "Suspension"):
        # it ranks them per bracket, and finishes the rungs' leaders once no new configuration
        # could reach a rung in the time left.
        self.oracle.ladder_brackets = ladder_brackets
        self.oracle.finishing = self._finishing
        self.oracle.reserve = self._reserve
        self.oracle.held = self._held

    def _finishing(self) -> bool:
        """True when a new configuration could not reach its first rung in the time left."""
        return cost.search_end_reason(
            left_s=self.budget.remaining_s,
            first_rung_s=ladder.seconds_to_first_rung(family_records(self.family_dir))) is not None

    def _finishable_leader(self, records: list[dict[str, Any]],
                           standings: list[ladder.Standing], left_s: float,
                           own: tuple[str, float] | None = None) -> tuple[str, float] | None:
        """The finish reserve's leader: the first suspended configuration (highest rung, then
        best: ``ladder.finish_order``) that can still finish every fold in ``left_s`` at its
        own pace, with the seconds it needs; None once a configuration has finished.
        ``own``: the asking trial's id and its own estimate (its record is mid-fold)."""
        if any(r.get("status") == "COMPLETED" for r in records):
            return None
        by_id = {str(r.get("trial_id")): r for r in records}
        for trial_id in ladder.finish_order(standings, self.oracle.objective.direction):
            need = (own[1] if own and trial_id == own[0] else
                    ladder.seconds_to_finish(by_id.get(trial_id) or {}, len(self.data.folds),
                                             self.max_epochs))
            if need is not None and need <= left_s:
                return trial_id, need
        return None

    def _reserve(self, standings: list[ladder.Standing]) -> str | None:
        """The suspended leader to finish now so that one configuration finishes within the
        time budget (``search.schedule.cost.reserve_reason``), or None to go on drawing."""
        left = self.budget.remaining_s
        if left is None:
            return None
        records = family_records(self.family_dir)
        leader = self._finishable_leader(records, standings, left)
        if leader is None:
            return None
        why = cost.reserve_reason(left_s=left, finish_s=leader[1], trial_id=leader[0],
                                  first_rung_s=ladder.slowest_first_rung(records))
        if why:
            self.progress.line(f"[{self.family}] {why}")
            return leader[0]
        return None

    def _hold(self, trial_id: str, rung: int, value: float, continue_s: float,
              finish_s: float) -> str | None:
        """Asked by the judge at a rung ``trial_id`` passes: why it waits there so that the
        leader can still finish (``search.schedule.cost.hold_reason``), or None to go on."""
        left = self.budget.remaining_s
        if left is None:
            return None
        records = family_records(self.family_dir)
        standings = [s for s in ladder.standings_of(records) if s.trial_id != str(trial_id)]
        mine = {k: float(e["value"]) for k, e in
                ladder.rung_entries(self.read_cv(trial_id) or {}).items()}
        standings.append(ladder.Standing(str(trial_id),
                                         ladder.bracket_of(trial_id, self.ladder_brackets),
                                         {**mine, rung: value}, suspended=True))
        leader = self._finishable_leader(records, standings, left,
                                         own=(str(trial_id), finish_s))
        if leader is None or leader[0] == str(trial_id):
            return None  # nothing to keep time for, or it is the one to finish: it goes on
        return cost.hold_reason(left_s=left, continue_s=continue_s, finish_s=leader[1],
                                trial_id=leader[0])

    def _held(self, trial_id: str) -> bool:
        """True when suspended ``trial_id`` keeps waiting instead of being resumed now: its next
        stretch, at its own pace, cannot end within the time budget left (the budget would cut
        it mid-stretch and the stretch's epochs would be lost; a new draw may still reach a
        rung), or it would leave the finish reserve's leader too little time (``_hold``)."""
        left = self.budget.remaining_s
        if left is None or self.first_rung is None:
            return False
        cv = self.read_cv(trial_id) or {}
        entries, pace = ladder.rung_entries(cv), ladder.pace_of(cv)
        if not entries or pace is None:
            return False
        top = max(entries)
        rungs = ladder.rungs(self.max_epochs, first=self.first_rung)
        if top >= len(rungs):
            return False
        to_next, to_finish = ladder.stretch_epochs(rungs, rungs[top], len(self.data.folds),
                                                   self.max_epochs)
        if pace * to_next > left:
            return True
        return self._hold(trial_id, top, float(entries[top]["value"]), pace * to_next,
                          pace * to_finish) is not None

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
        """The trial's cv.json: the open trial's record in memory, else the file (or None)."""
        record = self._records.get(str(trial_id))
        if record is not None:
            return record.data or None
        return read_json(self.trial_dir(trial_id) / CV_JSON)

    def _write_cv(self, record: TrialRecord, trial, status: str, folds: list[dict],
                  started: float, **fields: Any) -> dict[str, Any]:
        """Writes the trial's record from its finished folds (search.store.trial_record)."""
        obj = self.oracle.objective
        return record.save(build_record(
            previous=record.data, trial_id=trial.trial_id, family=self.family,
            tuner_id=self.tuner_id, objective=obj.name, direction=obj.direction,
            status=status, folds=folds, values=trial.hyperparameters.values,
            session_s=time.monotonic() - started,
            diagnosis=combine(f["diagnosis"] for f in folds) if folds else None, **fields))

    # -- the trial -----------------------------------------------------------------------------
    def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
        """Cross-validates one hyperparameter set; returns the fold means to the oracle.

        Top to bottom: the store opens the trial's record, the schedule says whether a new
        configuration can still start and judges it at every rung, the fit trains each fold
        the record does not already hold, and the record keeps every fold and the outcome.
        """
        record = self._open_record(trial.trial_id)
        done = record.found
        if done and done.get("status") in ("COMPLETED", "PRUNED"):
            # Killed after cv.json but before the oracle saved: report, do not retrain.
            return self._oracle_metrics(done)
        # The oracle resumed a configuration the ladder suspended: its rung is passed now.
        resumed = bool(done and done.get("status") == "SUSPENDED" and record.resume_rung())
        values = trial.hyperparameters.values
        epochs = int(values.get("tuner/epochs", self.max_epochs))
        initial_epoch = int(values.get("tuner/initial_epoch", 0))
        past_id = values.get("tuner/trial_id")
        # Hyperband: the round, as (last epoch, first epoch); a fresh single round at
        # max_epochs is not the continued last round of a bracket (ladder.budget_of).
        budget = ((epochs, initial_epoch) if "tuner/epochs" in values else None)
        peers = family_records(self.family_dir)
        if not done or not (done.get("folds") or (done.get("ladder") or {}).get("rungs")):
            # A new configuration: can it still reach its first rung? (search.schedule.cost)
            why = cost.search_end_reason(
                left_s=self.budget.remaining_s,
                first_rung_s=ladder.seconds_to_first_rung(peers, budget))
            if why:
                raise SearchEnded(why)
        started = time.monotonic()
        record.start_session()
        folds: list[dict] = []
        n_params = None
        self._write_cv(record, trial, "RUNNING", folds, started)
        judge = self._judge(trial.trial_id, budget, epochs - initial_epoch, peers, record,
                            judged=past_id is not None or resumed or record.was_judged())
        stopped = stop_reason = None
        try:
            for k in range(len(self.data.folds)):
                fold = self._fit_fold(trial, k, epochs, initial_epoch, past_id, judge)
                n_params = fold.get("n_params", n_params)
                folds.append(fold)
                self._write_cv(record, trial, "RUNNING", folds, started, n_params=n_params)
                if k < len(self.data.folds) - 1:
                    mean, _ = fold_mean_std([f["best"] for f in folds])
                    why = judge.at_fold_end(k, mean.get(self.oracle.objective.name))
                    if why:
                        stopped = {"fold": k, "epoch": None, "best": None,
                                   "rule": "suspend" if judge.suspended else "ladder"}
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
                    Path(getattr(exc, "filename", None) or record.path.parent / "fold"), exc)
                raise kt_files.FatalDiskFull(str(full)) from None
            reason = failures.failure_reason(exc)
            self._write_cv(record, trial, "FAILED", folds, started, reason=reason,
                           n_params=n_params)
            raise kt.errors.FailedTrialError(reason) from exc
        if stopped and stopped["rule"] == "suspend":
            final = self._write_cv(record, trial, "SUSPENDED", folds, started,
                                   reason=stop_reason, n_params=n_params, stopped=stopped)
        elif stopped:
            final = self._write_cv(record, trial, "PRUNED", folds, started, reason=stop_reason,
                                   n_params=n_params, stopped=stopped,
                                   censored=stopped["rule"] == "cost")
        else:
            final = self._write_cv(record, trial, "COMPLETED", folds, started, n_params=n_params)
        return self._oracle_metrics(final)

    def _open_record(self, trial_id: str) -> TrialRecord:
        """The trial's record for this session (search.store.trial_record), read once."""
        record = TrialRecord(self.trial_dir(trial_id))
        self._records = {str(trial_id): record}  # only the open trial is held
        return record

    def _fit_fold(self, trial, k: int, epochs: int, initial_epoch: int, past_id: str | None,
                  judge: TrialJudge) -> dict[str, Any]:
        """Fold ``k``'s record: the one a previous session finished, else a fresh fit."""
        tdir = self.trial_dir(trial.trial_id)
        record = fold_fit.load_finished_fold(tdir, k)
        if record is not None:
            return record
        signals.check()
        self.budget.check_before_fold()
        tr, va = self.data.folds[k]
        carry = fold_fit.fold_weights(self.trial_dir(past_id), k) if past_id is not None else None
        obj = self.oracle.objective
        extra = []
        if self.tensorboard_dir is not None:
            extra.append(tensorboard.make_fold_callback(
                self.tensorboard_dir, self.family, trial.trial_id, k))
        if self.progress.show_bar:
            extra.append(EpochBar(self.progress.stream,
                                  f"[{self.family}] trial {trial.trial_id} fold "
                                  f"{k + 1}/{len(self.data.folds)}", epochs,
                                  epoch_metric(obj.name)))
        return fold_fit.fit_fold(
            hypermodel=self.hypermodel, hp=trial.hyperparameters, trial_id=trial.trial_id,
            trial_dir=tdir, family_dir=self.family_dir, fold=k,
            x_tr=self.data.x[tr], y_tr=self.data.y[tr], x_va=self.data.x[va],
            y_va=self.data.y[va], epochs=epochs, initial_epoch=initial_epoch,
            carry_from=carry, objective=obj.name, direction=obj.direction,
            patience=self.patience, seed=self.seed, extra_callbacks=extra,
            probe=self.data.probe_data(k), budget=self.budget, judge=judge)

    def _judge(self, trial_id: str, budget: tuple[int, int] | None, round_epochs: int,
               peers: list[dict[str, Any]], record: TrialRecord, judged: bool) -> TrialJudge:
        """The trial's judge (search.schedule.fold_judge): the ladder's rungs and the cost
        rule; each rung it measures goes into the trial's record at once."""
        return TrialJudge(
            family_dir=self.family_dir, trial_id=trial_id, objective=self.oracle.objective.name,
            direction=self.oracle.objective.direction, budget_epochs=budget,
            round_epochs=round_epochs, first_rung=self.first_rung,
            brackets=self.ladder_brackets, time_budget=self.budget,
            max_share=self.max_trial_share,
            has_peers=any(str(r.get("trial_id")) != str(trial_id)
                          and r.get("status") in ("COMPLETED", "PRUNED", "FAILED", "SUSPENDED")
                          for r in peers),
            passed=record.passed_rungs(), judged=judged,
            # Hyperband rounds start a batch together; the one-budget tuners meet the lone
            # first configuration at every rung (search.schedule.ladder, "Suspension").
            suspend=budget is None,
            # The finish reserve (search.schedule.cost): keep the leader's time at each rung.
            folds=len(self.data.folds), hold=self._hold,
            # A two-stage fit (spaces.transfer: head, then fine-tuning) is judged from the end
            # of its first fold, when every configuration has had both stages.
            in_fold=not hasattr(getattr(self.hypermodel, "inner", self.hypermodel),
                                "start_fine_tuning"),
            on_rung=lambda entry: record.add_rung(
                entry, ladder.bracket_of(trial_id, self.ladder_brackets)))

    @staticmethod
    def _oracle_metrics(record: dict[str, Any]) -> dict[str, float]:
        """The fold means the oracle scores (search.store.fold_records.oracle_metrics)."""
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
            cv = self._failed_outside(trial.trial_id, cv, reason[0])
            reason = cv["reason"]
        # A pruned trial is a finished decision, not a failure (search.schedule.ladder).
        self.session_statuses.append(
            "COMPLETED" if status == "COMPLETED"
            else failures.OVER_BUDGET if failures.is_over_budget(reason) else "FAILED")
        self.report(trial.trial_id)
        self._write_session(trial.trial_id)
        self._open_trial = None
        failpoints.maybe_kill_after_trial(trial.trial_id)
        failures.check_consecutive(self.session_statuses, last_reason=reason)
        signals.check()

    def _failed_outside(self, trial_id: str, cv: dict[str, Any], reason: str) -> dict[str, Any]:
        """Records a trial KerasTuner failed outside ``run_trial`` (e.g. a NaN score)."""
        record = self._records.get(str(trial_id))
        if record is None:
            record = TrialRecord(self.trial_dir(trial_id))
        return record.save({**cv, "status": "FAILED", "reason": reason})

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
            budget_left_s=self.budget.remaining_s, stage=hyperband_stage(cv.get("hyperband")))

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
        """Unused: fold weights are saved by ``search.fit.fold_fit``."""
