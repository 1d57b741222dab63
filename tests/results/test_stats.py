"""McNemar's test and the patient bootstrap on constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from results.metrics import scalar_metrics
from results.stats import bootstrap, mcnemar, resample_indices


def _pairs(b: int, c: int, both: int = 5):
    """Labels and predictions with b images only A gets right and c only B gets right."""
    y = np.zeros(b + c + both, dtype=int)
    a = np.zeros_like(y)
    bb = np.zeros_like(y)
    a[b:b + c] = 1   # A wrong where only B is right
    bb[:b] = 1       # B wrong where only A is right
    return y, a, bb


def test_mcnemar_exact_small_counts():
    r = mcnemar(*_pairs(1, 6))
    assert (r["a_only_correct"], r["b_only_correct"]) == (1, 6)
    assert r["method"] == "exact binomial"
    assert r["p_value"] == pytest.approx(2 * (1 + 7) / 2 ** 7)  # 0.125


def test_mcnemar_chi_square_large_counts():
    r = mcnemar(*_pairs(10, 30))
    assert r["method"].startswith("chi-square")
    assert r["statistic"] == pytest.approx((20 - 1) ** 2 / 40)
    assert r["p_value"] == pytest.approx(0.0026648, rel=1e-3)


def test_mcnemar_identical_models():
    y, a, _ = _pairs(0, 4)
    r = mcnemar(y, a, a)
    assert r["n_discordant"] == 0 and r["p_value"] == 1.0


def test_mcnemar_symmetric_exact_is_one():
    assert mcnemar(*_pairs(3, 3))["p_value"] == pytest.approx(1.0)


def test_group_resampling_keeps_patients_together():
    groups = np.repeat(np.arange(20), 10)
    for idx in resample_indices(groups, 200, 50, seed=1):
        assert idx.size == 200
        counts = np.bincount(groups[idx], minlength=20)
        assert np.all(counts % 10 == 0)


def _acc(y, p, _name):
    return {"accuracy": scalar_metrics(y, p, 0.5)["accuracy"]}


def test_bootstrap_perfect_model_has_degenerate_interval():
    y = np.array([0, 1] * 50)
    r = bootstrap(y, {"m": y.astype(float)}, _acc, n_boot=100, seed=0)
    assert r["ci"]["m"]["accuracy"] == [1.0, 1.0]
    assert r["unit"] == "image"


def test_bootstrap_binomial_interval_width():
    rng = np.random.default_rng(0)
    n = 1000
    y = np.ones(n, dtype=int)
    correct = rng.permutation(np.arange(n) < 700)  # exactly 70% right
    p = np.where(correct, 0.9, 0.1)
    lo, hi = bootstrap(y, {"m": p}, _acc, n_boot=400, seed=1)["ci"]["m"]["accuracy"]
    half = 1.96 * np.sqrt(0.7 * 0.3 / n)
    assert lo == pytest.approx(0.7 - half, abs=0.01)
    assert hi == pytest.approx(0.7 + half, abs=0.01)


def test_patient_bootstrap_is_wider_for_clustered_errors():
    # 20 patients x 10 images; a patient is either all right or all wrong.
    groups = np.repeat(np.arange(20), 10)
    y = np.ones(200, dtype=int)
    p = np.where(np.repeat(np.arange(20) < 14, 10), 0.9, 0.1)
    by_patient = bootstrap(y, {"m": p}, _acc, groups=groups, n_boot=300, seed=2)
    by_image = bootstrap(y, {"m": p}, _acc, n_boot=300, seed=2)
    w = lambda r: np.diff(r["ci"]["m"]["accuracy"])[0]  # noqa: E731
    assert by_patient["unit"] == "patient"
    assert w(by_patient) > 2 * w(by_image)


def test_paired_difference_of_identical_models_is_zero():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 100)
    p = rng.uniform(size=100)
    r = bootstrap(y, {"cnn": p, "ann": p}, _acc, n_boot=50, seed=0)
    assert r["diff_ci"]["cnn-ann"]["accuracy"] == [0.0, 0.0]
