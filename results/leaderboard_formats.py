"""Leaderboard rows -> CSV, Markdown, JSON files and a compact terminal table (pure + writers).

Each ``rows_to_*`` returns the text and, given a path, also writes it atomically so a reader
(a spreadsheet, the report) never sees a half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        for k in r:
            cols.setdefault(k, None)
    return list(cols)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


CSV_DIGITS = 8  # significant digits: far below any score's noise, far above float noise


def csv_value(value: Any) -> Any:
    """A CSV cell: floats to :data:`CSV_DIGITS` significant digits, so a spreadsheet shows 0.7
    and not 0.7000000000000001 (binary float noise); None as an empty cell; the rest as is."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.{CSV_DIGITS}g}"
    return value


def _fmt4(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def _atomic_write(path: Path, text: str) -> None:
    # Readers (a report being built, a user's spreadsheet) never see a half-written file.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def rows_to_csv(rows: list[dict[str, Any]], path: str | Path | None = None) -> str:
    """Rows -> CSV text (empty cells for missing values); written to ``path`` when given."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    cols = _columns(rows)
    writer.writerow(cols)
    for r in rows:
        writer.writerow([csv_value(r.get(c)) for c in cols])
    text = buf.getvalue()
    if path is not None:
        _atomic_write(Path(path), text)
    return text


def rows_to_markdown(rows: list[dict[str, Any]], path: str | Path | None = None) -> str:
    """Rows -> a GitHub-flavoured Markdown table; written to ``path`` when given."""
    cols = _columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c)).replace("|", "\\|") for c in cols) + " |")
    text = "\n".join(lines) + "\n"
    if path is not None:
        _atomic_write(Path(path), text)
    return text


def rows_to_json(rows: list[dict[str, Any]], path: str | Path | None = None) -> str:
    """Rows -> a JSON list of objects (NaN written as null); written to ``path`` when given."""
    clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
              for k, v in r.items()} for r in rows]
    text = json.dumps(clean, indent=2) + "\n"
    if path is not None:
        _atomic_write(Path(path), text)
    return text


WRITERS = {"csv": rows_to_csv, "md": rows_to_markdown, "json": rows_to_json}


def format_table(rows: list[dict[str, Any]], objective: str, *,
                 max_reason: int | None = None) -> str:
    """A compact fixed-width table for the terminal (the file holds every column).

    The reason is the last column and is shown whole by default: a cut kept "over the limit
    of 2,..." and lost the numbers and the fix. ``max_reason`` shortens it with
    ``search.fit.failures.short_reason`` (first sentence and fix kept).
    """
    if not rows:
        return "(no trials)"
    n_folds = sum(1 for c in _columns(rows) if re.fullmatch(rf"fold\d+_{re.escape(objective)}", c))
    # With a probe objective, clean val_auc beside it shows what the probe changed.
    clean = objective != "val_auc" and any(r.get("mean_val_auc") is not None for r in rows)
    # Hyperband: the rounds a configuration ran and the epochs of the round shown.
    rounds = any((r.get("rounds") or 1) > 1 or r.get("epochs") for r in rows)
    header = ["rank", "model", "trial", "status", *(["rounds", "epochs"] if rounds else []),
              f"{objective} mean+-std", "folds",
              *(["val_auc"] if clean else []), "n_params", "time_s", "diagnosis"]
    show_reason = any(r.get("reason") for r in rows)
    if show_reason:
        header.append("reason")
    table = [header]
    for r in rows:
        mean, std = r.get(f"mean_{objective}"), r.get(f"std_{objective}")
        score = "" if mean is None else f"{mean:.4f}" + ("" if std is None else f" +- {std:.4f}")
        folds = " ".join("-" if r.get(f"fold{k}_{objective}") is None
                         else f"{r[f'fold{k}_{objective}']:.3f}" for k in range(n_folds))
        line = [_cell(r.get("rank")), _cell(r.get("model")), _cell(r.get("trial_id")),
                _cell(r.get("status")),
                *([_cell(r.get("rounds")), _cell(r.get("epochs"))] if rounds else []),
                score, folds,
                *([_fmt4(r.get("mean_val_auc"))] if clean else []), _cell(r.get("n_params")),
                "" if r.get("duration_s") is None else f"{r['duration_s']:.1f}",
                _cell(r.get("diagnosis"))]
        if show_reason:
            reason = _cell(r.get("reason"))
            if max_reason is not None:
                from search.fit.failures import short_reason

                reason = short_reason(reason, max_reason)
            line.append(reason)
        table.append(line)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)
