"""The report's short "At your site" section: pure, from the records ``calibrate`` and
``check`` wrote beside each export (metrics.json ``models.<family>.site``)."""

from __future__ import annotations

from typing import Any

from results.report.page import Block, fmt


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _ci(ci: list[float] | None) -> str:
    return "—" if not ci else f"{_pct(ci[0])}–{_pct(ci[1])}"


def site_blocks(models: dict[str, Any]) -> list[Block]:
    """The section, or nothing when no export has a site record."""
    cal_rows, check_rows = [], []
    rules = set()
    for family, m in models.items():
        site = m.get("site") or {}
        for r in site.get("thresholds", []):
            p, e = r.get("at_threshold") or {}, r.get("exported") or {}
            cal_rows.append([family.upper(), r["site"], str(r.get("date", ""))[:10],
                             f"{r['n_positive']} / {r['n_negative']}", fmt(r["threshold"], 4),
                             _pct(p.get("sensitivity_lower_bound")),
                             f"{_pct(p.get('specificity'))} ({_ci(p.get('specificity_interval'))})",
                             f"{_pct(e.get('sensitivity'))} / {_pct(e.get('specificity'))}"])
            rules.add(f"calibrate: {r['rule']}.")
        for r in site.get("checks", []):
            check_rows.append([family.upper(), r["site"], str(r.get("date", ""))[:10], r["n"],
                               fmt(r["distance"]), fmt(r["critical_distance"]),
                               fmt(r["p_value"]),
                               "label films and calibrate" if r["shifted"] else "no shift seen"])
            rules.add(f"check: {r['rule']}.")
    if not cal_rows and not check_rows:
        return []
    blocks = [Block("h2", "At your site")]
    if cal_rows:
        blocks.append(Block("table", headers=[
            "model", "site", "date", "pneumonia / normal films", "site threshold",
            "sensitivity lower bound", "specificity (95% CI)",
            "exported threshold there: sens / spec"], rows=cal_rows))
    if check_rows:
        blocks.append(Block("table", headers=[
            "model", "site", "date", "films", "distance", "same-site limit", "p", "verdict"],
            rows=check_rows))
    blocks.append(Block("p", " ".join(sorted(rules)) + " A check that sees no shift cannot "
                        "rule out one that mimics a change in the pneumonia share; only "
                        "labelled films (calibrate) can."))
    return blocks
