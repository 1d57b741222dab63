"""The successive-halving ladder: one rule that decides which configurations get more budget.

Every configuration climbs the same ladder, whose budget unit is fold-epochs (asynchronous
successive halving, ASHA; Li et al. 2020, Optuna's ``SuccessiveHalvingPruner``):

* **Rungs.** With ``--first-rung`` r (epochs), factor ``eta`` = :data:`ETA` and ``--max-epochs``
  E, a configuration is judged after ``r``, ``r * eta``, ... epochs of its first fold (while at
  most half of E: later in the fold the rest costs less than the rung saves), then at the end
  of its first fold (the objective of the fold's restored weights); the configurations that
  pass that rung train their other folds. For E = 30 and r = 2: fold 0 at 2 and 6 epochs, fold
  0's end, then every fold. The rungs count the epochs of the trial's round, so a continued
  Hyperband round (``--tuner hyperband``) climbs its own ladder against the trials of the same
  round length (:func:`budget_of`).
* **Rank by the objective at the rung.** A rung's value is the search objective measured on the
  fold's validation images at that moment: for the probe objectives (``val_auc_geometric``,
  the default) the probe on the current weights (about a second), so the rank is the one the
  search finally selects by, not the clean AUC that saturates near 0.98 for any augmented
  learner.
* **Promotion.** A configuration goes on when its value is in the top ``1/eta`` of the values
  of every configuration that reached the rung, itself included (rank <= ``ceil(n / eta)``);
  otherwise it is stopped there as ``PRUNED``. A rung with fewer than ``eta`` configurations
  suspends the configuration (below); in a Hyperband round, where suspension does not apply,
  the first configuration at a rung goes on and the second must beat the first. The space's
  defaults are the first trial and climb like every other configuration. Nothing else stops a
  trial for its quality: racing after a fold and the margin rule inside a fold of earlier
  versions are this ladder now.
* **Suspension.** A rung with fewer than ``eta`` configurations cannot rank anyone into a top
  ``1/eta``. Under the single-budget tuners (random, Bayesian, TPE: trials run one after
  another, so the first configurations are always alone at a rung) such a configuration is
  *suspended* there instead of promoted: its weights and optimizer state at the rung are kept
  (``search.fit.fold_fit``), its record says ``SUSPENDED``, and the search draws the next
  configuration. The oracle resumes a suspended configuration (:func:`pick_promotion`, asked
  before every new draw) once at least ``eta`` configurations reached its rung and it ranks in
  their top ``1/eta``, the highest rung first, as ASHA promotes; at the search's end (no new
  configuration can reach a rung: the trial cap, or too little time left) it resumes the
  leaders of the rungs whatever the field. Under ``--time-budget``, while no configuration has
  finished, the tuner also keeps the time the leader needs to finish (``search.schedule.cost``,
  "Finish reserve"; :func:`seconds_to_finish`) and resumes it before that time is gone. A
  resumed configuration continues from the rung, never from scratch. Without this, a lone first configuration (the space's defaults) is
  promoted at every rung and trains every fold before anything else is looked at: measured on
  the reference settings, it filled the whole 30-minute budget (``benchmarks/RESULTS.md``).
  Hyperband rounds are not suspended: a round already starts a batch of configurations
  together.
* **Brackets.** ``--ladder-brackets B`` runs B ladders side by side (Hyperband over the
  ladder, as Optuna's ``HyperbandPruner``): trial ``i`` joins bracket ``i mod B``, which is
  first judged at rung ``bracket`` and compared only with its own bracket. Bracket 0 is the
  aggressive ladder; later brackets protect slow starters by judging them later.

Why not Optuna's pruner objects: they judge a ``Study``'s trials at absolute steps, while here
a rung spans folds, peers are any worker's trials on disk (``cv.json``), and a Hyperband round
has its own ladder. The rule is theirs; the reduction factor and first rung were chosen by
replaying it on recorded per-epoch probe curves of the shared training folder
(``benchmarks/ladder_replay.py``; figures in ``benchmarks/RESULTS.md``, "The ladder").

This module is pure: rungs, ranks and verdicts from values; the tuner feeds it and records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable


ETA = 3
DEFAULT_FIRST_RUNG = 2
DEFAULT_BRACKETS = 1


@dataclass(frozen=True)
class Rung:
    """One rung of the ladder.

    Attributes:
        index: 0 for the first rung.
        fold: The fold whose training reaches the rung (0: the ladder's folds are fold 0 first).
        epoch: Epochs into the fold's round for a rung inside a fold; None for a fold's end.
    """

    index: int
    fold: int
    epoch: int | None

    def describe(self) -> str:
        """``fold 1 at epoch 2`` or ``the end of fold 1``."""
        if self.epoch is None:
            return f"the end of fold {self.fold + 1}"
        return f"fold {self.fold + 1} at epoch {self.epoch}"


def rungs(max_epochs: int, first: int = DEFAULT_FIRST_RUNG, eta: int = ETA) -> list[Rung]:
    """The ladder for folds of ``max_epochs`` epochs (a Hyperband round's length for rounds).

    Args:
        max_epochs: Epochs of a fold's round.
        first: Epochs of the first rung.
        eta: Reduction factor: each in-fold rung is ``eta`` times the one before.

    Returns:
        The in-fold rungs of fold 0 (``first * eta**i``, at most half of ``max_epochs``), then
        the end of fold 0. Completing every fold is the ladder's top, not a rung.
    """
    out: list[Rung] = []
    epoch = max(1, int(first))
    while epoch * 2 <= max_epochs:
        out.append(Rung(len(out), 0, epoch))
        epoch *= max(2, int(eta))
    out.append(Rung(len(out), 0, None))
    return out


def describe(ladder_rungs: list[Rung], brackets: int = DEFAULT_BRACKETS, eta: int = ETA) -> str:
    """``epochs 2 and 6 of fold 1 and its end; the top third at each rung goes on ...`` (the
    progress line before a search starts)."""
    epochs = [str(r.epoch) for r in ladder_rungs if r.epoch is not None]
    where = (f"epoch{'s' * (len(epochs) > 1)} {' and '.join(epochs)} of fold 1 and its end"
             if epochs else "the end of fold 1")
    keep = "third" if eta == 3 else f"1/{eta}"
    text = f"{where}; the top {keep} at each rung goes on to the other folds"
    if brackets > 1:
        text += f" ({brackets} brackets: bracket b is first judged at rung b + 1)"
    return text


def bracket_of(trial_id: str, brackets: int) -> int:
    """The bracket of a trial: its number modulo ``brackets`` (round robin, reproducible from
    the id alone, so every worker agrees without talking)."""
    if brackets <= 1:
        return 0
    try:
        number = int(str(trial_id).lstrip("0") or "0")
    except ValueError:
        number = sum(map(ord, str(trial_id)))
    return number % brackets


def keep_count(n: int, eta: int = ETA) -> int:
    """How many of ``n`` configurations at a rung go on: the top ``ceil(n / eta)``, at least 1."""
    return max(1, math.ceil(n / eta))


def rank_of(value: float, field: Iterable[float], direction: str) -> int:
    """1-based rank of ``value`` among ``field`` (which includes it); ties share the best rank.

    A non-finite value ranks last.
    """
    def key(v: float) -> float:
        if not math.isfinite(v):
            return -math.inf if direction == "max" else math.inf
        return v

    mine = key(value)
    if direction == "max":
        return 1 + sum(1 for v in field if key(v) > mine)
    return 1 + sum(1 for v in field if key(v) < mine)


@dataclass(frozen=True)
class Verdict:
    """A configuration's verdict at a rung.

    Attributes:
        promoted: It goes on.
        rank: Its rank among the configurations at the rung (1 = best).
        field: How many configurations reached the rung, itself included.
        keep: How many of them go on (:func:`keep_count`).
        boundary: The value at rank ``keep`` (the last one that goes on).
    """

    promoted: bool
    rank: int
    field: int
    keep: int
    boundary: float


def verdict(value: float, peers: list[float], direction: str, eta: int = ETA) -> Verdict:
    """Promotes ``value`` when it is in the top ``1/eta`` of ``peers + [value]``.

    Args:
        value: The configuration's objective at the rung.
        peers: The values of the other configurations that reached the rung (same bracket,
            same round length).
        direction: ``max`` or ``min``.
        eta: Reduction factor.
    """
    field = [float(v) for v in peers] + [float(value)]
    keep = keep_count(len(field), eta)
    rank = rank_of(float(value), field, direction)
    ordered = sorted((v for v in field if math.isfinite(v)), reverse=direction == "max")
    boundary = ordered[min(keep, len(ordered)) - 1] if ordered else math.nan
    return Verdict(rank <= keep, rank, len(field), keep, boundary)


def reason(v: Verdict, rung: Rung, value: float, metric: str) -> str:
    """The pruned trial's reason, naming the rung, its value and the field."""
    return (f"pruned at {rung.describe()} (ladder rung {rung.index + 1}): {metric} "
            f"{value:.4f} ranks {v.rank} of {v.field}; only the top {v.keep} go on "
            f"(boundary {v.boundary:.4f})")


# -- records ------------------------------------------------------------------------------------
def budget_of(cv: dict[str, Any]) -> tuple[int, int] | None:
    """A trial's epoch budget per fold: its Hyperband round as ``(epochs, initial_epoch)``
    (``tuner/epochs``, ``tuner/initial_epoch``), or None for the tuners with one budget.

    Both ends, because a fresh single round at ``--max-epochs`` (the plan's fallback when few
    trials are left) and a bracket's continued last round end at the same epoch, yet one
    starts from scratch and the other from carried weights.
    """
    hb = cv.get("hyperband") or {}
    if hb.get("epochs") is None:
        return None
    return int(hb["epochs"]), int(hb.get("initial_epoch") or 0)


def rung_entries(cv: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """``{rung index: entry}`` of a trial's ``cv.json`` ladder record."""
    ladder = cv.get("ladder") or {}
    return {int(e["rung"]): e for e in ladder.get("rungs") or [] if e.get("value") is not None}


def peer_values(records: Iterable[dict[str, Any]], rung: int, *, budget: tuple[int, int] | None,
                bracket: int, exclude: str) -> list[float]:
    """The values other trials recorded at ``rung`` (same round length and bracket).

    A censored trial (stopped for cost, ``search.schedule.cost``) counts where it reached: its
    values
    were measured like anyone's; what it did not reach, it does not claim.
    """
    out = []
    for cv in records:
        if str(cv.get("trial_id")) == str(exclude) or budget_of(cv) != budget:
            continue
        if int((cv.get("ladder") or {}).get("bracket", 0)) != bracket:
            continue
        entry = rung_entries(cv).get(rung)
        if entry is not None:
            out.append(float(entry["value"]))
    return out


def seconds_to_first_rung(records: Iterable[dict[str, Any]],
                          budget: tuple[int, int] | None = None) -> float | None:
    """The median wall seconds that the trials of ``budget`` took to reach their first rung
    (build, compile and the first epochs), or None before any reached it."""
    seen = sorted(float(e["seconds"]) for cv in records if budget_of(cv) == budget
                  for e in [rung_entries(cv).get(0)] if e and e.get("seconds") is not None)
    if not seen:
        return None
    mid = len(seen) // 2
    return seen[mid] if len(seen) % 2 else (seen[mid - 1] + seen[mid]) / 2


def slowest_first_rung(records: Iterable[dict[str, Any]]) -> float | None:
    """The longest wall seconds a single-budget configuration took to reach its first rung, or
    None before any did. The finish reserve plans with it: the search asks again only when a
    new configuration reaches its first rung, and the dearest draws take several times the
    median to get there."""
    seen = [float(e["seconds"]) for cv in records if budget_of(cv) is None
            for e in [rung_entries(cv).get(0)] if e and e.get("seconds") is not None]
    return max(seen) if seen else None


def must_wait(field: int, eta: int = ETA) -> bool:
    """True when a rung of ``field`` configurations (the judged one included) is too small to
    rank anyone into a top ``1/eta``: the configuration is suspended there, not judged."""
    return field < max(2, int(eta))


@dataclass(frozen=True)
class Standing:
    """Where one configuration stands on the ladder (what the oracle knows of it).

    Attributes:
        trial_id: The trial.
        bracket: Its ladder bracket (:func:`bracket_of`).
        rungs: ``{rung index: value}`` it reported.
        suspended: It waits at its highest rung.
    """

    trial_id: str
    bracket: int
    rungs: dict[int, float]
    suspended: bool = False

    @property
    def top_rung(self) -> int | None:
        """Its highest rung, or None before the first."""
        return max(self.rungs) if self.rungs else None


def standings_of(records: Iterable[dict[str, Any]]) -> list[Standing]:
    """The standings of the single-budget configurations in ``records`` (``cv.json``), as the
    oracle knows them: their bracket, rung values and whether they wait (``SUSPENDED``)."""
    return [Standing(str(cv.get("trial_id")), int((cv.get("ladder") or {}).get("bracket", 0)),
                     {k: float(e["value"]) for k, e in rung_entries(cv).items()},
                     cv.get("status") == "SUSPENDED")
            for cv in records if budget_of(cv) is None and cv.get("trial_id") is not None]


def promotion_order(standings: Iterable[Standing], direction: str, *, finishing: bool = False,
                    eta: int = ETA) -> list[str]:
    """The suspended configurations that may go on now, the one to resume first first.

    A suspended configuration may go on when it ranks in the top ``1/eta`` of every
    configuration of its bracket that reached its rung, and at least ``eta`` did (while new
    configurations still arrive, a smaller field says nothing). ``finishing`` (no new
    configuration can reach a rung) drops the field's minimum: the rung's leaders are finished
    instead of waiting for peers that will not come. Order: the highest rung first (finishing a
    leader is worth more than starting its rivals), then the best value, then the lowest trial
    id.

    Args:
        standings: Every configuration the oracle knows (suspended or not).
        direction: ``max`` or ``min``.
        finishing: No new configuration will reach a rung.
        eta: Reduction factor.
    """
    standings = list(standings)
    sign = -1.0 if direction == "max" else 1.0
    ready = []
    for s in standings:
        rung = s.top_rung
        if not s.suspended or rung is None or not math.isfinite(s.rungs[rung]):
            continue
        peers = [o.rungs[rung] for o in standings
                 if o.trial_id != s.trial_id and o.bracket == s.bracket and rung in o.rungs]
        v = verdict(s.rungs[rung], peers, direction, eta)
        if v.promoted and (finishing or not must_wait(v.field, eta)):
            ready.append((-rung, sign * s.rungs[rung], s.trial_id))
    return [tid for *_, tid in sorted(ready)]


def pick_promotion(standings: Iterable[Standing], direction: str, *, finishing: bool = False,
                   eta: int = ETA) -> str | None:
    """The suspended configuration to resume next (the first of :func:`promotion_order`), or
    None to draw a new one."""
    order = promotion_order(standings, direction, finishing=finishing, eta=eta)
    return order[0] if order else None


def finish_order(standings: Iterable[Standing], direction: str) -> list[str]:
    """Every suspended configuration, the best-evidenced first: the highest rung, then the best
    value there, then the lowest trial id. The finish reserve (``search.schedule.cost``) takes
    the first of them that can still finish, whatever its rank at the rung: when the rung's
    leader cannot finish in the time left, the next best that can is worth more than none."""
    sign = -1.0 if direction == "max" else 1.0
    ready = sorted((-s.top_rung, sign * s.rungs[s.top_rung], s.trial_id) for s in standings
                   if s.suspended and s.top_rung is not None
                   and math.isfinite(s.rungs[s.top_rung]))
    return [tid for *_, tid in ready]


def stretch_epochs(ladder_rungs: list[Rung], rung: Rung, folds: int,
                   round_epochs: int) -> tuple[int, int]:
    """Epochs from ``rung`` to the next rung of ``ladder_rungs`` (or through the other folds
    after the last rung) and to the end of every fold: what a configuration passing ``rung``
    trains next, and what it needs to finish."""
    later_folds = (folds - rung.fold - 1) * round_epochs
    if rung.epoch is None:  # a fold's end: the next fold's end, or every fold left
        has_next = any(r.fold == rung.fold + 1 and r.epoch is None for r in ladder_rungs)
        return (round_epochs if has_next else later_folds), later_folds
    nxt = min((r.epoch for r in ladder_rungs
               if r.fold == rung.fold and r.epoch is not None and r.epoch > rung.epoch),
              default=round_epochs)
    return nxt - rung.epoch, round_epochs - rung.epoch + later_folds


def _progress(cv: dict[str, Any]) -> tuple[int, int, int]:
    """(folds finished, epochs into the open fold at its last rung, epochs trained) of a
    ``cv.json`` record."""
    done = cv.get("folds") or []
    entries = rung_entries(cv)
    top = entries[max(entries)] if entries else {}
    in_fold = (int(top["epoch"]) if top.get("epoch") is not None
               and int(top.get("fold", 0)) == len(done) else 0)
    epochs = sum(int(f.get("epochs_trained", 0)) - int(f.get("initial_epoch", 0))
                 for f in done) + in_fold
    return len(done), in_fold, epochs


def pace_of(cv: dict[str, Any]) -> float | None:
    """A configuration's wall seconds per epoch so far (building, validation and probes
    included), from its ``cv.json``; None before it trained an epoch."""
    epochs = _progress(cv)[2]
    spent = float(cv.get("duration_s") or 0.0)
    return spent / epochs if epochs > 0 and spent > 0 else None


def seconds_to_finish(cv: dict[str, Any], folds: int, max_epochs: int) -> float | None:
    """Wall seconds a suspended configuration needs to train every fold to ``max_epochs``.

    An upper bound: its own pace so far (the trial's wall seconds over the epochs it trained,
    so building, validation and probes are included) times the epochs left at full length
    (early stopping may end a fold sooner). None before it trained an epoch.

    Args:
        cv: The configuration's ``cv.json`` record.
        folds: Folds of the search.
        max_epochs: Epochs of a full fold.
    """
    pace = pace_of(cv)
    if pace is None:
        return None
    done, in_fold, _ = _progress(cv)
    return pace * max(0, (folds - done) * max_epochs - in_fold)
