"""Errors raised for user mistakes (bad paths, bad values), as opposed to bugs.

Every package raises a subclass of :class:`UserError`; ``run_search.py`` prints its message and
exits with code 2 without a traceback. A message states the path or value received, the rule it
breaks, and the fix, in one paragraph.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input or configuration; the message says how to fix it."""

    exit_code = 2


class DataError(UserError):
    """The data folder or a data option is unusable."""
