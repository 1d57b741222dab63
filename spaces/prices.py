"""The measured price of each value of the search space (``benchmarks/space_cost.py``).

``spaces/space_prices.json`` holds, per family and image size, each value's seconds per training
epoch over the space default's, measured on an idle machine that the file names. The ``space``
command shows them, so a user sees which values cost several times the others before a search
spends its budget on them. Absent file: no prices are shown (nothing is guessed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PRICES_JSON = Path(__file__).with_name("space_prices.json")


def load_prices(path: Path | None = None) -> dict[str, Any] | None:
    """The price table, or None when it was never measured (or cannot be read)."""
    try:
        return json.loads(Path(path or PRICES_JSON).read_text())
    except (OSError, ValueError):
        return None


def price_text(prices: dict[str, Any] | None, family: str, size: int, name: str) -> str:
    """``equalize 1.1x, per_image 1.0x`` for one dimension at ``size`` px ('' when unpriced).

    Only values that differ from the default's price by 10% or more are named, so the column
    stays readable; ``-`` says every value costs about the same.
    """
    table = (((prices or {}).get("families") or {}).get(family) or {}).get(str(size))
    if not table:
        return ""
    values = (table.get("prices") or {}).get(name)
    if not values:
        return ""
    shown = [f"{json.loads(v) if v.startswith(chr(34)) else v} {r:.1f}x"
             for v, r in values.items() if abs(r - 1.0) >= 0.1]
    return ", ".join(shown) or "-"


def priced_sizes(prices: dict[str, Any] | None, family: str) -> list[int]:
    """Image sizes with a price table for ``family``."""
    table = ((prices or {}).get("families") or {}).get(family) or {}
    return sorted(int(s) for s in table)
