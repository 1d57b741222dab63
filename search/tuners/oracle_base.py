"""What every capped oracle shares: the trial cap, defaults first, refusals, resume, and how a
trial's outcome is read (completed, pruned by the ladder, censored by a cost stop).

``search.tuners.oracles`` (Hyperband, Bayesian, random) and ``search.tuners.tpe`` both build on this
module;
neither imports the other's internals, so imports run one way: ``oracle_base`` <- ``tpe`` <-
``oracles``.
"""

from __future__ import annotations

from typing import Callable

import keras_tuner as kt

from search.runtime import compat
from search.schedule import ladder
from search.store import fold_records

trial_module = compat.trial_module()

# How many over-budget draws in a row before the space is declared exhausted. Each refusal is
# a pure arithmetic count (spaces.common), so this costs milliseconds.
MAX_REFUSED_DRAWS = 2000
# The metrics a stopped trial reports (search.store.fold_records.oracle_metrics adds them).
PRUNED_METRIC = fold_records.PRUNED_METRIC
CENSORED_METRIC = fold_records.CENSORED_METRIC
SUSPENDED_METRIC = fold_records.SUSPENDED_METRIC
ENDED = (trial_module.TrialStatus.COMPLETED, trial_module.TrialStatus.FAILED,
         trial_module.TrialStatus.INVALID)


def default_values(hyperparameters: kt.HyperParameters) -> dict:
    """The default value of every hyperparameter active under the other defaults."""
    hps = kt.HyperParameters()
    for hp in hyperparameters.space:
        hps.merge([hp])  # registering sets the default value; conditions see earlier ones
    return {name: value for name, value in hps.values.items()
            if hps.is_active(name)}


def startup_trials(trial_cap: int | None) -> int:
    """Random trials (the defaults first) before a model-based tuner proposes: 30% of the cap,
    3 to 10.

    KerasTuner's Bayesian default, 3 x the number of dimensions, is 87 for the CNN space, and
    Optuna's TPE default, 10, would leave a 10-trial search entirely random. Three points (the
    defaults and two random draws) is the least a GP with a constant-times-Matern kernel can be
    fitted to, and already splits TPE's "good" and "bad" densities; ten is enough to cover a
    29-dimensional space coarsely before exploiting. 30% of the cap leaves the model most of a
    small search. Bayesian search and TPE use the same rule, so they are compared on the same
    start.
    """
    if trial_cap is None:
        return 10
    return int(min(10, max(3, round(0.3 * trial_cap))))


def _flag(trial, name: str) -> bool:
    metrics = getattr(trial, "metrics", None)
    return bool(metrics is not None and metrics.exists(name) and metrics.get_last_value(name))


def is_pruned(trial) -> bool:
    """True for a trial the ladder stopped (it reports ``cxr_pruned``): its score is a rung's,
    never the best and never promoted."""
    return _flag(trial, PRUNED_METRIC)


def is_censored(trial) -> bool:
    """True for a trial a cost rule stopped (it reports ``cxr_censored``): its quality is
    unknown, so no tuner learns from its score (search.schedule.cost)."""
    return _flag(trial, CENSORED_METRIC)


def is_suspended(trial) -> bool:
    """True for a trial that waits at a ladder rung (``cxr_suspended``): its score is the
    rung's, so it is never the best until the oracle resumes and finishes it."""
    return _flag(trial, SUSPENDED_METRIC)


def rung_values(trial) -> dict[int, float]:
    """``{rung index: value}`` a trial reported (``cxr_rung<i>``, search.store.fold_records)."""
    metrics = getattr(trial, "metrics", None)
    out = {}
    if metrics is None:
        return out
    for name in getattr(metrics, "metrics", {}):
        if name.startswith(fold_records.RUNG_METRIC_PREFIX):
            value = metrics.get_last_value(name)
            if value is not None:
                out[int(name[len(fold_records.RUNG_METRIC_PREFIX):])] = float(value)
    return out


def superseded(trials) -> set[str]:
    """Ids of Hyperband rounds that a later round of the same configuration continued: only a
    configuration's latest round speaks for it (a pruned last round takes it out)."""
    return {str(t.hyperparameters.values.get("tuner/trial_id")) for t in trials
            if t.hyperparameters.values.get("tuner/trial_id") is not None}


