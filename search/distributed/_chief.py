"""Chief side: safe locking, worker liveness and orphaned trials on the chief's oracle."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.distributed._roles import (ASSIGNMENTS, DEFAULT_DEAD_AFTER_S, ENV_DEAD_AFTER_S,
                                       ORPHAN_PREFIX, env_float)
from search.runtime import compat


def safe_locked(func: Callable[..., Any]) -> Callable[..., Any]:
    """Takes KerasTuner's per-oracle lock like ``@synchronized``, but releases it on errors."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with compat.oracle_lock(self):
            return func(self, *args, **kwargs)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


class LivenessOracleMixin:
    """Mixed into the chief's oracle class at run time by :func:`attach_liveness`."""

    _cxr_seen: dict[str, float]
    _cxr_dead_after_s: float
    _cxr_stopping: bool

    def _cxr_log(self, event: str, trial_id: str | None, tuner_id: str | None, **extra: Any
                 ) -> None:
        record = {"time": time.time(), "event": event, "trial_id": trial_id,
                  "tuner_id": tuner_id, **extra}
        with contextlib.suppress(OSError):
            path = Path(compat.project_dir(self)) / ASSIGNMENTS
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def note_alive(self, tuner_id: str | None, trial_id: str | None = None) -> None:
        """Records contact from a worker; re-adopts an orphaned trial it still runs."""
        now = time.monotonic()
        if tuner_id:
            self._cxr_seen[tuner_id] = now
        if not (tuner_id and trial_id):
            return
        orphan = f"{ORPHAN_PREFIX}{trial_id}"
        ongoing = compat.ongoing_trials(self)
        if orphan in ongoing and tuner_id not in ongoing:
            ongoing[tuner_id] = ongoing.pop(orphan)
            compat.tuner_ids(self).add(tuner_id)
            self._cxr_log("adopted", trial_id, tuner_id)

    @safe_locked
    def create_trial(self, tuner_id: str) -> Any:
        trial_module = compat.trial_module()
        self.note_alive(tuner_id)
        self._cxr_reap_locked()
        if self._cxr_stopping and tuner_id not in compat.ongoing_trials(self):
            compat.tuner_ids(self).discard(tuner_id)
            return trial_module.Trial(self.get_space(),  # type: ignore[attr-defined]
                                      trial_id="stopped",
                                      status=trial_module.TrialStatus.STOPPED)
        had = tuner_id in compat.ongoing_trials(self)
        trial = super().create_trial(tuner_id)  # type: ignore[misc]
        if trial.status == trial_module.TrialStatus.RUNNING:
            self._cxr_log("resumed" if had else "assigned", trial.trial_id, tuner_id)
        elif trial.status == trial_module.TrialStatus.STOPPED:
            if any(t != tuner_id for t in compat.ongoing_trials(self)):
                # Trials still run elsewhere and may come back (their worker dies): keep this
                # worker waiting instead of letting it exit and leaving nobody to rerun them.
                compat.tuner_ids(self).add(tuner_id)
                return trial_module.Trial(self.get_space(),  # type: ignore[attr-defined]
                                          trial_id="idle", status=trial_module.TrialStatus.IDLE)
            # Some oracles (e.g. a capped one) return STOPPED without forgetting the tuner;
            # the chief only exits once every tuner has been told to stop.
            compat.tuner_ids(self).discard(tuner_id)
        return trial

    @safe_locked
    def update_trial(self, trial_id: str, metrics: dict[str, float], step: int = 0) -> Any:
        return super().update_trial(trial_id, metrics, step=step)  # type: ignore[misc]

    @safe_locked
    def end_trial(self, trial: Any) -> None:
        ongoing_ids = {t.trial_id for t in compat.ongoing_trials(self).values()}
        queue = compat.retry_queue(self)
        if trial.trial_id not in ongoing_ids and trial.trial_id in queue and \
                trial.status == "COMPLETED":
            # A worker declared dead finished after all: take its result, skip the rerun.
            queue.remove(trial.trial_id)
            ongoing_ids.add(trial.trial_id)
        if trial.trial_id not in ongoing_ids:
            # A retried EndTrial whose first attempt did land, or a worker declared dead that
            # finished after all: counting it twice would corrupt end_order and failure counts.
            self._cxr_log("ignored_end", trial.trial_id, None, status=trial.status)
            return
        owner = next((k for k, t in compat.ongoing_trials(self).items()
                      if t.trial_id == trial.trial_id), None)
        super().end_trial(trial)  # type: ignore[misc]
        self._cxr_log("ended", trial.trial_id, owner, status=trial.status)

    @safe_locked
    def reap(self) -> None:
        """Requeues the trials of workers silent for ``dead_after_s``; forgets dead workers."""
        self._cxr_reap_locked()

    def _cxr_reap_locked(self) -> None:
        now = time.monotonic()
        limit = self._cxr_dead_after_s
        ongoing = compat.ongoing_trials(self)
        changed = False
        for tuner_id in list(ongoing):
            # First sight of an entry (e.g. restored state) starts its grace period now.
            if now - self._cxr_seen.setdefault(tuner_id, now) <= limit:
                continue
            if self._cxr_stopping:
                # Budget spent: leave it ongoing so a resumed chief reruns it (fold-resumed).
                compat.tuner_ids(self).discard(tuner_id)
                continue
            trial = ongoing.pop(tuner_id)
            compat.retry_queue(self).append(trial.trial_id)
            compat.tuner_ids(self).discard(tuner_id)
            self._cxr_seen.pop(tuner_id, None)
            self._cxr_log("requeued", trial.trial_id, tuner_id,
                          reason=f"no contact for {limit:.0f} s")
            worker = tuner_id.removeprefix(ORPHAN_PREFIX)
            print(f"[chief] worker {worker} silent for {limit:.0f} s: "
                  f"trial {trial.trial_id} goes to the next worker that asks", flush=True)
            changed = True
        for tuner_id in list(compat.tuner_ids(self)):
            if tuner_id not in ongoing and now - self._cxr_seen.get(tuner_id, now) > limit:
                compat.tuner_ids(self).discard(tuner_id)
                self._cxr_seen.pop(tuner_id, None)
        if changed:
            self.save()  # type: ignore[attr-defined]

    def live_workers(self) -> list[str]:
        """Tuner ids heard from within ``dead_after_s``."""
        now = time.monotonic()
        return sorted(t for t, s in self._cxr_seen.items()
                      if not t.startswith(ORPHAN_PREFIX) and now - s <= self._cxr_dead_after_s)


