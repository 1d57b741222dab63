"""The effective search space as rows (``space`` command, README tables, run reports)."""

from __future__ import annotations

from typing import Any

from spaces.space import SpaceConfig, load_space


def describe_space(family: str, space: SpaceConfig | None = None) -> list[dict[str, Any]]:
    """One row per hyperparameter of ``family``, in registration order.

    Args:
        family: ``"cnn"``, ``"ann"`` or ``"transfer"``.
        space: The effective space; None for the shipped defaults.

    Returns:
        Dicts with ``name``, ``type``, ``range`` ([min, max] or None), ``step``, ``choices``
        (list or None), ``default``, ``log`` (log-scale sampling), ``condition`` (when it is
        active, or None for always), ``active`` (False when the condition can never hold under
        this space), ``fixed`` and ``help``.

    Raises:
        SpaceError: Unknown family.
    """
    space = space if space is not None else load_space(None)
    dims = space.dims(family)
    rows = []
    for name, dim in dims.items():
        conditions = space.conditions(family, name)
        numeric = dim.type in ("int", "float")
        rows.append({
            "name": name,
            "type": dim.type,
            "range": [dim.min, dim.max] if numeric else None,
            "step": dim.step if numeric and not dim.fixed else None,
            "choices": (list(dim.values) if dim.type == "choice"
                        else [False, True] if dim.type == "bool" else None),
            "default": dim.default,
            "log": dim.sampling == "log" and not dim.fixed,
            "condition": " and ".join(c.describe() for c in conditions) or None,
            "active": all(c.active_values(dims[c.parent]) for c in conditions),
            "fixed": dim.fixed,
            "help": dim.help,
        })
    return rows


def format_table(rows: list[dict[str, Any]], prices: dict[str, str] | None = None,
                 price_head: str = "price") -> str:
    """A plain-text table of :func:`describe_space` rows for the terminal.

    Args:
        rows: :func:`describe_space` rows.
        prices: ``{name: text}`` of ``spaces.prices.price_text``; None: no price column.
        price_head: The price column's heading (names the image size and the machine).
    """
    header = ("name", "type", "range / choices", "default", "active when", "note")
    if prices is not None:
        header = header[:5] + (price_head,) + header[5:]
    lines = [header]
    for r in rows:
        if r["fixed"]:
            span = "(fixed)"
        elif r["range"] is not None:
            span = f"{r['range'][0]:g} .. {r['range'][1]:g}" + (" log" if r["log"] else "")
            span += f" step {r['step']:g}" if r["step"] and not r["log"] else ""
        else:
            span = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in r["choices"])
        default = str(r["default"]).lower() if isinstance(r["default"], bool) else f"{r['default']:g}" \
            if isinstance(r["default"], float) else str(r["default"])
        note = r["help"] if r["active"] else "never active under this space"
        cells = (r["name"], r["type"], span, default, r["condition"] or "always")
        if prices is not None:
            cells += (prices.get(r["name"], "") or "",)
        lines.append(cells + (note,))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1]
                     for line in lines)