class CappedOracleMixin:
    """Stops creating trials at ``trial_cap``; retries interrupted trials under their ids.

    Also makes the first trial of every search the space's defaults (the notes' basic model),
    which KerasTuner's oracles would otherwise draw at random like every other trial; refuses
    over-budget draws through ``refusal`` (set by ``search.tuners.cv_tuner.CVTuner``); resumes
    the configurations the ladder suspended before it draws a new one
    (``search.schedule.ladder.pick_promotion``); and keeps pruned, censored and suspended trials
    out of the best trials.
    """

    trial_cap: int | None = None
    # values -> None, or why the configuration is refused (over --max-params / --max-gflops).
    refusal: Callable[[dict], str | None] | None = None
    refused_draws: int = 0
    last_refusal: str | None = None
    # True when MAX_REFUSED_DRAWS draws in a row were over budget: the search cannot go on.
    refused_out: bool = False
    # Brackets of the ladder (--ladder-brackets): a suspended trial ranks in its own bracket.
    ladder_brackets: int = ladder.DEFAULT_BRACKETS
    # () -> True when a new configuration can no longer reach a rung in the time left (set by
    # the tuner, which knows the budget): the rungs' leaders are then finished, not left waiting.
    finishing: Callable[[], bool] | None = None
    # standings -> the suspended trial to finish now to keep time for one finished
    # configuration (search.schedule.cost, "Finish reserve"), or None. Set by the tuner.
    reserve: Callable[[list], str | None] | None = None
    # trial id -> True when resuming that suspended trial now would eat the finish reserve
    # (its next stretch leaves the leader too little): it keeps waiting. Set by the tuner.
    held: Callable[[str], bool] | None = None
    # Ids of the suspended trials resumed, in order (saved in oracle.json).
    resumed: list[str]

    def _refused(self, values: dict | None) -> bool:
        if values is None or self.refusal is None:
            return False
        reason = self.refusal(values)
        if reason is not None:
            self.refused_draws += 1
            self.last_refusal = reason
        return reason is not None

    def _random_values(self):
        if not self.trials:  # the first trial ever created (also after a reload: trials exist)
            values = default_values(self.hyperparameters)
            if not self._refused(values):
                return values
        for _ in range(MAX_REFUSED_DRAWS):
            values = super()._random_values()
            if not self._refused(values):
                return values  # None too: the space is exhausted
        self.refused_out = True  # the engine says why the search stopped (search.engine)
        return None

    def _capped(self) -> bool:
        return self.trial_cap is not None and len(self.trials) >= self.trial_cap

    def promotion(self) -> str | None:
        """The suspended trial to resume now, or None (``search.schedule.ladder``)."""
        standings = [ladder.Standing(str(t.trial_id),
                                     ladder.bracket_of(t.trial_id, self.ladder_brackets),
                                     rung_values(t), is_suspended(t))
                     for t in self.trials.values()
                     if t.status == trial_module.TrialStatus.COMPLETED]
        if not any(s.suspended for s in standings):
            return None
        kept = self.reserve(standings) if self.reserve else None
        if kept is not None:
            return kept
        finishing = self._capped() or self.refused_out or bool(self.finishing and self.finishing())
        for trial_id in ladder.promotion_order(standings, self.objective.direction,
                                               finishing=finishing):
            if self.held is None or not self.held(trial_id):
                return trial_id
        return None

    def _resume(self, trial_id: str, tuner_id):
        """Hands a suspended trial to ``tuner_id`` again, as KerasTuner hands out a retried one;
        the tuner continues it from its rung (``search.fit.fold_fit``)."""
        trial = self.trials[trial_id]
        trial.status = trial_module.TrialStatus.RUNNING
        compat.reset_trial_metrics(trial)
        compat.tuner_ids(self).add(tuner_id)
        compat.ongoing_trials(self)[tuner_id] = trial
        if not isinstance(getattr(self, "resumed", None), list):
            self.resumed = []
        self.resumed.append(str(trial_id))
        self.save()
        compat.oracle_display(self).on_trial_begin(trial)
        return trial

    def create_trial(self, tuner_id):
        if tuner_id not in compat.ongoing_trials(self) and not compat.retry_queue(self):
            resume = self.promotion()
            if resume is not None:
                return self._resume(resume, tuner_id)
        if (self.trial_cap is not None and tuner_id not in compat.ongoing_trials(self)
                and not compat.retry_queue(self) and len(self.trials) >= self.trial_cap):
            return trial_module.Trial(hyperparameters=self.hyperparameters.copy(),
                                      trial_id=None, status=trial_module.TrialStatus.STOPPED)
        return super().create_trial(tuner_id)

    def get_best_trials(self, num_trials=1):
        """KerasTuner's best trials without pruned or censored ones (their scores are partial)
        and without Hyperband rounds a later round continued (the configuration's latest round
        speaks for it, so the progress line, the summary and ``export`` name the same trial).
        Ties keep the lower trial id, as the leaderboard ranks them."""
        later = superseded(self.trials.values())
        best = super().get_best_trials(len(self.trials) or num_trials)
        best = [t for t in best if not is_pruned(t) and not is_censored(t)
                and not is_suspended(t)
                and str(t.trial_id) not in later and t.score is not None]
        sign = -1.0 if self.objective.direction == "max" else 1.0
        best.sort(key=lambda t: (sign * float(t.score), str(t.trial_id)))
        return best[:num_trials]

    def reload(self):
        super().reload()
        # A suspended trial the oracle resumed ended once already; it is running again.
        ended = set(compat.end_order(self)) - set(getattr(self, "resumed", None) or [])
        queue = [t for t in compat.retry_queue(self) if t not in ended]
        for trial_id, trial in self.trials.items():
            if trial.status == trial_module.TrialStatus.RUNNING and trial_id not in ended \
                    and trial_id not in queue:
                queue.append(trial_id)
        # create_trial pops from the end: keep the oldest interrupted trial next.
        compat.set_retry_queue(self, sorted(set(queue), reverse=True))

    def get_state(self):
        state = super().get_state()
        state.update({"cxr_refused_draws": self.refused_draws,
                      "cxr_last_refusal": self.last_refusal,
                      "cxr_resumed": list(getattr(self, "resumed", None) or [])})
        return state

    def set_state(self, state):
        super().set_state(state)
        self.refused_draws = state.get("cxr_refused_draws", 0)
        self.last_refusal = state.get("cxr_last_refusal")
        self.resumed = list(state.get("cxr_resumed") or [])

    def trials_ended(self) -> list[str]:
        """Ids of trials that ended (completed or failed), in end order, without repeats."""
        seen, out = set(), []
        for trial_id in compat.end_order(self):
            if trial_id not in seen:
                seen.add(trial_id)
                out.append(trial_id)
        return out