def attach_liveness(oracle: Any, dead_after_s: float | None = None) -> Any:
    """Turns a KerasTuner oracle into a liveness-aware chief oracle, in place (idempotent).

    The oracle's class is swapped for a subclass with :class:`LivenessOracleMixin` in front, so
    any KerasTuner oracle (Hyperband, Bayesian, random) keeps its algorithm. Trials that were
    ongoing when a previous chief died (``Oracle.reload`` put them in the retry queue) become
    orphans held for ``dead_after_s``, so a worker still training one can claim it back.
    """
    if not isinstance(oracle, LivenessOracleMixin):
        cls = type(oracle)
        oracle.__class__ = type(f"Distributed{cls.__name__}", (LivenessOracleMixin, cls), {})
        oracle._cxr_seen = {}
        oracle._cxr_stopping = False
        trial_module = compat.trial_module()
        now = time.monotonic()
        for trial_id in list(compat.retry_queue(oracle)):
            trial = oracle.trials.get(trial_id)
            # RUNNING on disk = it was running when the chief went down; INVALID = a real retry.
            if trial is not None and trial.status == trial_module.TrialStatus.RUNNING:
                compat.retry_queue(oracle).remove(trial_id)
                compat.ongoing_trials(oracle)[f"{ORPHAN_PREFIX}{trial_id}"] = trial
                oracle._cxr_seen[f"{ORPHAN_PREFIX}{trial_id}"] = now
                oracle._cxr_log("orphaned", trial_id, None)
        _harden_display(oracle)
    oracle._cxr_dead_after_s = (env_float(ENV_DEAD_AFTER_S, DEFAULT_DEAD_AFTER_S)
                                if dead_after_s is None else dead_after_s)
    return oracle


def _harden_display(oracle: Any) -> None:
    """Makes the oracle's console display unable to fail an oracle call.

    Upstream ``Display.on_trial_end`` indexes ``trial_start[trial_id]``, which a restarted chief
    does not have for trials started by its predecessor: the ``KeyError`` would fail the
    worker's ``EndTrial`` after the result was recorded. Printing is not worth a lost trial.
    """
    display = compat.oracle_display(oracle)
    for name in ("on_trial_begin", "on_trial_end"):
        method = getattr(display, name)

        def safe(trial: Any, _method: Callable[[Any], None] = method) -> None:
            try:
                _method(trial)
            except Exception as err:  # noqa: BLE001 (cosmetic output only)
                print(f"[chief] trial {trial.trial_id}: {err!r} in the console display "
                      "(ignored)", flush=True)

        setattr(display, name, safe)

