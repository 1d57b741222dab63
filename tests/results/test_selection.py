"""Caruana's ensemble selection on constructed out-of-fold scores (no model, no Keras)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from results.selection import caruana_select, from_json, to_json
from search.store.oof import SIGNALS, FoldOOF, load_trial_oof, save_fold_oof


def _folds(n_folds: int = 2, n: int = 80, seed: int = 0):
    """Labels per fold: half positive, and halves H1/H2 of the images."""
    rng = np.random.default_rng(seed)
    ys = [rng.permutation(np.repeat([0, 1], n // 2)) for _ in range(n_folds)]
    halves = [np.arange(n) < n // 2 for _ in range(n_folds)]
    return ys, halves, rng


def _half_expert(y: np.ndarray, half: np.ndarray, rng, *, knows_first: bool) -> np.ndarray:
    """Separates the classes perfectly on one half of the images and says 0.5 on the other."""
    good = np.where(y == 1, rng.uniform(0.6, 1.0, y.size), rng.uniform(0.0, 0.4, y.size))
    return np.where(half if knows_first else ~half, good, 0.5)


def _candidates(objective_signal: str = "val_auc"):
    """A and B: complementary half-experts (their average is perfect, each alone is not);
    C: noise; D: A with noisier scores on its good half."""
    ys, halves, rng = _folds()
    out: dict[str, list[FoldOOF]] = {}
    specs = {
        "A": lambda y, h: _half_expert(y, h, rng, knows_first=True),
        "B": lambda y, h: _half_expert(y, h, rng, knows_first=False),
        "C": lambda y, h: rng.uniform(0, 1, y.size),
        "D": lambda y, h: np.where(h, _half_expert(y, h, rng, knows_first=True)
                                   + rng.normal(0, 0.3, y.size), 0.5),
    }
    for tid, make in specs.items():
        folds = []
        for k, (y, h) in enumerate(zip(ys, halves)):
            scores = {s: rng.uniform(0, 1, y.size) for s in SIGNALS}
            scores[objective_signal] = make(y, h)
            folds.append(FoldOOF(fold=k, y=y, digest=f"fold{k}", scores=scores))
        out[tid] = folds
    return out


def test_greedy_selection_finds_the_complementary_pair_and_is_reproducible():
    cands = _candidates()
    sel = caruana_select(cands, objective="val_auc", direction="max", max_members=5)
    assert sel.weights == {"A": 0.5, "B": 0.5}
    assert sel.score == pytest.approx(1.0)
    # Each alone is worse than the pair: the selection did better than the top row.
    singles = {c["trial_id"]: c["score"] for c in sel.candidates}
    assert max(singles.values()) < 0.9 and singles["C"] < singles["A"]
    again = caruana_select(_candidates(), objective="val_auc", direction="max", max_members=5)
    assert to_json(again) == to_json(sel)


def test_selection_maximises_the_objective_signal_not_the_clean_one():
    # The pair is expert on the geometric copy only; clean scores are noise.
    cands = _candidates("val_auc_geometric")
    sel = caruana_select(cands, objective="val_auc_geometric", direction="max")
    assert sel.weights == {"A": 0.5, "B": 0.5} and sel.selected_on == "val_auc_geometric"
    clean = caruana_select(cands, objective="val_auc", direction="max")
    assert clean.weights != sel.weights


def test_size_cap_and_one_configuration_fallback():
    cands = _candidates()
    one = caruana_select(cands, objective="val_auc", direction="max", max_members=1)
    assert len(one.weights) == 1 and list(one.weights.values()) == [1.0]
    assert one.fallback is None
    alone = caruana_select({"A": cands["A"]}, objective="val_auc", direction="max")
    assert alone.weights == {"A": 1.0} and "one finished configuration" in alone.fallback
    with pytest.raises(ValueError):
        caruana_select(cands, objective="val_auc", direction="max", max_members=0)


def test_selection_round_trips_through_json():
    sel = caruana_select(_candidates(), objective="val_auc", direction="max")
    text = json.dumps(to_json(sel))
    back = from_json(json.loads(text))
    assert back.weights == sel.weights and back.score == pytest.approx(sel.score)
    assert to_json(back) == to_json(sel)


def test_oof_files_round_trip_and_a_missing_fold_means_none(tmp_path):
    x = np.zeros((4, 8, 8, 1), np.uint8)
    y = np.array([0, 1, 0, 1])
    scores = {s: np.linspace(0, 1, 4) + i for i, s in enumerate(SIGNALS)}
    save_fold_oof(tmp_path, 0, x_va=x, y_va=y, scores=scores, batches=np.array(["IM"] * 4))
    assert load_trial_oof(tmp_path, 2) is None  # fold 1 missing
    save_fold_oof(tmp_path, 1, x_va=x + 1, y_va=y, scores=scores)
    folds = load_trial_oof(tmp_path, 2)
    assert folds is not None and folds[0].digest != folds[1].digest
    np.testing.assert_array_equal(folds[0].y, y)
    for s in SIGNALS:
        np.testing.assert_array_equal(folds[1].scores[s], scores[s])
    assert list(folds[0].batches) == ["IM"] * 4 and folds[1].batches is None
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left


def test_rank_auc_equals_scikit_learn():
    from sklearn.metrics import roc_auc_score

    from results.selection import auc

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.uniform(0, 1, 300), 2)  # ties included
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
