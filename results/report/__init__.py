"""The comparison report: the exported winners side by side on held-out test images.

``compare.py`` runs the evaluation (``compare_models``) on the images ``evaluation_data.py``
loads (the run's test split or a named folder, refused when it overlaps training), ``figures.py``
draws its figures,
``gradcam.py`` the Grad-CAM maps, ``sections.py`` writes the words (verdict, sections) and
``page.py`` renders them to ``report.md`` and ``report.html``.

The public names are re-exported here and imported on first use (PEP 562), so importing one
submodule (``results.plots`` uses ``figures.integer_epochs``) does not pull in scikit-learn,
SciPy or Keras through the others. Tests that monkeypatch a name patch it on its submodule
(``results.report.compare``), which is where the callers read it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "compare": ("compare_models", "probabilities"),
    "evaluation_data": ("check_test_dir", "is_synthetic", "load_test_data"),
    "figures": ("confusion_matrices", "integer_epochs", "learning_curves"),
    "gradcam": ("GradCamUnavailable", "border_share", "grad_cam", "pick_examples"),
    "page": ("Block", "write_report"),
    "sections": ("MIN_SPECIFICITY", "build_blocks", "shortcut_warnings", "verdict"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
