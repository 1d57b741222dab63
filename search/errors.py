"""The search package's user-facing error type.

``SearchError`` belongs in ``data_pipeline.errors`` (ARCHITECTURE.md lists it among the
``UserError`` subclasses); until that module defines it, this adapter does, so ``run_search.py``
still prints the message and exits 2.
"""

from __future__ import annotations

from data_pipeline import errors as _errors

UserError = _errors.UserError

if hasattr(_errors, "SearchError"):
    SearchError = _errors.SearchError  # type: ignore[misc]
else:

    class SearchError(UserError):  # type: ignore[no-redef]
        """The search configuration or the run folder is unusable (message says the fix)."""


__all__ = ["SearchError", "UserError"]
