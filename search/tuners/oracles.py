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
- Hyperband is sized from the trial cap (:func:`hyperband_plan`): a bracket of successive
  halving whose rounds run from ``--min-epochs`` to ``--max-epochs`` and whose size is the
  largest that fits in the trials left, so a search of any size promotes its best
  configurations to ``--max-epochs``. KerasTuner sizes brackets from ``max_epochs`` alone (its
  first bracket needs 12 trials at 10 epochs before any promotion), which a 10-trial cap never
  reached. A round is promoted when every trial of the previous round has ended; failed and
  pruned trials are never promoted.
- Over-budget configurations (``--max-params``, ``--max-gflops``) are refused when drawn, from
  the exact counts (``oracle.refusal``), so they never become trials and never use up the cap.
- Bayesian optimisation starts modelling after ``search.tuners.oracle_base.startup_trials`` trials
(KerasTuner
  waits for 3 x the number of dimensions: 87 for the CNN space), learns from failed trials as
  the worst score seen, and never proposes a configuration already tried or over budget.
- A trial stopped by the ladder (``search.schedule.ladder``) reports ``cxr_pruned`` = 1 and its rung
  values (``cxr_rung<i>``): the Gaussian process learns from its score at the rung where it
  stopped, TPE from every rung as Optuna's intermediate values; it is never the best trial and
  never promoted. One stopped for cost reports ``cxr_censored`` = 1: no tuner learns from it.
- On reload KerasTuner re-queues the trials it saved as ongoing, under their ids (our fold-level
  resume relies on that). We also re-queue a RUNNING trial that a kill left out of oracle.json,
  and drop from the queue a trial that already ended (killed between the two saves of
  ``end_trial``), so no trial runs twice and none is lost.
