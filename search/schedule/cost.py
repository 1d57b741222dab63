"""Cost under ``--time-budget``: when a configuration is stopped for what it costs, and when the
search ends instead of drawing a configuration it cannot judge.

Quality is the ladder's business (``search.schedule.ladder``); these rules only look at time, and
what
they stop is **censored**, never scored: the tuners learn nothing about the quality of a
configuration stopped for its cost (``cxr_censored``, ``search.tuners.oracle_base.is_censored``).

* **Share.** No configuration may spend more than ``--max-trial-share`` of the budget (default
  25%) before a ladder rung has compared it with another configuration. The first
  configuration is exempt (it has no one to be compared with, and it is the space's defaults);
  so is every configuration once a rung has compared it, and every configuration when the
  ladder is off (``--no-ladder``: nothing would ever compare it). A configuration stopped so is
  recorded ``PRUNED`` with ``censored`` and the reason.
* **Search end.** Before a new configuration starts, the search compares the budget left with
  the median time the earlier configurations of the same round length took to reach their
  first rung (:func:`search_end_reason`). When it cannot get there, the search stops and says
  so: a configuration that cannot reach a rung cannot be judged, and its time is better kept.
  That configuration stays queued and resumable, like a trial the budget cuts.
* **Finish reserve.** While no configuration has finished every fold, the search keeps the time
  the leader needs to finish (:func:`reserve_reason`; the leader: the configuration waiting
  at the highest rung with the best value there that can still finish at its own pace,
  ``search.schedule.ladder.finish_order``): once drawing one more configuration would leave
  less than that, it resumes the leader and finishes it, so a
  time-budgeted search hands over at least one configuration trained on every fold. A leader
  whose own pace says it cannot finish in the time left is passed over for the next one. The
  reserve is also asked at every rung a configuration passes (:func:`hold_reason`): one whose
  next stretch (to its next rung, or its other folds) would eat into the leader's time waits
  there, suspended and resumable, instead of going on, unless it is the leader itself.
* **Budget cut.** A trial the budget cuts (``search.schedule.budget``) is never stopped by a rule:
it
  stays ``RUNNING`` and resumable, its finished folds kept, whatever rungs it passed.

Earlier versions also stopped a trial whose remaining folds "could not finish" at its measured
speed, even one the other rules had judged good, and reported its partial score to the tuners:
a promoted configuration was discarded for good, and the tuners learnt that "expensive" means
"bad". The ladder judges early enough that the budget cut does that job without either harm.
"""

from __future__ import annotations

DEFAULT_MAX_TRIAL_SHARE = 0.25
# The finish reserve's safety factor on a leader's own-pace estimate (epochs vary by a tenth or
# so between folds on a quiet machine; early stopping only makes the estimate too high).
RESERVE_MARGIN = 1.1


def share_reason(*, spent_s: float, budget_s: float | None, share: float, judged: bool,
                 has_peers: bool, fold: int, epoch: int,
                 left_s: float | None = None) -> str | None:
    """Why the configuration stops for using more than ``share`` of the budget unjudged, or None.

    Args:
        spent_s: Seconds the configuration has trained in this session (the budget is per
            session, so is its share).
        budget_s: The family's whole time budget in seconds (None: no budget, no rule).
        share: ``--max-trial-share``.
        judged: A ladder rung already compared it with another configuration.
        has_peers: Other trials ended before it (the first configuration is exempt).
        fold: The fold (0-based; named in the reason).
        epoch: Epochs into the fold.
        left_s: Seconds the budget has left (spent: the budget cut applies, not this rule).
    """
    if budget_s is None or judged or not has_peers or spent_s <= share * budget_s:
        return None
    if left_s is not None and left_s <= 0:
        return None  # spent already: the budget itself cuts the fold, which stays resumable
    return (f"stopped in fold {fold + 1} at epoch {epoch} by cost (censored, not scored): "
            f"{spent_s / 60:.1f} min, more than {share:.0%} of the {budget_s / 60:g}-min "
            "budget, before any ladder rung could compare it with another configuration "
            "(--max-trial-share)")


def search_end_reason(*, left_s: float | None, first_rung_s: float | None) -> str | None:
    """Why the search ends before starting a new configuration, or None to start it.

    Args:
        left_s: Seconds the time budget has left (None: no budget).
        first_rung_s: ``search.schedule.ladder.seconds_to_first_rung`` of the earlier configurations
            (None: none reached a rung yet, so there is nothing to estimate from).
    """
    if left_s is None or first_rung_s is None or left_s >= first_rung_s:
        return None
    return (f"search ended with {max(0.0, left_s) / 60:.1f} min of the time budget left: a new "
            f"configuration needs about {first_rung_s / 60:.1f} min to reach its first ladder "
            "rung (the median of this search's configurations), so it could not be judged. "
            "Run the same command with a larger --time-budget to go on; nothing is lost")


def reserve_reason(*, left_s: float | None, finish_s: float | None, first_rung_s: float | None,
                   trial_id: str) -> str | None:
    """Why the search finishes ``trial_id`` now instead of drawing a new configuration, or None.

    True when drawing one more configuration (up to ``first_rung_s`` to reach its first rung,
    where the search asks again: ``search.schedule.ladder.slowest_first_rung``) would leave
    less than ``RESERVE_MARGIN`` times ``finish_s``, the leader's own-pace estimate
    to train every fold (``search.schedule.ladder.seconds_to_finish``). The caller asks only
    while no configuration has finished and only for a leader that can still finish
    (``finish_s <= left_s``).

    Args:
        left_s: Seconds the time budget has left (None: no budget, no reserve).
        finish_s: Seconds the leader needs to finish (None: unknown, no reserve).
        first_rung_s: The longest a configuration took to reach its first rung (None: 0).
        trial_id: The leader (named in the reason).
    """
    if left_s is None or finish_s is None or finish_s > left_s:
        return None
    if left_s - (first_rung_s or 0.0) >= RESERVE_MARGIN * finish_s:
        return None
    return (f"finishing trial {trial_id} now: of the configurations waiting at a ladder rung it "
            "is the best placed that can still finish (highest rung, then best value), and it "
            f"needs about {finish_s / 60:.1f} min at its own pace to train every fold, and "
            f"{max(0.0, left_s) / 60:.1f} min of the time budget are left; no configuration "
            "has finished yet, so the rest of the budget goes to finishing one before new "
            "configurations are drawn")


def hold_reason(*, left_s: float | None, continue_s: float, finish_s: float,
                trial_id: str) -> str | None:
    """Why a configuration that passed a rung waits there instead of going on, or None.

    It waits when its next stretch (``continue_s``, at its own pace) would leave less than
    ``RESERVE_MARGIN`` times ``finish_s``, what leader ``trial_id`` needs to finish every fold.
    The caller asks only while no configuration has finished, for a leader that can still
    finish (``finish_s <= left_s``) and is not the configuration asking.

    Args:
        left_s: Seconds the time budget has left (None: no budget, no reserve).
        continue_s: Seconds the asking configuration needs to reach its next rung.
        finish_s: Seconds the leader needs to finish.
        trial_id: The leader (named in the reason).
    """
    if left_s is None or finish_s > left_s or left_s - continue_s >= RESERVE_MARGIN * finish_s:
        return None
    return (f"waits here: going on (about {continue_s / 60:.1f} min) would leave too little of "
            f"the {max(0.0, left_s) / 60:.1f} min left to finish trial {trial_id}, the leader "
            f"(about {finish_s / 60:.1f} min at its own pace), and no configuration has finished "
            "yet; it goes on from here once one has")
