"""Learning-curve diagnosis: the notes' manual reading of train vs validation loss, automated.

``diagnose(history)`` looks only at ``loss`` and ``val_loss`` (per-epoch lists, as in a Keras
``History.history``) and returns one label. Rules, checked in this order (first match wins):

1. ``unstable``  - a non-finite loss, or the validation loss changes direction
   (down/up/down or up/down/up, the notes' "high, low, high") at least ``MIN_REVERSALS`` (2)
   times with moves larger than ``OSC_TOL`` (10 %) of the mean validation loss.
2. ``overfitting`` - the validation loss ends more than ``OVERFIT_RISE`` (10 %) above its
   minimum while the training loss kept falling after that minimum.
3. ``not_converged`` - the validation loss is still improving at the last epoch: its last value
   is its minimum and at least ``STILL_IMPROVING`` (1 %) below every earlier value. A history
   of one epoch is always ``not_converged`` (too short to judge).
4. ``underfitting`` - the final training loss is above ``HIGH_LOSS`` (0.55; chance level for
   binary cross-entropy is ln 2 = 0.693), or the training loss is not below the validation
   loss at the end.
5. ``good_fit`` - none of the above.

A trial's label is the most common fold label (ties go to the earlier label in ``LABELS``).
Pure functions, no IO.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

LABELS = ("unstable", "overfitting", "not_converged", "underfitting", "good_fit")
MIN_REVERSALS = 2
OSC_TOL = 0.10
OVERFIT_RISE = 0.10
STILL_IMPROVING = 0.01
HIGH_LOSS = 0.55


def _reversals(values: Sequence[float], tol: float) -> int:
    """Counts direction changes among moves larger than ``tol``; small wiggles are ignored."""
    signs = []
    for a, b in zip(values, values[1:]):
        if abs(b - a) > tol:
            signs.append(1 if b > a else -1)
    return sum(1 for s, t in zip(signs, signs[1:]) if s != t)


def diagnose(history: Mapping[str, Sequence[float]]) -> str:
    """Labels one learning curve.

    Args:
        history: ``{"loss": [...], "val_loss": [...], ...}``, one value per epoch.

    Returns:
        One of ``good_fit``, ``overfitting``, ``underfitting``, ``unstable``,
        ``not_converged`` (see the module docstring for the rules and thresholds).
    """
    train = [float(v) for v in history.get("loss", [])]
    val = [float(v) for v in history.get("val_loss", [])]
    if not train or not val:
        return "not_converged"
    if not all(math.isfinite(v) for v in train + val):
        return "unstable"
    n = min(len(train), len(val))
    train, val = train[:n], val[:n]
    if n == 1:
        return "not_converged"

    mean_val = sum(val) / n
    if _reversals(val, OSC_TOL * mean_val) >= MIN_REVERSALS:
        return "unstable"

    best = min(range(n), key=lambda i: val[i])
    if best < n - 1 and val[-1] > val[best] * (1 + OVERFIT_RISE) and train[-1] < train[best]:
        return "overfitting"

    if best == n - 1 and val[-1] < min(val[:-1]) * (1 - STILL_IMPROVING):
        return "not_converged"

    if train[-1] > HIGH_LOSS or train[-1] >= val[-1]:
        return "underfitting"
    return "good_fit"


def combine(labels: Iterable[str]) -> str:
    """Returns the trial-level label: the most common fold label, ties by ``LABELS`` order."""
    counts = Counter(labels)
    if not counts:
        return "not_converged"
    top = max(counts.values())
    return next(label for label in LABELS if counts.get(label) == top)