"""

from __future__ import annotations

import hashlib
import math

import keras_tuner as kt
import numpy as np

from search.runtime import compat
from search.tuners.oracle_base import (CENSORED_METRIC, ENDED, MAX_REFUSED_DRAWS, PRUNED_METRIC,
                                       CappedOracleMixin, default_values, is_censored, is_pruned,
                                       startup_trials, trial_module)
from search.tuners.tpe import CappedTPEOracle

__all__ = ["CENSORED_METRIC", "ENDED", "MAX_REFUSED_DRAWS", "PRUNED_METRIC", "CappedOracleMixin",
           "default_values", "is_censored", "is_pruned", "make_oracle", "startup_trials", "CappedTPEOracle"]

HYPERBAND_FACTOR = 3
HYPERBAND_ITERATIONS = 1000  # unused by the sized brackets; kept in KerasTuner's saved state
# Our own consecutive-failure rule (search.fit.failures) replaces KerasTuner's, which raises a bare
# RuntimeError from inside end_trial before the trial is saved.
_NO_KT_FAILURE_LIMIT = 10**9

def oracle_seed(seed: int, family: str) -> int:
    """Maps a user seed to a non-zero oracle seed, distinct per family."""
    digest = hashlib.sha256(f"{seed}:{family}".encode()).hexdigest()
    return int(digest[:8], 16) % (2**31 - 2) + 1


# -- Hyperband sizing -----------------------------------------------------------------------------
def default_min_epochs(max_epochs: int, factor: int = HYPERBAND_FACTOR) -> int:
    """``--min-epochs`` default: a third of ``--max-epochs`` (factor 3), at least 1.

    Two rounds by default. Augmented models learn more slowly than plain ones
    (benchmarks/RESULTS.md, "Generalisation"), so a first round of one or two epochs would
    judge them before they show their worth; a third of the budget is the smallest first round
    of KerasTuner's geometric ladder that still leaves the top round ``factor`` times longer.
    """
    return max(1, math.ceil(max_epochs / factor))


def hyperband_rungs(min_epochs: int, max_epochs: int, factor: int = HYPERBAND_FACTOR
                    ) -> list[int]:
    """Epochs of each round: ``min_epochs``, x ``factor`` ..., ending at ``max_epochs``."""
    rungs, epochs = [], min(min_epochs, max_epochs)
    while epochs < max_epochs:
        rungs.append(epochs)
        epochs *= factor
    return rungs + [max_epochs]


def hyperband_plan(trials: int, min_epochs: int, max_epochs: int,
                   factor: int = HYPERBAND_FACTOR) -> list[tuple[int, int]]:
    """The largest successive-halving bracket that fits in ``trials``.

    Args:
        trials: Trials left under the cap (each round of a configuration is one trial).
        min_epochs: Epochs of the first round.
        max_epochs: Epochs of the last round.
        factor: Each round keeps the best ``1/factor`` of the previous one.

    Returns:
        ``[(configurations, epochs), ...]`` per round; the sizes sum to at most ``trials``.
        When ``trials`` cannot hold two configurations in the first round and one in every
        later round, a single round of ``trials`` configurations at ``max_epochs`` (random
        search at the full budget; :func:`plan_warning` says so).
    """
    rungs = hyperband_rungs(min_epochs, max_epochs, factor)

    def sizes(n0: int) -> list[int]:
        return [max(1, n0 // factor ** r) for r in range(len(rungs))]

    n0 = 1
    while sum(sizes(n0 + 1)) <= trials:
        n0 += 1
    if len(rungs) == 1 or n0 < 2:
        return [(max(1, trials), max_epochs)]
    return list(zip(sizes(n0), rungs))


def plan_trials(plan: list[tuple[int, int]]) -> int:
    """Trials a plan uses (one per configuration and round)."""
    return sum(n for n, _ in plan)


def describe_plan(plan: list[tuple[int, int]]) -> str:
    """``8 configurations x 4 epochs, best 2 continue to 10 epochs (10 trials)``."""
    (n0, e0), rest = plan[0], plan[1:]
    text = f"{n0} configuration{'s' * (n0 != 1)} x {e0} epoch{'s' * (e0 != 1)}"
    text += "".join(f", best {n} continue{'s' * (n == 1)} to {e} epochs" for n, e in rest)
    return text + f" ({plan_trials(plan)} trials)"


def plan_warning(trials: int, min_epochs: int, max_epochs: int,
                 factor: int = HYPERBAND_FACTOR) -> str | None:
    """Why a cap of ``trials`` cannot promote, or None when it can."""
    rungs = hyperband_rungs(min_epochs, max_epochs, factor)
    if len(rungs) == 1 or len(hyperband_plan(trials, min_epochs, max_epochs, factor)) > 1:
        return None
    needed = len(rungs) + 1
    return (f"--max-trials {trials} cannot promote through the {len(rungs)} Hyperband rounds "
            f"({', '.join(map(str, rungs))} epochs): that needs at least {needed} trials. "
            f"Each configuration trains {max_epochs} epochs instead (random search). Raise "
            f"--max-trials to {needed} or more, or raise --min-epochs to reduce the rounds.")


class CappedHyperbandOracle(CappedOracleMixin, kt.oracles.HyperbandOracle):
    """Hyperband whose brackets are sized from the trials left under the cap.

    Each bracket is :func:`hyperband_plan` of the trials left when it starts, saved with the
    bracket (``plan``), so a resume or a raised ``--max-trials`` continues consistently. A
    round is promoted once every trial of the previous round has ended: the best completed,
    unpruned trials continue from their weights, best first. A round with more slots than
    such candidates (failures, the ladder) shrinks to the trials promoted into it (its ``plan``
    size is lowered, and saved), so they still go on to the last round at ``--max-epochs``;
    only a round that gets no candidate at all ends the bracket.
    """

    def _start_new_bracket(self):
        # KerasTuner's __init__ calls this before the cap is set: the first bracket is planned
        # on the first trial instead.
        if self.trial_cap is None:
            return
        left = self.trial_cap - len(self.trials)
        if left <= 0:
            return
        plan = hyperband_plan(left, self.min_epochs, self.max_epochs, self.factor)
        self._brackets.append({"bracket_num": self._current_iteration,
                               "plan": [list(p) for p in plan],
                               "rounds": [[] for _ in plan]})
        self._current_iteration += 1

    def _bracket_done(self, bracket: dict) -> bool:
        if "plan" not in bracket or bracket.get("closed"):
            return True  # a KerasTuner bracket from an older run folder: not continued
        plan, rounds = bracket["plan"], bracket["rounds"]
        return len(rounds[-1]) >= plan[-1][0]

    def _ended(self, trial_id: str) -> bool:
        trial = self.trials.get(trial_id)
        return trial is not None and trial.status in ENDED

    def populate_space(self, trial_id):
        self._brackets = [b for b in self._brackets if not self._bracket_done(b)]
        waiting = False
        for bracket in self._brackets:
            plan, rounds = bracket["plan"], bracket["rounds"]
            if len(rounds[0]) < plan[0][0]:
                return self._random_trial(trial_id, bracket)
            for r in range(1, len(plan)):
                if len(rounds[r]) >= plan[r][0]:
                    continue
                past = rounds[r - 1]
                if not all(self._ended(info["id"]) for info in past):
                    waiting = True  # another worker still trains the previous round
                    break
                chosen = {info["past_id"] for info in rounds[r]}
                candidates = [self.trials[info["id"]] for info in past
                              if info["id"] not in chosen]
                candidates = [t for t in candidates if t.status == "COMPLETED"
                              and t.score is not None and not is_pruned(t)
                              and not is_censored(t)]
                if not candidates:
                    if not rounds[r]:  # failures or the ladder left nothing to promote
                        bracket["closed"] = True
                        break
                    # Fewer candidates than slots: the round shrinks to those already promoted
                    # into it; ending the bracket here would strand them short of max_epochs.
                    plan[r][0] = len(rounds[r])
                    continue
                best = sorted(candidates, key=lambda t: t.score,
                              reverse=self.objective.direction == "max")[0]
                values = best.hyperparameters.values.copy()
                values.update({"tuner/trial_id": best.trial_id,
                               "tuner/epochs": plan[r][1], "tuner/initial_epoch": plan[r - 1][1],
                               "tuner/bracket": bracket["bracket_num"], "tuner/round": r})
                rounds[r].append({"past_id": best.trial_id, "id": trial_id})
                return {"status": "RUNNING", "values": values}
        if waiting:
            return {"status": "IDLE"}
        before = len(self._brackets)
        self._start_new_bracket()
        if len(self._brackets) == before:
            return {"status": "IDLE" if compat.ongoing_trials(self) else "STOPPED"}
        return self._random_trial(trial_id, self._brackets[-1])

    def _random_trial(self, trial_id, bracket):
        values = self._random_values()
        if values:
            values.update({"tuner/epochs": bracket["plan"][0][1], "tuner/initial_epoch": 0,
                           "tuner/bracket": bracket["bracket_num"], "tuner/round": 0})
            bracket["rounds"][0].append({"past_id": None, "id": trial_id})
            return {"status": "RUNNING", "values": values}
        return {"status": "IDLE" if compat.ongoing_trials(self) else "STOPPED"}


class CappedBayesianOracle(CappedOracleMixin, kt.oracles.BayesianOptimizationOracle):
    """Bayesian optimisation (Gaussian process, upper confidence bound) with a trial cap.

    Differs from KerasTuner's in three ways: it models after
    ``search.tuners.oracle_base.startup_trials`` ended trials (failures count: they are information
    too);
    failed trials enter the model with the worst score seen, so it learns to avoid their region
    instead of proposing it again; and among the acquisition optima of its restarts it takes the
    best one that is neither tried already nor over budget, falling back to a random draw.
    ``proposals`` records which trials the model proposed (saved with the oracle).
    """

    proposals: dict[str, str]

    def _ensure_proposals(self) -> dict[str, str]:
        if not isinstance(getattr(self, "proposals", None), dict):
            self.proposals = {}
        return self.proposals

    def populate_space(self, trial_id):
        proposals = self._ensure_proposals()
        trials = list(self.trials.values())
        ended = [t for t in trials if t.status in ENDED and not is_censored(t)]
        completed = [t for t in trials if t.status == "COMPLETED" and t.score is not None
                     and not is_censored(t)]
        # None in a run folder saved before this oracle set it: the same rule from the cap.
        initial = self.num_initial_points or startup_trials(self.trial_cap)
        if len(ended) < initial or len(completed) < 2:
            proposals[trial_id] = "random"
            return self._random_populate_space()
        values = self._model_proposal()
        if values is None:
            proposals[trial_id] = "random (model proposals tried or over budget)"
            return self._random_populate_space()
        proposals[trial_id] = "model"
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _model_proposal(self) -> dict | None:
        import warnings

        import scipy.optimize

        x, y = self._vectorize_trials()
        x = np.nan_to_num(x, posinf=0, neginf=0)
        y = np.nan_to_num(y, posinf=0, neginf=0)
        with warnings.catch_warnings():
            # A length scale at its bound on a few points is expected, not the user's concern.
            warnings.simplefilter("ignore")
            self.gpr.fit(x, y)

        def ucb(v):  # minimised: scores are negated for "max" objectives
            mu, sigma = self.gpr.predict(v.reshape(1, -1), return_std=True)
            return float(np.ravel(mu)[0] - self.beta * np.ravel(sigma)[0])

        bounds = self._get_hp_bounds()
        seeds = self._random_state.uniform(bounds[:, 0], bounds[:, 1],
                                           size=(50, bounds.shape[0]))
        optima = []
        for x0 in seeds:
            result = scipy.optimize.minimize(ucb, x0=x0, bounds=bounds, method="L-BFGS-B")
            fun = result.fun if np.isscalar(result.fun) else result.fun[0]
            optima.append((float(fun), result.x))
        for _, vector in sorted(optima, key=lambda o: o[0]):
            values = self._vector_to_values(vector)
            if not compat.is_duplicate(self, values) and not self._refused(values):
                return values
        return None

    def _vectorize_trials(self):
        """KerasTuner's encoding, with failed trials at the worst score seen (not skipped)."""
        x, y, failed = [], [], []
        ongoing = set(compat.ongoing_trials(self).values())
        sign = -1.0 if self.objective.direction == "max" else 1.0
        for trial in self.trials.values():
            vector = []
            for hp in self._nonfixed_space():
                values = trial.hyperparameters.values
                active = trial.hyperparameters.is_active(hp) and hp.name in values
                vector.append(hp.value_to_prob(values[hp.name] if active else hp.default))
            if trial in ongoing:
                # Pessimistic estimate, as KerasTuner does, so workers do not duplicate it.
                mu, sigma = self.gpr.predict(np.array(vector).reshape(1, -1), return_std=True)
                x.append(vector)
                y.append(float(np.ravel(mu)[0] + np.ravel(sigma)[0]))
            elif trial.status == "COMPLETED" and is_censored(trial):
                continue  # stopped for cost: its quality is unknown, the model must not learn it
            elif trial.status == "COMPLETED" and trial.score is not None:
                x.append(vector)
                y.append(sign * float(trial.score))
            elif trial.status in ("FAILED", "INVALID"):
                failed.append(vector)
        worst = max(y) if y else 0.0
        x.extend(failed)
        y.extend([worst] * len(failed))
        return np.array(x), np.array(y)

    def get_state(self):
        state = super().get_state()
        state["cxr_proposals"] = self._ensure_proposals()
        return state

    def set_state(self, state):
        super().set_state(state)
        self.proposals = dict(state.get("cxr_proposals") or {})


