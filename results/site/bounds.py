"""Exact binomial (Clopper-Pearson) confidence bounds, and the sample size a bound needs.

Pure functions over counts. A site that labels ``n`` pneumonia films and finds ``x`` of them at or
above a threshold knows the threshold's sensitivity only up to sampling error; the one-sided
Clopper-Pearson lower bound is the smallest sensitivity consistent with ``x`` of ``n`` at the
given confidence. It never undercovers (it is exact, i.e. conservative for discrete counts).
"""

from __future__ import annotations

import math

from scipy import stats


def _check(x: int, n: int, confidence: float) -> None:
    if n < 0 or not 0 <= x <= n:
        raise ValueError(f"need 0 <= x <= n; got x={x}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")


def lower_bound(x: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson lower bound on a proportion.

    Args:
        x: successes (pneumonia films called positive).
        n: trials (pneumonia films).
        confidence: one-sided level, e.g. 0.95.

    Returns:
        The bound in [0, 1]; 0.0 when ``x == 0`` or ``n == 0``.
    """
    _check(x, n, confidence)
    if x == 0:
        return 0.0
    return float(stats.beta.ppf(1.0 - confidence, x, n - x + 1))


def upper_bound(x: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a proportion (1.0 when ``x == n``)."""
    _check(x, n, confidence)
    if x == n:
        return 1.0
    return float(stats.beta.ppf(confidence, x + 1, n - x))


def interval(x: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval at ``confidence`` (each tail ``(1 - confidence) / 2``)."""
    _check(x, n, confidence)
    if n == 0:
        return 0.0, 1.0
    one_sided = 1.0 - (1.0 - confidence) / 2.0
    return lower_bound(x, n, one_sided), upper_bound(x, n, one_sided)


def min_positives(floor: float, confidence: float = 0.95) -> int:
    """The fewest pneumonia films for which any threshold can meet ``floor``.

    With every one of ``n`` films found, the lower bound is ``(1 - confidence) ** (1 / n)``; it
    reaches ``floor`` once ``n >= log(1 - confidence) / log(floor)`` (29 films for a floor of
    0.90 at 95%). At exactly that ``n`` the only qualifying threshold sits below the lowest
    pneumonia score; more films let the threshold rise above a few of them.
    """
    if not 0.0 < floor < 1.0:
        raise ValueError(f"the sensitivity floor must be in (0, 1); got {floor}")
    _check(0, 0, confidence)
    n = math.ceil(math.log(1.0 - confidence) / math.log(floor))
    while lower_bound(n, n, confidence) < floor:  # guard against round-off at the boundary
        n += 1
    return n
