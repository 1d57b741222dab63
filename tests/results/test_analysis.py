"""Analysis: effects of categorical and numeric dimensions, and the dropout hypothesis verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from results.analysis import (
    analyze_rows, check_dropout_hypothesis, dimension_effects, dropout_bin, spearman)
from run_search import main


def _row(score: float, **params) -> dict:
    return {"status": "COMPLETED", "model": "ann", "mean_val_auc": score,
            **{f"param_{k}": v for k, v in params.items()}}


def test_spearman_matches_scipy() -> None:
    from scipy.stats import spearmanr

    x, y = [1, 2, 2, 5, 3, 9], [0.3, 0.1, 0.4, 0.9, 0.5, 0.7]
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_dimension_effects_rank_the_driving_dimension_first() -> None:
    rows = [_row(0.9 if opt == "adam" else 0.6, optimizer=opt, pooling=pool, learning_rate=lr)
            for opt, pool, lr in [("adam", "max", 1e-3), ("adam", "average", 1e-2),
                                  ("sgd", "max", 1e-4), ("sgd", "average", 3e-3),
                                  ("adam", "max", 5e-4), ("sgd", "average", 2e-3)]]
    rows.append({"status": "FAILED", "model": "ann", "mean_val_auc": None,
                 "param_optimizer": "rmsprop"})
    effects = dimension_effects(rows, "val_auc")
    assert effects[0]["name"] == "optimizer" and effects[0]["effect"] == pytest.approx(1.0)
    assert effects[0]["by_value"]["adam"] == {"mean": 0.9, "std": 0.0, "count": 3}
    assert "rmsprop" not in effects[0]["by_value"]  # failed trials carry no score
    lr = next(e for e in effects if e["name"] == "learning_rate")
    assert lr["kind"] == "numeric" and lr["spearman"] is not None
    pooling = next(e for e in effects if e["name"] == "pooling")
    assert pooling["effect"] < 0.2


def test_thin_dimensions_are_flagged_not_ranked() -> None:
    rows = [_row(0.8, head="flatten", lr=0.1), _row(0.7, head="global_average", lr=0.2)]
    for e in dimension_effects(rows, "val_auc"):
        assert e["effect"] is None and e["note"]


def test_dropout_bins() -> None:
    assert dropout_bin(0.2) == "0.2" and dropout_bin(0.25) == "0.2"
    assert dropout_bin(0.5) == "0.5" and dropout_bin(0.4) == "0.5"
    assert dropout_bin(0.0) is None and dropout_bin(None) is None
    assert dropout_bin(0.2, "none") is None and dropout_bin(0.2, "all") == "0.2"


def _hyp_rows(low_hi_02: float, low_hi_05: float, hi_lo_02: float, hi_lo_05: float,
              spread: float = 0.001) -> list[dict]:
    rows = []
    for hier, rate, base in [("increasing", 0.2, low_hi_02), ("increasing", 0.5, low_hi_05),
                             ("decreasing", 0.2, hi_lo_02), ("decreasing", 0.5, hi_lo_05)]:
        for d in (-spread, spread):
            rows.append(_row(base + d, dense_hierarchy=hier, dense_dropout_rate=rate,
                             dense_dropout="all"))
    return rows


@pytest.mark.parametrize("scores, direction, verdict", [
    ((0.90, 0.80, 0.80, 0.90), "max", "confirmed"),
    ((0.80, 0.90, 0.80, 0.90), "max", "not confirmed"),
    ((0.10, 0.20, 0.20, 0.10), "min", "confirmed"),  # a loss objective: lower is better
    ((0.90, 0.80, 0.80, 0.90), "min", "not confirmed"),
])
def test_dropout_hypothesis_verdicts(scores, direction, verdict) -> None:
    res = check_dropout_hypothesis(_hyp_rows(*scores), "val_auc", direction, "dense_hierarchy",
                                   "dense_dropout_rate", "dense_dropout")
    assert res["verdict"] == verdict
    assert res["cells"]["low->high"]["0.2"]["count"] == 2


def test_dropout_hypothesis_within_noise_is_direction_only() -> None:
    res = check_dropout_hypothesis(_hyp_rows(0.801, 0.80, 0.80, 0.801, spread=0.05), "val_auc",
                                   "max", "dense_hierarchy", "dense_dropout_rate", "dense_dropout")
    assert res["verdict"] == "direction only"


def test_dropout_hypothesis_not_enough_trials() -> None:
    rows = _hyp_rows(0.9, 0.8, 0.8, 0.9)[:-1]
    for r in rows[:2]:
        r["param_dense_dropout"] = "none"  # dropout off: the rate is not applied
    res = check_dropout_hypothesis(rows, "val_auc", "max", "dense_hierarchy",
                                   "dense_dropout_rate", "dense_dropout")
    assert res["verdict"] == "not enough trials"
    assert "low->high x 0.2" in res["detail"] and "high->low x 0.5" in res["detail"]


def test_absent_params_are_handled() -> None:
    res = analyze_rows([_row(0.9, optimizer="adam")], "val_auc", "max", "ann")
    assert res["hypotheses"] == [] and res["n_completed"] == 1


def test_analyze_command_writes_files(fake_run_dir: Path, capsys) -> None:
    assert main(["analyze", "--run-dir", str(fake_run_dir)]) == 0
    out = capsys.readouterr().out
    assert "What the search learned" in out and "not enough trials" in out
    adir = fake_run_dir / "analysis"
    data = json.loads((adir / "analysis.json").read_text())
    assert [d["family"] for d in data] == ["cnn", "ann"]
    cnn_hyp = {h["hierarchy_param"] for h in data[0]["hypotheses"]}
    assert cnn_hyp == {"filter_hierarchy"}  # the fake CNN trials have no dense_hierarchy
    assert (adir / "analysis.png").read_bytes()[:4] == b"\x89PNG"
    assert (adir / "analysis.md").is_file()


def test_probe_agreement_finds_where_clean_auc_and_a_probe_disagree():
    from results.analysis import probe_agreement

    rows = [{"trial_id": t, "status": "COMPLETED", "mean_val_auc": c, "mean_val_auc_geometric": g}
            for t, c, g in (("a", 0.995, 0.91), ("b", 0.991, 0.98), ("c", 0.990, 0.97))]
    rows.append({"trial_id": "d", "status": "FAILED", "mean_val_auc": None})
    (geo,) = probe_agreement(rows)
    assert geo["probe"] == "val_auc_geometric" and geo["n"] == 3
    assert geo["best_by_clean"] == "a" and geo["best_by_probe"] == "b"
    assert geo["spearman"] == pytest.approx(-0.5)
    assert geo["mean_drop"] == pytest.approx((0.085 + 0.011 + 0.02) / 3)
    assert probe_agreement([{"trial_id": "x", "status": "COMPLETED", "mean_val_auc": 0.9}]) == []


def test_no_rank_correlation_is_printed_from_too_few_trials() -> None:
    from results.analysis import MIN_NUMERIC, analysis_markdown

    rows = [_row(0.8, learning_rate=1e-3), _row(0.7, learning_rate=1e-2)]
    rows[0].update(trial_id="0000", mean_val_auc_geometric=0.7)
    rows[1].update(trial_id="0001", mean_val_auc_geometric=0.6)
    md = analysis_markdown([analyze_rows(rows, "val_auc", "max", "ann")])
    assert "rho 1.000" not in md and "rho -1.000" not in md
    assert f"too few trials for a rank correlation (under {MIN_NUMERIC})" in md
    assert MIN_NUMERIC >= 5
