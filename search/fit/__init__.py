"""One fold's fit and what is measured on it: the fit itself (``fold_fit``), the shortcut
probes (``probes``), learning-curve diagnosis (``diagnosis``), failure reasons (``failures``)
and memory hygiene between fits (``memory``).

Imports ``search.errors``, ``search.runtime``, ``search.store`` and ``search.schedule``.
"""