class CappedRandomOracle(CappedOracleMixin, kt.oracles.RandomSearchOracle):
    """Random search with a trial cap."""


def make_oracle(tuner: str, *, objective: str, direction: str, max_trials: int,
                max_epochs: int, seed: int, family: str, min_epochs: int | None = None
                ) -> kt.Oracle:
    """Builds the capped oracle for ``--tuner``.

    Args:
        tuner: ``hyperband``, ``bayesian``, ``tpe`` (``search.tuners.tpe``) or ``random``.
        objective: Metric name, e.g. ``val_auc``.
        direction: ``max`` or ``min``.
        max_trials: The trial cap.
        max_epochs: Epochs per fold (Hyperband: the last round's budget).
        seed: The user's ``--seed``.
        family: ``cnn`` or ``ann`` (each gets its own oracle seed).
        min_epochs: Hyperband's first-round epochs (None: :func:`default_min_epochs`).
    """
    obj = kt.Objective(objective, direction)
    common = dict(objective=obj, seed=oracle_seed(seed, family),
                  max_consecutive_failed_trials=_NO_KT_FAILURE_LIMIT)
    if tuner == "hyperband":
        oracle = CappedHyperbandOracle(max_epochs=max_epochs, factor=HYPERBAND_FACTOR,
                                       hyperband_iterations=HYPERBAND_ITERATIONS, **common)
        oracle.min_epochs = min_epochs or default_min_epochs(max_epochs)
    elif tuner == "bayesian":
        oracle = CappedBayesianOracle(max_trials=None,
                                      num_initial_points=startup_trials(max_trials),
                                      **common)
        oracle.proposals = {}
    elif tuner == "tpe":
        oracle = CappedTPEOracle(max_trials=None, **common)
        oracle.n_startup_trials = startup_trials(max_trials)
        oracle.proposals = {}
    else:
        oracle = CappedRandomOracle(max_trials=None, **common)
    oracle.trial_cap = max_trials
    return oracle
