"""Out-of-fold predictions (search/store/oof.py): written with every finished fold, kept by a
resume."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from search_helpers import cli_args, cv_records, run_cli

from search.config import AUTO_OBJECTIVES
from search.fit.probes import auc
from search.store.oof import load_trial_oof, oof_path


def test_resume_keeps_the_oof_predictions_and_they_match_the_fold_records(tmp_path,
                                                                          synthetic_root):
    args = cli_args(tmp_path, synthetic_root)
    args[args.index("--max-trials") + 1] = "2"
    first = run_cli(args, {"CXR_TEST_KILL_AT": "trial:1:fold:1:epoch:0"})
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    family = tmp_path / "run" / "ann"
    kept = {(t, k): oof_path(family / f"trial_{t}", k).read_bytes()
            for t, k in [("0000", 0), ("0000", 1), ("0001", 0)]}
    assert not oof_path(family / "trial_0001", 1).exists()  # killed inside that fold

    second = run_cli(args)
    assert second.returncode == 0, second.stderr[-3000:]
    for (t, k), data in kept.items():  # finished before the kill: the very same file
        assert oof_path(family / f"trial_{t}", k).read_bytes() == data
    records = cv_records(family)
    assert sorted(records) == ["trial_0000", "trial_0001"]
    for name, record in records.items():
        assert record["objective"] == AUTO_OBJECTIVES["ann"]  # --objective auto, ANN
        folds = load_trial_oof(family / name, 2)
        assert folds is not None
        assert folds[0].digest == load_trial_oof(family / "trial_0000", 2)[0].digest
        for fold, saved in zip(record["folds"], folds):
            # The scores are those of the restored fold model the record describes.
            assert auc(saved.y, saved.scores["val_auc"]) == pytest.approx(fold["val_auc"])
            for probe in ("val_auc_photometric", "val_auc_geometric", "val_auc_border"):
                assert auc(saved.y, saved.scores[probe]) == pytest.approx(fold[probe])
            assert np.all((saved.scores["val_auc"] >= 0) & (saved.scores["val_auc"] <= 1))
