"""Widths per layer from a base width and a hierarchy: the notes' layer-size patterns.

The base is always the *narrowest* layer, so every hierarchy stays within ``[base, cap]``:
``increasing`` doubles per layer (32, 64, 128: the notes' low->high), ``decreasing`` is its mirror
(128, 64, 32: high->low), ``constant`` repeats the base, and ``diamond`` rises then falls
(32, 64, 128, 64, 32: low->high->low). Widths are capped so deep stacks plateau instead of growing
without bound (the parameter budget rejects what is still too big).
"""

from __future__ import annotations

HIERARCHIES = ("increasing", "constant", "decreasing", "diamond")


def layer_widths(base: int, n_layers: int, hierarchy: str, *, factor: int = 2,
                 cap: int | None = None) -> list[int]:
    """Returns the width of each of ``n_layers`` layers.

    Args:
        base: Width of the narrowest layer (> 0).
        n_layers: Number of layers (>= 0).
        hierarchy: One of :data:`HIERARCHIES`.
        factor: Growth factor between neighbouring layers.
        cap: Largest allowed width, or None for no cap.

    Returns:
        A list of ``n_layers`` positive ints.

    Raises:
        ValueError: For an unknown hierarchy or non-positive base.
    """
    if hierarchy not in HIERARCHIES:
        raise ValueError(f"unknown hierarchy {hierarchy!r}; choose one of {HIERARCHIES}")
    if base <= 0 or n_layers < 0:
        raise ValueError(f"base must be > 0 and n_layers >= 0, got {base}, {n_layers}")
    if hierarchy == "constant":
        exponents = [0] * n_layers
    elif hierarchy == "increasing":
        exponents = list(range(n_layers))
    elif hierarchy == "decreasing":
        exponents = list(range(n_layers - 1, -1, -1))
    else:  # diamond: distance from the nearer end
        exponents = [min(i, n_layers - 1 - i) for i in range(n_layers)]
    widths = [base * factor**e for e in exponents]
    return [min(w, cap) if cap is not None else w for w in widths]


def placement(position: str, n_layers: int) -> list[bool]:
    """Which of ``n_layers`` layers get a dropout (or other per-layer) layer.

    Args:
        position: ``none``; ``all``/``every_block``; ``last``/``last_block``; ``first_half``
            (the first ceil(n/2) layers); ``second_half`` (the last ceil(n/2) layers). With an odd
            count the middle layer belongs to both halves, so one layer still gets dropout.
        n_layers: Number of layers.

    Returns:
        One flag per layer.
    """
    half = -(-n_layers // 2)
    rules = {
        "none": lambda i: False,
        "all": lambda i: True,
        "every_block": lambda i: True,
        "last": lambda i: i == n_layers - 1,
        "last_block": lambda i: i == n_layers - 1,
        "first_half": lambda i: i < half,
        "second_half": lambda i: i >= n_layers - half,
    }
    if position not in rules:
        raise ValueError(f"unknown placement {position!r}; choose one of {sorted(rules)}")
    return [rules[position](i) for i in range(n_layers)]
