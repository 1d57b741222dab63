"""Each trial's ``cv.json``: the service's record of one configuration (schema in ARCHITECTURE.md).

:class:`TrialRecord` is the open trial's record: read once when the trial starts, then held in
memory and written atomically at every change (a finished fold, a ladder rung, the status), so
the tuner, the ladder's rung entries and the TensorBoard session all see one record and nothing
re-reads the file mid-trial. :func:`build_record` is the pure part: the record of a trial from
its folds. :func:`family_records` reads every trial of a family, the peers a ladder rung ranks
against (other workers' trials included, so it reads the disk each time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search.runtime.signals import critical
from search.store.files import read_json, write_json_atomic
from search.store.fold_records import fold_mean_std

CV_JSON = "cv.json"

# KerasTuner's Hyperband hyperparameters, kept under "hyperband" without their prefix.
HYPERBAND_KEYS = ("tuner/epochs", "tuner/initial_epoch", "tuner/bracket", "tuner/round",
                  "tuner/trial_id")


def family_records(family_dir: Path) -> list[dict[str, Any]]:
    """Every trial's ``cv.json`` in a family folder (workers' trials included)."""
    return [r for r in (read_json(p) for p in sorted(Path(family_dir).glob(f"trial_*/{CV_JSON}")))
            if r]


def build_record(*, previous: dict[str, Any], trial_id: str, family: str, tuner_id: str,
                 objective: str, direction: str, status: str, folds: list[dict[str, Any]],
                 values: dict[str, Any], session_s: float, diagnosis: str | None = None,
                 reason: str | None = None,
                 n_params: int | None = None, stopped: dict[str, Any] | None = None,
                 censored: bool = False) -> dict[str, Any]:
    """A trial's record from its finished folds.

    Args:
        previous: The record so far (``{}`` for a new trial): what an earlier session or a
            ladder rung wrote is kept (``n_params``, ``ladder``, the earlier sessions' time).
        trial_id, family, tuner_id: Which trial, and which process ran it ("tuner0" alone, the
            worker's id in a distributed search).
        objective, direction: The search objective.
        status: ``RUNNING``, ``COMPLETED``, ``SUSPENDED`` (waits at a ladder rung),
            ``PRUNED`` or ``FAILED``.
        folds: ``search.fit.fold_fit`` records of the finished folds.
        values: The trial's hyperparameter values (KerasTuner's ``tuner/`` ones included).
        session_s: Seconds this session has worked on the trial.
        diagnosis: The folds' combined learning-curve diagnosis (``search.fit.diagnosis``).
        reason: Why it failed or was stopped.
        n_params: The model's parameter count, when known.
        stopped: Where a rule stopped it inside a fold (fold, epoch, rule, partial metrics).
        censored: Stopped by the cost rule: the tuners take it as censored, not scored.
    """
    mean, std = fold_mean_std([f["best"] for f in folds])
    return {
        "trial_id": trial_id, "family": family, "status": status, "tuner_id": tuner_id,
        "objective": objective, "direction": direction, "mean": mean, "std": std,
        "folds": [{"fold": f["fold"], **f["best"], "best_epoch": f["best_epoch"],
                   "epochs_trained": f["epochs_trained"], "initial_epoch": f["initial_epoch"],
                   "fit_seconds": f["fit_seconds"],
                   "probe_seconds": f.get("probe_seconds"), "diagnosis": f["diagnosis"]}
                  for f in folds],
        "n_params": n_params if n_params is not None else previous.get("n_params"),
        # Wall time over all sessions that worked on this trial.
        "duration_s": round(previous.get("_session_base_s", 0.0) + session_s, 3),
        "diagnosis": diagnosis,
        "reason": reason,
        "censored": bool(censored),
        # Stopped inside a fold (ladder rung or cost): where, by which rule, and the partial
        # fold's metrics (the oracle's score when no fold finished).
        "stopped_in_fold": stopped,
        # The rungs it reached (search.schedule.ladder): later trials and workers rank against
        # them.
        "ladder": previous.get("ladder"),
        "hyperparameters": {k: v for k, v in values.items() if not k.startswith("tuner/")},
        "hyperband": {k.split("/")[1]: values[k] for k in HYPERBAND_KEYS if k in values} or None,
        "_session_base_s": previous.get("_session_base_s", 0.0),
    }


class TrialRecord:
    """The open trial's ``cv.json``: read once, held in memory, written at every change.

    Args:
        trial_dir: The trial's folder.
    """

    def __init__(self, trial_dir: Path):
        self.path = Path(trial_dir) / CV_JSON
        self.data: dict[str, Any] = read_json(self.path) or {}
        # What the trial had when this session opened it (None for a new trial).
        self.found: dict[str, Any] | None = dict(self.data) if self.data else None

    def save(self, data: dict[str, Any]) -> dict[str, Any]:
        """Replaces the record and writes it (a signal waits until the file is whole)."""
        with critical():
            write_json_atomic(self.path, data)
        self.data = data
        return data

    def update(self, **fields: Any) -> dict[str, Any]:
        """Sets ``fields`` and writes the record."""
        return self.save({**self.data, **fields})

    def start_session(self) -> None:
        """Carries the earlier sessions' time into ``duration_s`` of a resumed trial."""
        if self.data:
            self.update(_session_base_s=self.data.get("duration_s", 0.0))

    def add_rung(self, entry: dict[str, Any], bracket: int) -> None:
        """Writes one ladder rung at once (peers read it from the file); a rung measured again
        (a resumed fold) replaces the earlier entry, keeping whether it waited there."""
        ladder = dict(self.data.get("ladder") or {"bracket": bracket, "rungs": []})
        earlier = [e for e in ladder.get("rungs") or [] if int(e["rung"]) == int(entry["rung"])]
        if earlier and entry.get("promoted") and earlier[-1].get("value") == entry.get("value"):
            # The same measurement again (a finished fold's end, judged again after a resume):
            # the entry keeps when it was reached, its field then, and that it waited there.
            entry = {**earlier[-1], **{k: v for k, v in entry.items() if k == "resumed"},
                     "promoted": True}
        elif earlier and entry.get("promoted"):
            # That it waited at this rung and was resumed from it stays on record.
            entry = {**{k: earlier[-1][k] for k in ("suspended", "resumed") if k in earlier[-1]},
                     **entry}
        ladder["rungs"] = [e for e in ladder.get("rungs") or []
                           if int(e["rung"]) != int(entry["rung"])] + [entry]
        self.update(ladder=ladder)

    def resume_rung(self) -> dict[str, Any] | None:
        """Marks the rung where the ladder suspended the trial as passed (the oracle resumed
        it) and returns that entry, or None when no rung holds it."""
        rungs = (self.data.get("ladder") or {}).get("rungs") or []
        waiting = [e for e in rungs if e.get("suspended") and not e.get("promoted")]
        if not waiting:
            return None
        entry = {**waiting[-1], "promoted": True, "resumed": True}
        self.add_rung(entry, int((self.data.get("ladder") or {}).get("bracket", 0)))
        return entry

    def was_judged(self) -> bool:
        """An earlier session compared the trial with other configurations at a rung (or the
        oracle resumed it from one): the cost rule no longer applies to it."""
        return any(e.get("promoted") and (e.get("resumed") or (e.get("judged")
                                                              and int(e.get("field", 1)) > 1))
                   for e in (self.data.get("ladder") or {}).get("rungs") or [])

    def passed_rungs(self) -> set[int]:
        """The rungs the trial passed in earlier sessions."""
        return {int(e["rung"]) for e in (self.data.get("ladder") or {}).get("rungs", [])
                if e.get("promoted")}
