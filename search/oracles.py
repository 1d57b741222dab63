"""KerasTuner oracles with an honest trial cap, seed mapping and robust reload.

- ``--max-trials`` caps the number of trials the oracle creates (completed + failed), for every
  tuner. KerasTuner's Hyperband has no ``max_trials``; here it iterates its brackets
  (``hyperband_iterations`` large) until the cap. A promoted Hyperband configuration counts as
  a new trial in each round, as KerasTuner counts them. The cap is not part of the oracle's
  saved state, so raising ``--max-trials`` extends a finished search.
- Trial ids keep KerasTuner's 4-digit form (``"0003"``) for every tuner, because the cap is
  enforced here rather than through ``Oracle.max_trials`` (whose width would change when the
  cap is raised).
- KerasTuner treats ``seed=0`` (any falsy seed) as "random"; :func:`oracle_seed` maps every
  user seed to a distinct non-zero one.
- On reload KerasTuner re-queues the trials it saved as ongoing, under their ids (our fold-level
  resume relies on that). We also re-queue a RUNNING trial that a kill left out of oracle.json,
  and drop from the queue a trial that already ended (killed between the two saves of
  ``end_trial``), so no trial runs twice and none is lost.
"""

from __future__ import annotations

import hashlib

import keras_tuner as kt
from keras_tuner.src.engine import trial as trial_module

HYPERBAND_FACTOR = 3
HYPERBAND_ITERATIONS = 1000  # effectively "until --max-trials"
# Our own consecutive-failure rule (search.failures) replaces KerasTuner's, which raises a bare
# RuntimeError from inside end_trial before the trial is saved.
_NO_KT_FAILURE_LIMIT = 10**9


def default_values(hyperparameters: kt.HyperParameters) -> dict:
    """The default value of every hyperparameter active under the other defaults."""
    hps = kt.HyperParameters()
    for hp in hyperparameters.space:
        hps.merge([hp])  # registering sets the default value; conditions see earlier ones
    return {name: value for name, value in hps.values.items()
            if hps.is_active(name)}


def oracle_seed(seed: int, family: str) -> int:
    """Maps a user seed to a non-zero oracle seed, distinct per family."""
    digest = hashlib.sha256(f"{seed}:{family}".encode()).hexdigest()
    return int(digest[:8], 16) % (2**31 - 2) + 1


class CappedOracleMixin:
    """Stops creating trials at ``trial_cap``; retries interrupted trials under their ids.

    Also makes the first trial of every search the space's defaults (the notes' basic model),
    which KerasTuner's oracles would otherwise draw at random like every other trial.
    """

    trial_cap: int | None = None

    def _random_values(self):
        if not self.trials:  # the first trial ever created (also after a reload: trials exist)
            return default_values(self.hyperparameters)
        return super()._random_values()

    def create_trial(self, tuner_id):
        if (self.trial_cap is not None and tuner_id not in self.ongoing_trials
                and not self._retry_queue and len(self.trials) >= self.trial_cap):
            return trial_module.Trial(hyperparameters=self.hyperparameters.copy(),
                                      trial_id=None, status=trial_module.TrialStatus.STOPPED)
        return super().create_trial(tuner_id)

    def reload(self):
        super().reload()
        ended = set(self.end_order)
        queue = [t for t in self._retry_queue if t not in ended]
        for trial_id, trial in self.trials.items():
            if trial.status == trial_module.TrialStatus.RUNNING and trial_id not in ended \
                    and trial_id not in queue:
                queue.append(trial_id)
        # create_trial pops from the end: keep the oldest interrupted trial next.
        self._retry_queue = sorted(set(queue), reverse=True)

    def trials_ended(self) -> list[str]:
        """Ids of trials that ended (completed or failed), in end order, without repeats."""
        seen, out = set(), []
        for trial_id in self.end_order:
            if trial_id not in seen:
                seen.add(trial_id)
                out.append(trial_id)
        return out


class CappedHyperbandOracle(CappedOracleMixin, kt.oracles.HyperbandOracle):
    """Hyperband with a trial cap."""


class CappedBayesianOracle(CappedOracleMixin, kt.oracles.BayesianOptimizationOracle):
    """Bayesian optimisation (Gaussian process) with a trial cap."""


class CappedRandomOracle(CappedOracleMixin, kt.oracles.RandomSearchOracle):
    """Random search with a trial cap."""


def make_oracle(tuner: str, *, objective: str, direction: str, max_trials: int,
                max_epochs: int, seed: int, family: str) -> kt.Oracle:
    """Builds the capped oracle for ``--tuner``.

    Args:
        tuner: ``hyperband``, ``bayesian`` or ``random``.
        objective: Metric name, e.g. ``val_auc``.
        direction: ``max`` or ``min``.
        max_trials: The trial cap.
        max_epochs: Epochs per fold (Hyperband: the largest round's budget).
        seed: The user's ``--seed``.
        family: ``cnn`` or ``ann`` (each gets its own oracle seed).
    """
    obj = kt.Objective(objective, direction)
    common = dict(objective=obj, seed=oracle_seed(seed, family),
                  max_consecutive_failed_trials=_NO_KT_FAILURE_LIMIT)
    if tuner == "hyperband":
        oracle = CappedHyperbandOracle(max_epochs=max_epochs, factor=HYPERBAND_FACTOR,
                                       hyperband_iterations=HYPERBAND_ITERATIONS, **common)
    elif tuner == "bayesian":
        oracle = CappedBayesianOracle(max_trials=None, **common)
    else:
        oracle = CappedRandomOracle(max_trials=None, **common)
    oracle.trial_cap = max_trials
    return oracle
