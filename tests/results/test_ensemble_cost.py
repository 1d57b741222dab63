"""The report's cost of a 5-member ensemble (results/report/ensemble_cost.py)."""

from __future__ import annotations

import numpy as np

TINY_ANN = {"dense_layers": 1, "dense_units": 8, "batch_size": 16}
RUN = {"config": {"folds": 2, "image_size": 16, "space": None, "space_file": None}}


def test_cost_rows_size_and_time_the_ensemble(monkeypatch):
    import keras_tuner as kt

    from results.report import ensemble_cost as ec
    from results.report.compare import latency_ms
    from spaces import HYPERMODELS

    rows = ec.ensemble_cost("ann", RUN, TINY_ANN, n_folds=2, timer=latency_ms,
                            sizes=(16, 24))
    hp = kt.HyperParameters()
    hp.values.update(TINY_ANN)
    for row, size in zip(rows, (16, 24)):
        one = HYPERMODELS["ann"]((size, size, 1), max_params=10**9).count_params(hp)
        assert row["image_size"] == size and row["n_models"] == 10
        assert row["n_params"] == 10 * one and np.isclose(row["megabytes"], 40 * one / 2**20)
        assert row["ms_batch_1"] > 0 and row["ms_batched"] > 0
    monkeypatch.setattr(ec, "MAX_TIMED_PARAMS", 10)
    big = ec.ensemble_cost("ann", RUN, TINY_ANN, n_folds=2, timer=latency_ms, sizes=(16,))
    assert big[0]["ms_batch_1"] is None and "not timed" in big[0]["note"]


def test_cost_block_states_the_machine():
    from results.report.sections import cost_blocks

    blocks = cost_blocks({"machine": "x86_64, 2 logical CPU(s)", "rows": [
        {"family": "cnn", "image_size": 224, "n_models": 15, "n_params": 1000,
         "megabytes": 0.004, "ms_batch_1": None, "ms_batched": None, "note": "not timed"}]})
    assert "x86_64, 2 logical CPU(s)" in blocks[0].text
    assert blocks[1].rows[0][:3] == ["CNN", "224 px", 15]
