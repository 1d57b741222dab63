"""Search engine: k-fold KerasTuner tuners with fold-level resume, budgets, progress and
learning-curve diagnosis. Owns the run folder on disk (format in ARCHITECTURE.md).

Importing this package is cheap; the engine imports Keras when it runs.
"""

from __future__ import annotations

from search.config import SearchConfig, objective_direction, valid_objectives, validate
from search.errors import SearchError
from search.fit.diagnosis import combine as combine_diagnoses
from search.fit.diagnosis import diagnose
from search.store.lock import RunLock


def run_search_job(config: SearchConfig) -> dict:
    """Runs or resumes a search (see :func:`search.engine.run_search_job`)."""
    from search.engine import run_search_job as _run

    return _run(config)


__all__ = ["RunLock", "SearchConfig", "SearchError", "combine_diagnoses", "diagnose",
           "objective_direction", "run_search_job", "valid_objectives", "validate"]
