"""TPE (Optuna's Tree-structured Parzen Estimator) proposing inside a KerasTuner oracle.

``--tuner tpe``. KerasTuner's Gaussian process sees a conditional space as one flat vector
(inactive dimensions at their defaults), so it models the CNN space's 11 conditional dimensions
(of 32) badly; TPE models "good" and "bad" configurations as densities per parameter and, with
``group=True``, per group of parameters that occur together, so a dimension only counts where
it is active. Optuna's :class:`~optuna.samplers.TPESampler` does the modelling; the oracle stays
a KerasTuner oracle (:class:`CappedTPEOracle`), so the trial cap, defaults-first, over-budget
refusals, resume, distributed search (the chief's oracle proposes), the leaderboard and
TensorBoard work exactly as for the other tuners.

**No second source of truth.** The Optuna study lives in memory only and is rebuilt from the
oracle's own trials on every proposal (:func:`study_from_trials`): nothing extra is saved,
``oracle.json`` stays the one record, and a resumed search proposes what an uninterrupted one
would have (the sampler's seed is derived from the oracle seed and the new trial's id). How
KerasTuner's trials enter the study:

- completed: ``COMPLETE`` with their score and, as intermediate values, the ladder rungs they
  passed (``cxr_rung<i>`` at step i, ``search.schedule.ladder``);
- pruned by the ladder (``cxr_pruned``): ``PRUNED`` with every rung they reached as
  intermediate values. TPE ranks pruned trials below completed ones and among themselves by the
  last rung reached, then by the value there, as Optuna's own pruners leave them;
- censored by a cost rule (``cxr_censored``, ``search.schedule.cost``): ``FAIL``, so TPE neither
counts
  them as start-up trials nor takes "stopped for its cost" for "bad";
- failed or invalid: ``FAIL`` (TPE ignores them, as Optuna does; exact repeats are never
  proposed again, ``compat.is_duplicate``);
- still running (other workers, or interrupted trials waiting to be retried): ``RUNNING``, so
  ``constant_liar`` keeps parallel workers from being sent to the same spot.

Each KerasTuner hyperparameter maps to an Optuna distribution (:func:`to_distribution`), and the
values are drawn define-by-run in the space's order, so a conditional dimension is drawn only
when its parents make it active (:meth:`CappedTPEOracle._tpe_values`).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import keras_tuner as kt

from search.runtime import compat
from search.tuners.oracle_base import (ENDED, CappedOracleMixin, is_censored, is_pruned,
                                       is_suspended, rung_values, startup_trials)

trial_module = compat.trial_module()

# TPE proposals tried per trial before a random draw: each refused (over budget) or duplicate
# proposal stays in the study as RUNNING, so the constant liar pushes the next one elsewhere.
MAX_TPE_DRAWS = 20


# -- KerasTuner hyperparameters -> Optuna distributions -------------------------------------------
@dataclass(frozen=True)
class ParamMap:
    """How one KerasTuner hyperparameter is drawn by Optuna and read back.

    Attributes:
        distribution: The Optuna distribution TPE samples.
        to_value: Optuna's value -> the KerasTuner value (identity unless encoded).
        to_optuna: A KerasTuner value -> Optuna's, or None when the value does not fit the
            distribution (a past trial of a changed space: that parameter is left out).
    """

    distribution: Any
    to_value: Callable[[Any], Any]
    to_optuna: Callable[[Any], Any]


def _snap(low: float, step: float, value: float) -> float:
    # KerasTuner's own grid expression (min + index * step), so TPE's and KerasTuner's draws of
    # the same grid point are the same float and duplicates are recognised.
    return low + round((value - low) / step) * step


def _in_range(value: Any, low: float, high: float) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and low - 1e-12 <= value <= high + 1e-12)


def to_distribution(hp: Any) -> ParamMap | None:
    """The Optuna distribution of a KerasTuner hyperparameter; None for ``Fixed``.

    Args:
        hp: A ``kt.HyperParameters`` entry (Boolean, Choice, Int, Float or Fixed).

    Returns:
        Boolean -> categorical [False, True]; Choice -> categorical over its values; Int and
        Float with linear or log sampling -> Optuna's int/float distributions with the same
        bounds, step and log scale. KerasTuner's multiplicative log grids (log sampling with a
        step: 8, 16, 32 ...) are drawn as an ordered index into the grid, and ``reverse_log``
        (no Optuna counterpart) in KerasTuner's own [0, 1] scale.

    Raises:
        TypeError: An unknown hyperparameter type.
    """
    import optuna.distributions as od

    hps = kt.engine.hyperparameters
    same = lambda v: v  # noqa: E731
    if isinstance(hp, hps.Fixed):
        return None
    if isinstance(hp, (hps.Boolean, hps.Choice)):
        choices = (False, True) if isinstance(hp, hps.Boolean) else tuple(hp.values)
        return ParamMap(od.CategoricalDistribution(choices), same,
                        lambda v: v if v in choices else None)
    if not isinstance(hp, (hps.Int, hps.Float)):
        raise TypeError(f"TPE cannot map hyperparameter {hp.name!r} of type {type(hp).__name__}")
    is_int = isinstance(hp, hps.Int)
    low, high, step = hp.min_value, hp.max_value, hp.step
    if hp.sampling == "log" and step:  # a multiplicative grid: its index is ordered
        n = len(list(hp.values))
        grid = [hp.min_value * step ** i for i in range(n)]
        grid = [int(g) for g in grid] if is_int else grid

        def index_of(v: Any) -> int | None:
            if not _in_range(v, low, high):
                return None
            i = round(math.log(v / low, step))
            return i if 0 <= i < n and math.isclose(grid[i], v, rel_tol=1e-9) else None
        return ParamMap(od.IntDistribution(0, n - 1), lambda i: grid[int(i)], index_of)
    if hp.sampling == "reverse_log":
        return ParamMap(od.FloatDistribution(0.0, 1.0), hp.prob_to_value,
                        lambda v: hp.value_to_prob(v) if _in_range(v, low, high) else None)
    log = hp.sampling == "log"
    if is_int:
        step = 1 if log else int(step or 1)
        high = low + (high - low) // step * step  # Optuna wants the range divisible by step

        def int_fits(v: Any) -> int | None:
            return int(v) if _in_range(v, low, high) and (int(v) - low) % step == 0 else None
        return ParamMap(od.IntDistribution(low, high, step=step, log=log), int, int_fits)
    if step and not log:
        high = _snap(low, step, low + math.floor((high - low) / step + 1e-9) * step)

        def float_fits(v: Any) -> float | None:
            on_grid = _in_range(v, low, high) and abs((v - low) / step
                                                      - round((v - low) / step)) < 1e-6
            return _snap(low, step, v) if on_grid else None
        return ParamMap(od.FloatDistribution(low, high, step=step),
                        lambda v: _snap(low, step, v), float_fits)
    return ParamMap(od.FloatDistribution(low, high, log=log), float,
                    lambda v: float(v) if _in_range(v, low, high) else None)


def _suggest(trial: Any, name: str, dist: Any) -> Any:
    """``trial.suggest_*`` for ``dist`` (Optuna's public define-by-run calls)."""
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, od.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _params(hyperparameters: kt.HyperParameters, values: dict, space: dict[str, ParamMap]
            ) -> tuple[dict, dict]:
    """A trial's active, non-fixed values as Optuna params and their distributions."""
    params, dists = {}, {}
    for name, value in values.items():
        if name not in space or not hyperparameters.is_active(name):
            continue
        mapped = space[name].to_optuna(value)
        if mapped is not None:
            params[name] = mapped
            dists[name] = space[name].distribution
    return params, dists


# -- the study ------------------------------------------------------------------------------------
def quiet_optuna() -> None:
    """No INFO line per trial ("Trial 3 finished ...", "A new study created in memory")."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_sampler(seed: int, n_startup_trials: int = 0) -> Any:
    """Optuna's TPE: multivariate, grouped by conditional scopes, constant liar, seeded.

    ``n_startup_trials`` defaults to 0 because the oracle runs its own random start-up
    (``search.tuners.oracle_base.startup_trials``): KerasTuner's draws, the defaults first.
    """
    import optuna

    kwargs: dict[str, Any] = {}
    major, minor = (int(x) for x in optuna.__version__.split(".")[:2])
    if (major, minor) < (4, 9):
        # Before 4.9 a parameter first drawn outside its group is logged as a warning on every
        # trial; 4.9 turned that off and deprecated the argument.
        kwargs["warn_independent_sampling"] = False
    with warnings.catch_warnings():
        # multivariate, group and constant_liar are marked experimental (group still is in
        # Optuna 5); the warning is not the user's concern.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True,
                                          seed=seed, n_startup_trials=n_startup_trials,
                                          **kwargs)


def study_from_trials(trials: list, space: dict[str, ParamMap], direction: str,
                      sampler: Any = None) -> Any:
    """An in-memory Optuna study holding ``trials`` (KerasTuner's), in trial-id order.

    Args:
        trials: KerasTuner ``Trial`` objects (``oracle.trials.values()``).
        space: ``{name: ParamMap}`` of the current space (:func:`space_map`).
        direction: ``max`` or ``min`` (the oracle objective's direction).
        sampler: The sampler; None gives Optuna's default (the tests read the history only).

    Returns:
        The study; see the module docstring for how each status is entered.
    """
    import optuna
    from optuna.trial import TrialState, create_trial

    quiet_optuna()
    study = optuna.create_study(sampler=sampler,
                                direction="maximize" if direction == "max" else "minimize")
    for trial in sorted(trials, key=lambda t: str(t.trial_id)):
        params, dists = _params(trial.hyperparameters, trial.hyperparameters.values, space)
        score = trial.score
        scored = score is not None and math.isfinite(float(score))
        kwargs: dict[str, Any] = {"params": params, "distributions": dists,
                                  "user_attrs": {"kt_trial_id": str(trial.trial_id)}}
        if trial.status == trial_module.TrialStatus.RUNNING:
            kwargs["state"] = TrialState.RUNNING
        elif trial.status == trial_module.TrialStatus.COMPLETED and is_censored(trial):
            kwargs["state"] = TrialState.FAIL  # censored by cost: its quality is unknown
        elif trial.status == trial_module.TrialStatus.COMPLETED and scored and (
                is_pruned(trial) or is_suspended(trial)):
            # Every rung it reached, at its step: TPE ranks pruned trials by the last step
            # reached, then by the value there, as Optuna's pruners leave them. A suspended
            # trial is what Optuna's pruners leave too: a curve that has not gone further.
            rungs = {k: v for k, v in rung_values(trial).items() if math.isfinite(v)}
            kwargs.update(state=TrialState.PRUNED, intermediate_values=rungs or {0: float(score)})
        elif trial.status == trial_module.TrialStatus.COMPLETED and scored:
            rungs = {k: v for k, v in rung_values(trial).items() if math.isfinite(v)}
            kwargs.update(state=TrialState.COMPLETE, value=float(score),
                          intermediate_values=rungs)
        elif trial.status in ENDED:  # failed, invalid, or completed without a usable score
            kwargs["state"] = TrialState.FAIL
        else:
            continue  # IDLE / STOPPED: never trained
        study.add_trial(create_trial(**kwargs))
    return study


def space_map(hyperparameters: kt.HyperParameters) -> dict[str, ParamMap]:
    """``{name: ParamMap}`` of every non-fixed hyperparameter of the space."""
    out = {}
    for hp in hyperparameters.space:
        mapped = to_distribution(hp)
        if mapped is not None:
            out[hp.name] = mapped
    return out


def sampler_seed(oracle_seed: int, trial_id: str) -> int:
    """The sampler's seed for one trial: fixed by the oracle seed and the trial id, so a resumed
    search draws what the uninterrupted one would have, and each trial draws differently."""
    digest = hashlib.sha256(f"{oracle_seed}:{trial_id}".encode()).hexdigest()
    return int(digest[:8], 16)


# -- the oracle -----------------------------------------------------------------------------------
class CappedTPEOracle(CappedOracleMixin, kt.oracles.RandomSearchOracle):
    """TPE with a trial cap: random start-up (the defaults first), then Optuna's TPE proposes.

    TPE proposes once :attr:`n_startup_trials` trials have a score (completed or pruned;
    failures carry no score). A proposal that was tried already or is over budget is redrawn
    (up to :data:`MAX_TPE_DRAWS` times), then a random draw takes its place. ``proposals``
    records, per trial, ``model`` (TPE) or ``random``, saved in ``oracle.json`` as
    ``cxr_proposals`` like Bayesian search's.
    """

    n_startup_trials: int | None = None
    proposals: dict[str, str]

    def _ensure_proposals(self) -> dict[str, str]:
        if not isinstance(getattr(self, "proposals", None), dict):
            self.proposals = {}
        return self.proposals

    def _startup(self) -> int:
        return self.n_startup_trials or startup_trials(self.trial_cap)

    def populate_space(self, trial_id):
        proposals = self._ensure_proposals()
        scored = [t for t in self.trials.values()
                  if t.status == trial_module.TrialStatus.COMPLETED and t.score is not None
                  and not is_censored(t)]
        values, source = None, "random"
        if len(scored) >= self._startup():
            values = self._tpe_values(trial_id)
            source = "model" if values else "random (model proposals tried or over budget)"
        if values is None:
            values = self._random_values()  # the mixin's: defaults first, refusals, exhaustion
        if values is None:
            return {"status": "IDLE" if compat.ongoing_trials(self) else "STOPPED"}
        proposals[trial_id] = source
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _tpe_values(self, trial_id: str) -> dict | None:
        """TPE's proposal: new and within budget, or None after :data:`MAX_TPE_DRAWS` tries."""
        space = space_map(self.hyperparameters)
        study = study_from_trials(list(self.trials.values()), space, self.objective.direction,
                                  sampler=make_sampler(sampler_seed(self.seed, trial_id)))
        for _ in range(MAX_TPE_DRAWS):
            asked = study.ask()  # stays RUNNING: a rejected draw pushes the next one away
            hps = kt.HyperParameters()
            for hp in self.hyperparameters.space:
                hps.merge([hp])
                if not hps.is_active(hp):  # its parents' values (drawn first) rule it out
                    continue
                mapped = space.get(hp.name)
                hps.values[hp.name] = (hp.value if mapped is None  # Fixed
                                       else mapped.to_value(_suggest(asked, hp.name,
                                                                     mapped.distribution)))
            values = {k: v for k, v in hps.values.items() if hps.is_active(k)}
            if not compat.is_duplicate(self, values) and not self._refused(values):
                return values
        return None

    def get_state(self):
        state = super().get_state()
        state["cxr_proposals"] = self._ensure_proposals()
        state["cxr_tpe_startup_trials"] = self._startup()
        return state

    def set_state(self, state):
        super().set_state(state)
        self.proposals = dict(state.get("cxr_proposals") or {})
        # Saved, so raising --max-trials on resume keeps the start-up the search began with.
        self.n_startup_trials = state.get("cxr_tpe_startup_trials") or self.n_startup_trials
