"""Errors raised by the results package for user mistakes (missing runs, mismatched exports)."""

from __future__ import annotations

from data_pipeline.errors import UserError


class ResultsError(UserError):
    """A run folder, export or option is unusable for a results command; the message says why."""
