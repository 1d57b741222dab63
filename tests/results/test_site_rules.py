"""The site rules on constructed scores: Clopper-Pearson bounds, the guaranteed threshold, and
the unlabelled check (flags a constructed shift, passes an unshifted copy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from results.site.bounds import interval, lower_bound, min_positives
from results.site.calibration import allowed_misses, calibrate_scores, guaranteed_threshold
from results.site.shift_check import check_scores, mixture_distance

# Constructed classes: pneumonia scores Beta(5, 2), normal Beta(2, 5); the true sensitivity of
# a threshold t is then exactly 1 - Beta(5, 2).cdf(t).
POS, NEG = stats.beta(5, 2), stats.beta(2, 5)


def test_lower_bound_matches_known_values():
    # all of n found: the bound is (1 - confidence) ** (1 / n)
    assert lower_bound(29, 29, 0.95) == pytest.approx(0.05 ** (1 / 29))
    assert lower_bound(0, 10) == 0.0
    lo, hi = interval(40, 80, 0.95)
    assert lo < 0.5 < hi and lo == pytest.approx(stats.beta.ppf(0.025, 40, 41))


def test_min_positives_is_the_first_feasible_n():
    need = min_positives(0.90, 0.95)
    assert need == 29
    assert allowed_misses(need, 0.90, 0.95) == 0
    assert allowed_misses(need - 1, 0.90, 0.95) is None


@pytest.mark.parametrize("n", [40, 80, 160])
def test_guarantee_holds_in_at_least_95_percent_of_1000_draws(n: int):
    rng = np.random.default_rng(n)
    met, sens = 0, []
    for _ in range(1000):
        y = np.r_[np.ones(n, int), np.zeros(n, int)]
        s = np.r_[POS.rvs(n, random_state=rng), NEG.rvs(n, random_state=rng)]
        t = guaranteed_threshold(y, s, floor=0.90, confidence=0.95)
        assert t is not None
        sens.append(1.0 - POS.cdf(t))
        met += sens[-1] >= 0.90
    assert met / 1000 >= 0.95
    # ... and not by calling (nearly) everything positive: the threshold sits at the
    # (m + 1)-th lowest pneumonia score, whose expected true sensitivity is 1 - (m + 1) / (n + 1)
    m = allowed_misses(n, 0.90, 0.95)
    assert np.mean(sens) == pytest.approx(1 - (m + 1) / (n + 1), abs=0.01)
    assert np.mean(sens) < 0.99


def test_too_few_pneumonia_films_says_how_many_more():
    y = np.r_[np.ones(20, int), np.zeros(30, int)]
    s = np.r_[np.linspace(0.5, 1, 20), np.linspace(0, 0.6, 30)]
    r = calibrate_scores(y, s, floor=0.90, confidence=0.95, exported_threshold=0.45)
    assert not r["feasible"] and r["threshold"] is None and r["at_threshold"] is None
    assert r["more_positives_needed"] == 9 and r["min_positives"] == 29
    assert r["exported"]["sensitivity"] == 1.0 and r["exported"]["n_negative"] == 30


def test_calibration_reports_specificity_interval():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(80, int), np.zeros(80, int)]
    s = np.r_[POS.rvs(80, random_state=rng), NEG.rvs(80, random_state=rng)]
    r = calibrate_scores(y, s)
    p = r["at_threshold"]
    assert r["feasible"] and p["sensitivity_lower_bound"] >= 0.90
    lo, hi = p["specificity_interval"]
    assert lo <= p["specificity"] <= hi
    # the threshold sits below the qualifying pneumonia score: raising it to the next one
    # would break the bound
    misses = allowed_misses(80, 0.90, 0.95)
    assert p["fn"] == misses


def _site(n: int, share: float, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    n1 = rng.binomial(n, share)
    neg = np.clip(NEG.rvs(n - n1, random_state=rng) + shift, 0, 1)
    return np.r_[POS.rvs(n1, random_state=rng), neg]


def test_check_passes_unshifted_copies_and_flags_a_shift():
    rng = np.random.default_rng(7)
    ref_y = np.r_[np.ones(1500, int), np.zeros(500, int)]
    ref = np.r_[POS.rvs(1500, random_state=rng), NEG.rvs(500, random_state=rng)]
    # Another share of pneumonia (a label shift) is no warning: the operating point holds.
    passed = [not check_scores(_site(200, share, rng), ref, ref_y, seed=i)["shifted"]
              for i, share in enumerate([0.3, 0.5, 0.75] * 5)]
    assert np.mean(passed) >= 0.8
    # NORMAL films squeezed towards the middle (not a mixture of the reference classes)
    flagged = []
    for i in range(10):
        n1 = rng.binomial(200, 0.5)
        neg = 0.5 + 0.2 * (NEG.rvs(200 - n1, random_state=rng) - 0.3)
        local = np.r_[POS.rvs(n1, random_state=rng), neg]
        flagged.append(check_scores(local, ref, ref_y, seed=i)["shifted"])
    assert np.mean(flagged) >= 0.9


def test_mixture_distance_recovers_the_share():
    rng = np.random.default_rng(1)
    ref0, ref1 = np.sort(NEG.rvs(4000, random_state=rng)), np.sort(POS.rvs(4000, random_state=rng))
    local = np.r_[POS.rvs(300, random_state=rng), NEG.rvs(700, random_state=rng)]
    distance, share = mixture_distance(local, ref0, ref1)
    assert abs(share - 0.3) < 0.06 and distance < 0.06


def test_report_section_only_when_a_site_was_run():
    from results.site.report import site_blocks

    assert site_blocks({"cnn": {"site": {"thresholds": [], "checks": []}}, "ann": {}}) == []
    site = {"thresholds": [{"site": "north", "date": "2026-12-06T20:00:00+00:00",
                            "n_positive": 80, "n_negative": 80, "threshold": 0.41,
                            "rule": "highest threshold ...",
                            "at_threshold": {"sensitivity_lower_bound": 0.91,
                                             "specificity": 0.8,
                                             "specificity_interval": [0.7, 0.88]},
                            "exported": {"sensitivity": 0.99, "specificity": 0.6}}],
            "checks": [{"site": "east", "date": "2026-12-06", "n": 120, "distance": 0.2,
                        "critical_distance": 0.1, "p_value": 0.005, "shifted": True,
                        "rule": "fitted-mixture KS"}]}
    blocks = site_blocks({"cnn": {"site": site}})
    assert blocks[0].text == "At your site"
    tables = [b for b in blocks if b.kind == "table"]
    assert tables[0].rows[0][1] == "north" and "80.0%" in tables[0].rows[0][6]
    assert tables[1].rows[0][-1] == "label films and calibrate"
    assert "fitted-mixture KS" in blocks[-1].text
